//! Fused ops agree with the ops they replace, on every backend: a `Linear`
//! with its bias and a following ReLU applied in the matrix product's write
//! (`linear_act`, and `Sequential`'s use of it), and the one-pass ReLU
//! gradient (`relu_grad`). Reference values are computed separately, from
//! the unfused ops and, for one case, in f64 on the host.

mod common;

use std::sync::Arc;

use lam::nn::functional::{linear, linear_act};
use lam::nn::{LinearActivation, Module, ReLU, Sequential};
use lam::prelude::*;
use lam::testing::{gradcheck, GradCheck};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| lam::rng::uniform01(seed, i as u32) * 2.0 - 1.0)
        .collect()
}

fn tensor(shape: &[usize], seed: u64, dev: &Device) -> lam::Result<Tensor> {
    Tensor::from_vec(values(shape.iter().product(), seed), shape, dev)
}

/// `act(x Wᵀ + b)` from the separate, unfused ops.
fn unfused(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    act: LinearActivation,
) -> lam::Result<Tensor> {
    let mut y = x.matmul(&w.t()?)?;
    if let Some(b) = b {
        y = y.add(b)?;
    }
    match act {
        LinearActivation::Identity => Ok(y),
        LinearActivation::Relu => y.relu(),
    }
}

/// Asserts `got` has `want`'s shape and values within `tol` (relative
/// above 1); only reading the values back can return an error.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) -> lam::Result<()> {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec()?, want.to_vec()?);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}: element {i} is {a}, expected {b} (tolerance {tol})\ngot:      {g:?}\nexpected: {w:?}"
        );
    }
    Ok(())
}

/// Asserts that `f`'s gradients at `inputs` match finite differences.
fn assert_gradcheck(what: &str, f: impl Fn(&[Tensor]) -> lam::Result<Tensor>, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(f, inputs, GradCheck::default()) {
        panic!("{what}: analytic gradients differ from finite differences: {e}");
    }
}

conformance!(fused_linear_matches_the_separate_ops, |dev| {
    // (input shape, out features): a matrix, a batch of sequences, shapes
    // off the GPU tile sizes, and an empty batch.
    let cases: [(&[usize], usize); 4] =
        [(&[5, 7], 3), (&[2, 3, 7], 9), (&[65, 33], 70), (&[0, 7], 3)];
    for (shape, out_f) in cases {
        let in_f = shape[shape.len() - 1];
        let x = tensor(shape, 1, dev)?;
        let w = tensor(&[out_f, in_f], 2, dev)?;
        let b = tensor(&[out_f], 3, dev)?;
        for act in [LinearActivation::Identity, LinearActivation::Relu] {
            for bias in [Some(&b), None] {
                let what = format!("{shape:?} -> {out_f}, {act:?}, bias {}", bias.is_some());
                let got = linear_act(&x, &w, bias, act)?;
                assert_close(&what, &got, &unfused(&x, &w, bias, act)?, 1e-5)?;
            }
        }
    }
    // A transposed (non-contiguous) input.
    let xt = tensor(&[7, 5], 4, dev)?.t()?;
    let w = tensor(&[3, 7], 5, dev)?;
    let b = tensor(&[3], 6, dev)?;
    let got = linear_act(&xt, &w, Some(&b), LinearActivation::Relu)?;
    assert_close(
        "transposed input",
        &got,
        &unfused(&xt, &w, Some(&b), LinearActivation::Relu)?,
        1e-5,
    )?;
    Ok(())
});

conformance!(fused_linear_matches_f64_on_the_host, |dev| {
    let (m, k, n) = (4, 6, 5);
    let (xv, wv, bv) = (values(m * k, 7), values(n * k, 8), values(n, 9));
    let x = Tensor::from_vec(xv.clone(), &[m, k], dev)?;
    let w = Tensor::from_vec(wv.clone(), &[n, k], dev)?;
    let b = Tensor::from_vec(bv.clone(), &[n], dev)?;
    let got = linear_act(&x, &w, Some(&b), LinearActivation::Relu)?.to_vec()?;
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k)
                .map(|q| xv[i * k + q] as f64 * wv[j * k + q] as f64)
                .sum();
            let want = (dot + bv[j] as f64).max(0.0) as f32;
            let g = got[i * n + j];
            assert!(
                (g - want).abs() <= 1e-5,
                "[{i}, {j}] is {g}, expected {want} (computed in f64 on the host)"
            );
        }
    }
    Ok(())
});

conformance!(fused_linear_propagates_nan_through_relu, |dev| {
    // PyTorch: relu(NaN) = NaN, and a NaN in x poisons its whole row.
    let mut xv = values(2 * 3, 10);
    xv[0] = f32::NAN;
    let x = Tensor::from_vec(xv, &[2, 3], dev)?;
    let w = tensor(&[4, 3], 11, dev)?;
    let y = linear_act(&x, &w, None, LinearActivation::Relu)?.to_vec()?;
    assert!(
        y[..4].iter().all(|v| v.is_nan()) && !y[4..].iter().any(|v| v.is_nan()),
        "a NaN in row 0 of x must make exactly row 0 of the output NaN: {y:?}"
    );
    Ok(())
});

