//! Gradient checks: every differentiable op's backward rule against central
//! finite differences, on every backend, including broadcasting operands and
//! non-contiguous (transposed, narrowed, expanded) views.

mod common;
#[path = "grad/freeing.rs"]
mod freeing;

use lam::prelude::*;
use lam::testing::{gradcheck, GradCheck};

/// Random inputs away from kinks (|x| ≥ 0.1) so finite differences are valid.
fn input(shape: &[usize], seed: u64, dev: &Device) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let u = lam::rng::uniform01(seed, i as u32) * 2.0 - 1.0;
            u.signum() * (0.1 + 0.9 * u.abs())
        })
        .collect();
    Tensor::from_vec(v, shape, dev).expect("valid input")
}

fn check(f: impl Fn(&[Tensor]) -> lam::Result<Tensor>, inputs: &[Tensor]) -> lam::Result<()> {
    gradcheck(f, inputs, GradCheck::default())
}

conformance!(unary_ops, |dev| {
    let x = input(&[2, 3], 1, dev);
    let pos = input(&[2, 3], 2, dev).abs()?.add_scalar(0.5)?;
    type Op = fn(&Tensor) -> lam::Result<Tensor>;
    let ops: Vec<(&str, Op)> = vec![
        ("neg", |x| x.neg()),
        ("abs", |x| x.abs()),
        ("exp", |x| x.exp()),
        ("square", |x| x.square()),
        ("sin", |x| x.sin()),
        ("cos", |x| x.cos()),
        ("tanh", |x| x.tanh()),
        ("sigmoid", |x| x.sigmoid()),
        ("relu", |x| x.relu()),
        ("leaky_relu", |x| x.leaky_relu(0.2)),
        ("relu6", |x| x.mul_scalar(4.0)?.relu6()),
        ("clamp", |x| x.clamp(-0.5, 0.5)),
        ("elu", |x| x.elu(0.7)),
        ("gelu", |x| x.gelu()),
        ("silu", |x| x.silu()),
        ("softplus", |x| x.softplus()),
        ("add_scalar", |x| x.add_scalar(2.0)),
        ("mul_scalar", |x| x.mul_scalar(-3.0)),
    ];
    for (name, op) in ops {
        check(|a| op(&a[0]), std::slice::from_ref(&x))
            .map_err(|e| lam::Error::Autograd(format!("{name}: {e}")))?;
    }
    let positive: Vec<(&str, Op)> = vec![
        ("log", |x| x.log()),
        ("sqrt", |x| x.sqrt()),
        ("recip", |x| x.recip()),
        ("pow_scalar", |x| x.pow_scalar(2.5)),
    ];
    for (name, op) in positive {
        check(|a| op(&a[0]), std::slice::from_ref(&pos))
            .map_err(|e| lam::Error::Autograd(format!("{name}: {e}")))?;
    }
    Ok(())
});

conformance!(binary_ops_with_broadcasting, |dev| {
    let a = input(&[2, 3], 3, dev);
    let row = input(&[3], 4, dev);
    let col = input(&[2, 1], 5, dev).abs()?.add_scalar(0.5)?;
    check(|x| x[0].add(&x[1]), &[a.clone(), row.clone()])?;
    check(|x| x[0].sub(&x[1]), &[a.clone(), col.clone()])?;
    check(|x| x[0].mul(&x[1]), &[a.clone(), row.clone()])?;
    check(|x| x[0].div(&x[1]), &[a.clone(), col.clone()])?;
    check(|x| x[1].pow(&x[0]), &[a.clone(), col.clone()])?;
    check(|x| x[0].maximum(&x[1]), &[a.clone(), row.clone()])?;
    check(|x| x[0].minimum(&x[1]), &[a.clone(), row.clone()])?;
    let mask = a.gt_scalar(0.0)?;
    check(
        |x| Tensor::where_cond(&mask, &x[0], &x[1]),
        &[a.clone(), row.clone()],
    )?;
    Ok(())
});

