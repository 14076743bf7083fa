//! Cases where lam once returned wrong numbers, or aborted, without an error.
//! Each test is the smallest program that showed it, run on every device of
//! the conformance list (so on the unfused twins too), and each compares
//! with an independent answer: the same op on a fresh contiguous copy, a
//! value computed by hand, or PyTorch's result quoted in the comment.

mod common;

use lam::loss::{BceLoss, CrossEntropyLoss, NllLoss, Reduction};
use lam::nn::{Embedding, LayerNorm, Module};
use lam::prelude::*;

/// A fresh contiguous tensor holding `t`'s values: the reference a view's
/// result must equal. (`contiguous()` would return a narrowed view itself,
/// since its elements are already consecutive.)
fn copy_of(t: &Tensor) -> lam::Result<Tensor> {
    t.detach().copy()
}

fn assert_same(what: &str, got: &Tensor, want: &Tensor) -> lam::Result<()> {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec()?, want.to_vec()?);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a - b).abs() <= 1e-5 * (1.0 + b.abs()) || (a.is_nan() && b.is_nan());
        assert!(ok, "{what}: element {i} is {a}, expected {b}\n{g:?}\n{w:?}");
    }
    Ok(())
}

/// Values in [-scale, scale), fixed by `seed`.
fn values(shape: &[usize], scale: f32, seed: u64, dev: &Device) -> lam::Result<Tensor> {
    let n = shape.iter().product::<usize>();
    let v = (0..n)
        .map(|i| (lam::rng::uniform01(seed, i as u32) * 2.0 - 1.0) * scale)
        .collect();
    Tensor::from_vec(v, shape, dev)
}

// --- softmax and log-softmax read a view's storage offset ----------------

conformance!(log_softmax_of_a_narrowed_vector, |dev| {
    // PyTorch: (randn(10) * 50).narrow(0, 2, 8).log_softmax(0) — lam read
    // the first 8 elements of the buffer instead (-164.4 for -14.65).
    let x = values(&[10], 50.0, 1, dev)?.narrow(0, 2, 8)?;
    assert_same(
        "log_softmax",
        &x.log_softmax(0)?,
        &copy_of(&x)?.log_softmax(0)?,
    )?;
    assert_same("softmax", &x.softmax(0)?, &copy_of(&x)?.softmax(0)?)
});

conformance!(
    softmax_of_rows_chunks_and_transposes_inside_a_buffer,
    |dev| {
        let x = values(&[6, 5, 4], 10.0, 2, dev)?;
        let views = [
            ("get(3)", x.get(3)?),
            ("narrow(0, 2, 3)", x.narrow(0, 2, 3)?),
            ("chunk(3, 0)[2]", x.chunk(3, 0)?[2].clone()),
            ("split(4, 0)[1]", x.split(4, 0)?[1].clone()),
            ("narrow then transpose", x.narrow(0, 1, 2)?.transpose(0, 2)?),
            ("get then t", x.get(5)?.t()?),
        ];
        for (what, v) in views {
            for dim in 0..v.rank() as isize {
                let want = copy_of(&v)?;
                assert_same(
                    &format!("softmax of {what} along {dim}"),
                    &v.softmax(dim)?,
                    &want.softmax(dim)?,
                )?;
                assert_same(
                    &format!("log_softmax of {what} along {dim}"),
                    &v.log_softmax(dim)?,
                    &want.log_softmax(dim)?,
                )?;
            }
        }
        Ok(())
    }
);

conformance!(
    losses_on_a_narrowed_batch_leave_the_fused_path_correctly,
    |dev| {
        // Every way cross-entropy leaves its fused kernel, plus NLL, on logits
        // that start inside their buffer (the second half of a batch).
        let all = values(&[8, 4], 5.0, 3, dev)?;
        let logits = all.narrow(0, 4, 4)?;
        let fresh = copy_of(&logits)?;
        let targets = Tensor::from_vec_i32(vec![0, 3, -100, 2], &[4], dev)?;
        let weight = Tensor::from_vec(vec![0.5, 1.0, 2.0, 1.5], &[4], dev)?;
        let probs = values(&[4, 4], 1.0, 4, dev)?.softmax(1)?;
        let losses = [
            ("weights", CrossEntropyLoss::new().weight(weight.clone())),
            (
                "label smoothing",
                CrossEntropyLoss::new().label_smoothing(0.2),
            ),
            ("ignore_index hit", CrossEntropyLoss::new()),
            ("sum", CrossEntropyLoss::new().reduction(Reduction::Sum)),
            ("none", CrossEntropyLoss::new().reduction(Reduction::None)),
        ];
        for (what, loss) in losses {
            let got = loss.forward(&logits, &targets)?;
            assert_same(what, &got, &loss.forward(&fresh, &targets)?)?;
        }
        let ce = CrossEntropyLoss::new();
        assert_same(
            "probability targets",
            &ce.forward(&logits, &probs)?,
            &ce.forward(&fresh, &probs)?,
        )?;
        let nll = NllLoss::new();
        assert_same(
            "nll of log_softmax",
            &nll.forward(&logits.log_softmax(1)?, &targets)?,
            &nll.forward(&fresh.log_softmax(1)?, &targets)?,
        )?;
        let module = lam::nn::LogSoftmax::new(1);
        assert_same(
            "nn::LogSoftmax",
            &module.forward(&logits)?,
            &module.forward(&fresh)?,
        )
    }
);