conformance!(fused_linear_gradients_match_finite_differences, |dev| {
    // Small weights and a bias of ±1 keep every pre-activation at least 0.4
    // away from the ReLU's kink, where finite differences are valid.
    let x = tensor(&[3, 4], 12, dev)?;
    let w = tensor(&[5, 4], 13, dev)?.mul_scalar(0.15)?;
    let signs: Vec<f32> = (0..5)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let b = Tensor::from_vec(signs, &[5], dev)?;
    for act in [LinearActivation::Identity, LinearActivation::Relu] {
        assert_gradcheck(
            &format!("{act:?}"),
            |t| linear_act(&t[0], &t[1], Some(&t[2]), act),
            &[x.clone(), w.clone(), b.clone()],
        );
    }
    // Leading batch dims and no bias.
    let x3 = tensor(&[2, 2, 4], 14, dev)?;
    assert_gradcheck("batched, no bias", |t| linear(&t[0], &t[1], None), &[x3, w]);
    Ok(())
});

conformance!(relu_grad_masks_by_the_activation, |dev| {
    let g = Tensor::from_vec(vec![1.0, 2.0, f32::NAN, 4.0, 5.0], &[5], dev)?;
    let y = Tensor::from_vec(vec![0.5, 0.0, 3.0, -1.0, f32::NAN], &[5], dev)?;
    let got = g.relu_grad(&y)?.to_vec()?;
    // Passes unless y <= 0 (a NaN gradient too, and at a NaN activation, as
    // PyTorch's threshold_backward); blocks at 0 and below.
    let ok = got[0] == 1.0 && got[1] == 0.0 && got[2].is_nan() && got[3] == 0.0 && got[4] == 5.0;
    assert!(ok, "relu_grad gave {got:?}, expected [1, 0, NaN, 0, 5]");
    Ok(())
});

conformance!(gelu_grad_is_the_product_it_replaces, |dev| {
    // g · gelu'(x) in one op against the two it replaces (gelu'(x) as a
    // unary op, then the product): the same bits on the CPU, within an ulp
    // or two on a GPU (whose compiler may fuse a product into a sum); NaN
    // from either side.
    let n = 300;
    let xs: Vec<f32> = (0..n).map(|i| (i as f32 - 150.0) / 17.0).collect();
    let mut gs: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
    let mut xs = xs;
    (xs[3], gs[4], xs[5], gs[5]) = (f32::NAN, f32::NAN, f32::INFINITY, 0.0);
    let x = Tensor::from_vec(xs, &[n], dev)?;
    let g = Tensor::from_vec(gs, &[n], dev)?;
    let got = g.gelu_grad(&x)?.to_vec()?;
    let want = g.mul(&x.map(lam::backend::UnaryOp::GeluGrad)?)?.to_vec()?;
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        let close = (a - b).abs() <= 4e-7 * b.abs().max(1e-30);
        assert!(
            same || (dev.is_gpu() && close),
            "element {i}: {a} against {b}"
        );
    }
    assert!(got[3].is_nan() && got[4].is_nan(), "NaN from either side");
    // Through GELU's gradient on a view (the rule now uses it).
    let x = Tensor::from_vec(
        (0..24).map(|i| i as f32 / 5.0 - 2.0).collect(),
        &[4, 6],
        dev,
    )?;
    assert_gradcheck("gelu", |t| t[0].t()?.gelu(), &[x]);
    Ok(())
});

conformance!(sequential_fuses_linear_relu_with_the_same_results, |dev| {
    lam::manual_seed(21);
    let fc1 = lam::nn::Linear::new(6, 8, dev)?;
    let fc2 = lam::nn::Linear::new(8, 3, dev)?;
    let (w1, b1, w2, b2) = (
        fc1.weight.clone(),
        fc1.bias.clone(),
        fc2.weight.clone(),
        fc2.bias.clone(),
    );
    let model = Sequential::new().add(fc1).add(ReLU).add(fc2);
    let x = tensor(&[4, 6], 22, dev)?;
    let y = model.forward(&x)?;
    y.square()?.sum_all()?.backward()?;
    let fused_grads: Vec<Tensor> = model
        .parameters()
        .iter()
        .map(|p| p.grad().expect("every parameter gets a gradient"))
        .collect();
    // The same network from separate ops, on detached copies of the weights.
    let leaves: Vec<Tensor> = [
        &w1,
        b1.as_ref().expect("bias"),
        &w2,
        b2.as_ref().expect("bias"),
    ]
    .iter()
    .map(|t| t.detach().requires_grad_())
    .collect::<lam::Result<_>>()?;
    let h = unfused(&x, &leaves[0], Some(&leaves[1]), LinearActivation::Relu)?;
    let want = unfused(&h, &leaves[2], Some(&leaves[3]), LinearActivation::Identity)?;
    want.square()?.sum_all()?.backward()?;
    assert_close("output", &y, &want, 1e-5)?;
    for (i, (got, leaf)) in fused_grads.iter().zip(&leaves).enumerate() {
        let expected = leaf.grad().expect("reference gradient");
        assert_close(&format!("gradient of parameter {i}"), got, &expected, 1e-5)?;
    }
    Ok(())
});

#[test]
fn sequential_runs_linear_relu_as_one_op() {
    // A private CPU device, so other tests' ops do not enter its counters.
    let dev = Device::new(Arc::new(lam_cpu::CpuBackend::new()));
    lam::manual_seed(23);
    let model = Sequential::new()
        .add(lam::nn::Linear::new(6, 8, &dev).expect("fc1"))
        .add(ReLU)
        .add(lam::nn::Linear::new(8, 3, &dev).expect("fc2"));
    let x = tensor(&[4, 6], 24, &dev).expect("x");
    let before = dev.stats().dispatches;
    let _guard = lam::NoGradGuard::new();
    model.forward(&x).expect("forward");
    // fused linear+relu, then fused linear(+bias): two ops, not five.
    assert_eq!(dev.stats().dispatches - before, 2);
}