conformance!(non_contiguous_views, |dev| {
    let a = input(&[3, 4], 6, dev);
    let b = input(&[4, 3], 7, dev);
    check(|x| x[0].t()?.mul(&x[1]), &[a.clone(), b.clone()])?;
    check(|x| x[0].narrow(1, 1, 2)?.exp(), std::slice::from_ref(&a))?;
    check(
        |x| x[0].permute(&[1, 0])?.reshape(&[2, 6]),
        std::slice::from_ref(&a),
    )?;
    check(
        |x| x[0].unsqueeze(0)?.expand(&[2, -1, -1])?.sin(),
        std::slice::from_ref(&a),
    )?;
    check(|x| x[0].t()?.contiguous()?.tanh(), std::slice::from_ref(&a))?;
    check(
        |x| x[0].slice(0, 1, 3)?.squeeze_all(),
        std::slice::from_ref(&a),
    )?;
    check(|x| x[0].flatten(0, -1), std::slice::from_ref(&a))?;
    Ok(())
});

conformance!(joins, |dev| {
    let a = input(&[2, 3], 8, dev);
    let b = input(&[1, 3], 9, dev);
    check(
        |x| Tensor::cat(&[x[0].clone(), x[1].clone()], 0),
        &[a.clone(), b.clone()],
    )?;
    check(
        |x| Tensor::stack(&[x[0].clone(), x[0].mul_scalar(2.0)?], 2),
        std::slice::from_ref(&a),
    )?;
    check(
        |x| Ok(x[0].chunk(3, 1)?[1].clone()),
        std::slice::from_ref(&a),
    )?;
    Ok(())
});

conformance!(reductions, |dev| {
    // Values at least 0.1 apart: finite differences across a near-tie of
    // max/min would be meaningless.
    let spaced: Vec<f32> = (0..12)
        .map(|i| ((i * 7) % 12) as f32 * 0.1 - 0.55)
        .collect();
    let x = Tensor::from_vec(spaced, &[3, 4], dev)?;
    type Op = fn(&Tensor) -> lam::Result<Tensor>;
    let ops: Vec<(&str, Op)> = vec![
        ("sum_all", |a| a.sum_all()),
        ("sum", |a| a.sum(&[0], false)),
        ("mean", |a| a.mean(&[1], true)),
        ("max", |a| a.max(&[1], false)),
        ("min", |a| a.min(&[0], false)),
        ("max_all", |a| a.max_all()),
        ("var", |a| a.var(&[1], false, true)),
        ("sum of transpose", |a| a.t()?.sum(&[1], false)),
        ("logsumexp", |a| a.logsumexp(&[1], false)),
    ];
    for (name, op) in ops {
        check(|a| op(&a[0]), std::slice::from_ref(&x))
            .map_err(|e| lam::Error::Autograd(format!("{name}: {e}")))?;
    }
    Ok(())
});

conformance!(matmul, |dev| {
    let a = input(&[3, 4], 11, dev);
    let b = input(&[4, 2], 12, dev);
    let v = input(&[4], 13, dev);
    check(|x| x[0].matmul(&x[1]), &[a.clone(), b.clone()])?;
    check(|x| x[0].matmul(&x[1]), &[a.clone(), v.clone()])?;
    check(|x| x[1].matmul(&x[0]), &[b.clone(), v.clone()])?;
    check(|x| x[1].t()?.matmul(&x[0].t()?), &[a.clone(), b.clone()])?;
    let batch = input(&[2, 3, 4], 14, dev);
    check(|x| x[0].matmul(&x[1]), &[batch.clone(), b.clone()])?;
    Ok(())
});

conformance!(indexing, |dev| {
    let x = input(&[4, 3], 15, dev);
    let idx = Tensor::from_vec_i32(vec![3, 0, 3], &[3], dev)?;
    check(|a| a[0].index_select(0, &idx), std::slice::from_ref(&x))?;
    let g = Tensor::from_vec_i32(vec![2, 0, 1, 1], &[4, 1], dev)?;
    check(|a| a[0].gather(1, &g), std::slice::from_ref(&x))?;
    let to = Tensor::from_vec_i32(vec![0, 0, 2, 1, 2, 2], &[2, 3], dev)?;
    let src = input(&[2, 3], 16, dev);
    check(
        |a| a[0].t()?.scatter_add(0, &to, &a[1]),
        &[x.clone(), src.clone()],
    )?;
    Ok(())
});