// --- index bounds are sound after joins -----------------------------------

conformance!(
    an_index_joined_from_parts_is_checked_against_every_part,
    |dev| {
        // cat kept only the first input's bounds [0, 0], so a GPU accepted 1000
        // and read a row of zeros; the CPU refused it.
        let idx = Tensor::cat(
            &[
                Tensor::from_vec_i32(vec![0], &[1], dev)?,
                Tensor::from_vec_i32(vec![1000], &[1], dev)?,
            ],
            0,
        )?;
        let x = Tensor::ones(&[3, 4], dev)?;
        assert!(x.index_select(0, &idx).is_err(), "index_select of row 1000");
        let stacked = Tensor::stack(
            &[
                Tensor::from_vec_i32(vec![0, 1], &[2], dev)?,
                Tensor::from_vec_i32(vec![2, 7], &[2], dev)?,
            ],
            0,
        )?;
        assert!(x.gather(1, &stacked).is_err(), "gather of column 7");
        let emb = Embedding::new(3, 2, dev)?;
        assert!(emb.forward(&idx).is_err(), "embedding of row 1000");
        let logits = Tensor::zeros(&[2, 3], dev)?;
        let targets = Tensor::cat(
            &[
                Tensor::from_vec_i32(vec![1], &[1], dev)?,
                Tensor::from_vec_i32(vec![7], &[1], dev)?,
            ],
            0,
        )?;
        assert!(
            logits.cross_entropy(&targets).is_err(),
            "cross_entropy with target 7 of 3 classes"
        );
        // In range, the joined index still works.
        let ok = Tensor::cat(
            &[
                Tensor::from_vec_i32(vec![2], &[1], dev)?,
                Tensor::from_vec_i32(vec![0], &[1], dev)?,
            ],
            0,
        )?;
        assert_eq!(x.index_select(0, &ok)?.dims(), [2, 4]);
        Ok(())
    }
);

// --- sizes never wrap, allocations never abort ------------------------------

conformance!(shapes_whose_element_count_overflows_are_errors, |dev| {
    assert!(Tensor::zeros(&[1 << 32, 1 << 32], dev).is_err());
    assert!(Tensor::zeros(&[usize::MAX, 2], dev).is_err());
    assert!(Embedding::new(1 << 62, 4, dev).is_err());
    assert!(Tensor::eye(1 << 32, dev).is_err());
    let x = Tensor::ones(&[3], dev)?;
    assert!(x.narrow(0, usize::MAX, 2).is_err());
    assert!(x.reshape(&[-2, 3]).is_err());
    assert!(x.reshape(&[-7, 3]).is_err());
    assert!(x.reshape(&[1 << 40, 1 << 40, 0, -1]).is_err());
    assert!(x.reshape(&[3, -1]).is_ok());
    let one = Tensor::ones(&[1, 1], dev)?;
    assert!(one.expand(&[-5, 3]).is_err());
    assert!(one.expand(&[1 << 40, 1 << 40]).is_err());
    assert!(one.expand(&[-1, 3])?.dims() == [1, 3]);
    // A broadcast whose result would not fit.
    let col = Tensor::ones(&[1, 1], dev)?.expand(&[1 << 31, 1])?;
    let row = Tensor::ones(&[1, 1], dev)?.expand(&[1, 1 << 31])?;
    assert!(col.add(&row).is_err());
    assert!(col.matmul(&row).is_err());
    Ok(())
});

conformance!(allocations_beyond_memory_are_errors_not_aborts, |dev| {
    // 32 GiB, 4 TiB and 4 TB: more than any test machine has. Each must be an
    // error naming the size, where the process used to abort.
    for (what, result) in [
        ("zeros [2^33]", Tensor::zeros(&[1 << 33], dev)),
        ("eye(2^20)", Tensor::eye(1 << 20, dev)),
        ("arange(0, 1e12)", Tensor::arange(0.0, 1e12, 1.0, dev)),
        (
            "arange(0, 1e30, 1e-30)",
            Tensor::arange(0.0, 1e30, 1e-30, dev),
        ),
        ("randn [2^40]", Tensor::randn(&[1 << 40], dev)),
    ] {
        assert!(result.is_err(), "{what} on {dev}");
    }
    // A broadcast view claims 2^36 elements over a buffer of one: ops that
    // must materialise it fail cleanly.
    let huge = Tensor::ones(&[1], dev)?.expand(&[1 << 36])?;
    assert!(huge.exp().is_err());
    assert!(huge.contiguous().is_err());
    // The device still works afterwards.
    assert_eq!(
        Tensor::eye(3, dev)?.to_vec()?,
        [1., 0., 0., 0., 1., 0., 0., 0., 1.]
    );
    Ok(())
});

// --- numerics that must match PyTorch ---------------------------------------

conformance!(the_mean_of_equal_values_is_that_value, |dev| {
    for (n, v) in [(7, 1000.1f32), (3, 0.1), (1000, -123.456), (33, 3.0e7)] {
        let x = Tensor::full(&[n], v, dev)?;
        assert_eq!(x.mean_all()?.item()?, v, "mean of {n} × {v}");
        assert_eq!(x.var(&[0], false, false)?.item()?, 0.0, "var of {n} × {v}");
    }
    let rows = Tensor::full(&[4, 9], 1000.3, dev)?;
    assert!(rows
        .mean(&[1], false)?
        .to_vec()?
        .iter()
        .all(|&m| m == 1000.3));
    Ok(())
});

conformance!(norms_of_a_constant_row_are_exactly_zero, |dev| {
    // Off by up to 1.9e-2 at magnitude 1000 when the mean was sum × (1/n):
    // the tiny error of the mean was divided by sqrt(eps).
    for features in [3, 5, 10, 13, 33, 100] {
        for v in [1000.1f32, 999.7, 1_234.567_8, -777.77, 0.1, 3.3e4] {
            let x = Tensor::full(&[2, features], v, dev)?;
            let ln = LayerNorm::new(&[features], dev)?.forward(&x)?.to_vec()?;
            assert!(
                ln.iter().all(|&y| y == 0.0),
                "layer_norm of {features} × {v}: {ln:?}"
            );
            let bn = lam::nn::BatchNorm1d::new(features, dev)?;
            let rows = Tensor::full(&[features, features], v, dev)?;
            let out = bn.forward(&rows)?.to_vec()?;
            assert!(out.iter().all(|&y| y == 0.0), "batch_norm of {v}: {out:?}");
        }
    }
    Ok(())
});

/// The gradient of `f` at `x` for an upstream gradient of ones.
fn grad_at(
    x: &[f32],
    dev: &Device,
    f: impl Fn(&Tensor) -> lam::Result<Tensor>,
) -> lam::Result<Vec<f32>> {
    let x = Tensor::from_vec(x.to_vec(), &[x.len()], dev)?.requires_grad_()?;
    f(&x)?.sum_all()?.backward()?;
    x.grad().expect("a gradient").to_vec()
}