conformance!(softmax_family, |dev| {
    let x = input(&[3, 5], 17, dev).mul_scalar(3.0)?;
    check(|a| a[0].softmax(-1), std::slice::from_ref(&x))?;
    check(|a| a[0].softmax(0), std::slice::from_ref(&x))?;
    check(|a| a[0].log_softmax(1), std::slice::from_ref(&x))?;
    let targets = Tensor::from_vec_i32(vec![4, 0, 2], &[3], dev)?;
    check(|a| a[0].cross_entropy(&targets), std::slice::from_ref(&x))?;
    Ok(())
});

conformance!(gradients_accumulate_until_zeroed, |dev| {
    let w = Tensor::from_vec(vec![1.0, 2.0], &[2], dev)?.requires_grad_()?;
    w.square()?.sum_all()?.backward()?;
    w.square()?.sum_all()?.backward()?;
    common::close(&w.grad().expect("grad").to_vec()?, &[4.0, 8.0], 1e-6);
    w.zero_grad();
    assert!(w.grad().is_none());
    // detach and no_grad cut the tape.
    let d = w.detach().mul_scalar(3.0)?;
    assert!(!d.requires_grad());
    let n = no_grad(|| w.mul_scalar(3.0))?;
    assert!(!n.requires_grad());
    // A tensor used twice gets both contributions.
    w.mul(&w)?.add(&w)?.sum_all()?.backward()?;
    common::close(&w.grad().expect("grad").to_vec()?, &[3.0, 5.0], 1e-6);
    Ok(())
});

// Several views of one tensor in one graph — narrows that tile it, one
// that overlaps them, a strided slice, an empty narrow — and a dense use:
// the backward walk writes the views' gradients into one buffer
// (autograd::Piece), copying where no earlier piece wrote and adding where
// one did, and must give the sum of each use's gradient, in any order of
// the uses.
conformance!(gradients_of_views_of_one_tensor_add_up, |dev| {
    let (rows, cols) = (6, 5);
    let weights = |seed: usize| -> Vec<f32> {
        (0..rows * cols)
            .map(|i| ((i * 7 + seed * 13) % 11) as f32 - 5.0)
            .collect()
    };
    // (first row, rows, step) of each view, and the dense use as None.
    let uses: [Option<(usize, usize, usize)>; 7] = [
        Some((0, 2, 1)),
        Some((2, 2, 1)),
        Some((4, 2, 1)),
        Some((1, 3, 1)),
        Some((0, 3, 2)),
        Some((3, 0, 1)),
        None,
    ];
    for order in [[0, 1, 2, 3, 4, 5, 6], [6, 3, 0, 4, 2, 5, 1]] {
        let x = Tensor::zeros(&[rows, cols], dev)?.requires_grad_()?;
        let mut want = vec![0f32; rows * cols];
        let mut loss = Tensor::scalar(0.0, dev)?;
        for (seed, &u) in order.iter().enumerate() {
            let w = weights(seed);
            let (view, first, count, step) = match uses[u] {
                Some((first, count, 1)) => (x.narrow(0, first, count)?, first, count, 1),
                Some((first, count, step)) => {
                    let end = first + (count - 1) * step + 1;
                    (x.slice_step(0, first, end, step)?, first, count, step)
                }
                None => (x.clone(), 0, rows, 1),
            };
            let c: Vec<f32> = w[..count * cols].to_vec();
            let c = Tensor::from_vec(c, &[count, cols], dev)?;
            loss = loss.add(&view.mul(&c)?.sum_all()?)?;
            for r in 0..count {
                for j in 0..cols {
                    want[(first + r * step) * cols + j] += w[r * cols + j];
                }
            }
        }
        loss.backward()?;
        let got = x.grad().expect("a gradient").to_vec()?;
        assert_eq!(got, want, "uses in the order {order:?}");
    }
    Ok(())
});