conformance!(gradients_at_nan_follow_pytorch, |dev| {
    let nan = f32::NAN;
    // Values from PyTorch 2.15 (fixtures/README.md lists the environment).
    assert_eq!(
        grad_at(&[nan, -1.0, 2.0], dev, |x| x.relu())?,
        [1.0, 0.0, 1.0]
    );
    assert_eq!(
        grad_at(&[nan, 0.0, 6.0, 3.0], dev, |x| x.relu6())?,
        [1.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        grad_at(&[nan, 0.0, -2.0], dev, |x| x.abs())?,
        [0.0, 0.0, -1.0]
    );
    let elu = grad_at(&[nan, 0.0, -2.0], dev, |x| x.elu(1.0))?;
    assert_eq!(elu[..2], [1.0, 1.0]);
    assert!((elu[2] - 0.135_335_28).abs() < 1e-6);
    let other = Tensor::from_vec(vec![1.0, nan, 2.0], &[3], dev)?;
    assert_eq!(
        grad_at(&[nan, 1.0, 2.0], dev, |x| x.maximum(&other))?,
        [1.0, 1.0, 0.5]
    );
    assert_eq!(
        grad_at(&[nan, 1.0, 2.0], dev, |x| x.minimum(&other))?,
        [1.0, 1.0, 0.5]
    );
    let other = other.requires_grad_()?;
    let x = Tensor::from_vec(vec![nan, 1.0, 2.0], &[3], dev)?;
    x.maximum(&other)?.sum_all()?.backward()?;
    assert_eq!(other.grad().expect("grad").to_vec()?, [1.0, 1.0, 0.5]);

    Ok(())
});

conformance!(a_batch_of_only_ignored_targets_has_zero_gradients, |dev| {
    // PyTorch: loss NaN, gradient 0 — a NaN gradient would destroy the
    // weights at the next optimizer step.
    let targets = Tensor::from_vec_i32(vec![-100, -100], &[2], dev)?;
    let weight = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3], dev)?;
    for (what, loss) in [
        ("cross_entropy", CrossEntropyLoss::new()),
        ("weighted", CrossEntropyLoss::new().weight(weight.clone())),
        ("smoothed", CrossEntropyLoss::new().label_smoothing(0.1)),
    ] {
        let x = values(&[2, 3], 1.0, 5, dev)?.requires_grad_()?;
        let l = loss.forward(&x, &targets)?;
        assert!(l.item()?.is_nan(), "{what}: loss {}", l.item()?);
        l.backward()?;
        let g = x.grad().expect("a gradient").to_vec()?;
        assert!(g.iter().all(|&v| v == 0.0), "{what}: gradient {g:?}");
    }
    let x = values(&[2, 3], 1.0, 6, dev)?.requires_grad_()?;
    NllLoss::new().forward(&x, &targets)?.backward()?;
    assert!(x.grad().expect("grad").to_vec()?.iter().all(|&v| v == 0.0));
    Ok(())
});

conformance!(cross_entropy_of_large_logits_keeps_its_precision, |dev| {
    // The fused kernels computed `max + ln(sum) - x_t`, which rounds at the
    // logits' magnitude: 0.017616272 for logits [-71.9922, -76.02241]
    // (PyTorch 0.017614596), and a relative error of 1e-3 near 1000. The
    // loss is ln(1 + e^-d) for a gap d below the target's logit.
    for (base, gap) in [(-71.9922f32, 4.03021f32), (1000.0, 4.0), (-3e4, 6.0)] {
        let x = Tensor::from_vec(vec![base, base - gap], &[1, 2], dev)?;
        let targets = Tensor::from_vec_i32(vec![0], &[1], dev)?;
        let got = x.cross_entropy(&targets)?.item()?;
        let d = (base as f64) - ((base - gap) as f64);
        let want = (-d).exp().ln_1p();
        assert!(
            (got as f64 - want).abs() <= 2e-5 * want,
            "logits [{base}, {}]: loss {got}, expected {want}",
            base - gap
        );
    }
    Ok(())
});

conformance!(losses_refuse_what_pytorch_refuses, |dev| {
    let ones = Tensor::ones(&[3], dev)?;
    for bad in [
        vec![0.5, 1.5, 0.2],
        vec![0.5, -0.1, 0.2],
        vec![f32::NAN, 0.5, 0.5],
    ] {
        let x = Tensor::from_vec(bad.clone(), &[3], dev)?;
        let err = BceLoss::new().forward(&x, &ones);
        assert!(err.is_err(), "bce of {bad:?}");
        assert!(err.unwrap_err().to_string().contains("[0, 1]"));
    }
    let targets = Tensor::from_vec(vec![0.5, 2.0, 0.2], &[3], dev)?;
    assert!(BceLoss::new()
        .forward(&ones.mul_scalar(0.5)?, &targets)
        .is_err());
    // Probability targets with a non-default ignore_index.
    let logits = Tensor::zeros(&[2, 3], dev)?;
    let probs = Tensor::full(&[2, 3], 1.0 / 3.0, dev)?;
    assert!(CrossEntropyLoss::new()
        .ignore_index(1)
        .forward(&logits, &probs)
        .is_err());
    assert!(CrossEntropyLoss::new().forward(&logits, &probs).is_ok());
    Ok(())
});

conformance!(softmax_of_a_scalar_is_one_with_a_zero_gradient, |dev| {
    // `self.rank() - 1` underflowed for a 0-d input (a panic in debug
    // builds); PyTorch gives 1 (log: 0) and a zero gradient.
    let x = Tensor::scalar(3.5, dev)?.requires_grad_()?;
    assert_eq!(x.softmax(0)?.item()?, 1.0);
    assert_eq!(x.log_softmax(-1)?.item()?, 0.0);
    x.softmax(0)?.backward()?;
    assert_eq!(x.grad().expect("a gradient").item()?, 0.0);
    Ok(())
});

conformance!(ops_on_a_scalar_are_values_or_errors_never_panics, |dev| {
    // A 0-d tensor passed normalize_axis for dim 0, then ops indexed its
    // (empty) shape: dim, argmax, index_select, transpose, squeeze, chunk
    // and cat panicked. PyTorch lets reductions, softmax and squeeze take
    // dim 0 or -1 on a scalar; the rest are errors.
    let x = Tensor::scalar(2.5, dev)?;
    assert_eq!(x.sum(&[0], false)?.item()?, 2.5);
    assert_eq!(x.mean(&[-1], true)?.item()?, 2.5);
    assert_eq!(x.max(&[0], false)?.item()?, 2.5);
    assert_eq!(x.argmax(0, false)?.to_vec_i32()?, [0]);
    assert_eq!(x.logsumexp(&[0], false)?.item()?, 2.5);
    assert!(x.sum(&[1], false).is_err());
    let idx = Tensor::from_vec_i32(vec![0], &[1], dev)?;
    assert!(x.dim(0).is_err());
    assert!(x.index_select(0, &idx).is_err());
    assert!(x.gather(0, &idx).is_err());
    assert!(x.transpose(0, 0).is_err());
    assert_eq!(x.squeeze(0)?.dims(), [0usize; 0]);
    assert!(x.squeeze(1).is_err());
    assert!(x.chunk(2, 0).is_err());
    assert!(x.split(1, 0).is_err());
    assert!(Tensor::cat(&[x.clone(), x.clone()], 0).is_err());
    assert_eq!(Tensor::stack(&[x.clone(), x], 0)?.dims(), [2]);
    Ok(())
});

// `full` filled on the device as zeros plus the value: a device that
// flushes subnormal sums to zero (lavapipe from Mesa 26 does, and WGSL
// allows it) made `full(1e-40)` all zeros. Subnormal fills now go up from
// the host with their bits.
conformance!(full_keeps_subnormal_values_bit_for_bit, |dev| {
    for value in [1e-40f32, -1e-45, f32::MIN_POSITIVE / 2.0] {
        let t = Tensor::full(&[5], value, dev)?;
        let bits: Vec<u32> = t.to_vec()?.iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, [value.to_bits(); 5], "full({value:e})");
    }
    Ok(())
});

// --- outputs started from recycled buffers are written everywhere ---------

conformance!(cat_and_slice_gradients_leave_no_stale_values, |dev| {
    // `cat` and the gradient of a slice start from a buffer the backend
    // recycles as it is (`Backend::empty`); freed buffers of the same
    // length full of 7s (big enough to be pooled) must not show through.
    let (rows, cols) = (5, 1024);
    let junk = || -> lam::Result<()> {
        let held = (0..4)
            .map(|_| Tensor::full(&[rows, cols], 7.0, dev))
            .collect::<lam::Result<Vec<_>>>()?;
        drop(held);
        Ok(())
    };
    junk()?;
    let x = values(&[rows, cols], 1.0, 3, dev)?.requires_grad_()?;
    x.narrow(0, 1, 2)?.sum_all()?.backward()?;
    let mut want = vec![0.0; rows * cols];
    want[cols..3 * cols].fill(1.0);
    let want = Tensor::from_vec(want, &[rows, cols], dev)?;
    assert_same("narrow's gradient", &x.grad().unwrap(), &want)?;
    // Along the last dim the zero regions are strided.
    junk()?;
    let y = values(&[rows, cols], 1.0, 6, dev)?.requires_grad_()?;
    y.narrow(1, 3, 10)?.sum_all()?.backward()?;
    let want: Vec<f32> = (0..rows * cols)
        .map(|i| {
            if (3..13).contains(&(i % cols)) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let want = Tensor::from_vec(want, &[rows, cols], dev)?;
    assert_same("a column slice's gradient", &y.grad().unwrap(), &want)?;
    junk()?;
    let (a, b) = (
        values(&[2, cols], 1.0, 4, dev)?,
        values(&[3, cols], 1.0, 5, dev)?,
    );
    let joined = Tensor::cat(&[a.clone(), b.clone()], 0)?;
    let want: Vec<f32> = [a.to_vec()?, b.to_vec()?].concat();
    assert_same("cat", &joined, &Tensor::from_vec(want, &[rows, cols], dev)?)?;
    Ok(())
});
