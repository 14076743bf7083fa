//! Batch norm in training mode as one fused op (Backend `fused_batch_norm`
//! and its gradient, composed from tensor ops on the unfused devices)
//! against the formula and its gradient in f64 on the host: `[N, C]`,
//! `[N, C, L]`, `[N, C, H, W]` and `[N, C, D, H, W]` inputs, odd sizes,
//! size-1 spatial dims, one sample with spatial dims, large offsets, a
//! permuted input, with and without weight and bias; a constant channel
//! normalizes to exact zeros and a NaN stays in its channel; finite
//! differences; the running statistics (fused, against the composition
//! and over many batches); BatchNorm3d; one fused call each way per use.

use lam::nn::functional as F;
use lam::nn::{BatchNorm2d, BatchNorm3d, BatchNormConfig, Module};
use lam::prelude::*;

use crate::common::close;
use crate::conformance;

use super::{check, rnd, t, vals};

/// `(y, mean, var, dx, dw, db)` in f64 for an `[N, C, L]` input with
/// output gradient `g`.
#[allow(clippy::type_complexity)]
fn host(
    x: &[f32],
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    g: &[f32],
    [n, c, l]: [usize; 3],
    eps: f64,
) -> [Vec<f32>; 6] {
    let m = (n * l) as f64;
    let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let mut stats: [Vec<f32>; 4] = Default::default();
    for ch in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|i| (0..l).map(move |j| (i * c + ch) * l + j))
            .collect();
        let mean = idx.iter().map(|&k| x[k] as f64).sum::<f64>() / m;
        let var = idx
            .iter()
            .map(|&k| (x[k] as f64 - mean).powi(2))
            .sum::<f64>()
            / m;
        let s = 1.0 / (var + eps).sqrt();
        let xh = |k: usize| (x[k] as f64 - mean) * s;
        let wc = w.map_or(1.0, |w| w[ch] as f64);
        let sum_g: f64 = idx.iter().map(|&k| g[k] as f64).sum();
        let sum_gx: f64 = idx.iter().map(|&k| g[k] as f64 * xh(k)).sum();
        for &k in &idx {
            y[k] = (xh(k) * wc + b.map_or(0.0, |b| b[ch] as f64)) as f32;
            dx[k] = (wc * s * (g[k] as f64 - sum_g / m - xh(k) * sum_gx / m)) as f32;
        }
        for (out, v) in stats.iter_mut().zip([mean, var, sum_gx, sum_g]) {
            out.push(v as f32);
        }
    }
    let [mean, var, dw, db] = stats;
    [y, mean, var, dx, dw, db]
}

conformance!(
    batch_norm_matches_the_formula_and_its_gradient_in_f64,
    |dev| {
        // (input shape, offset, scale, tolerance): an offset of 1000 leaves f32
        // inputs 6e-5 apart, which f32 statistics see.
        let cases: [(&[usize], f32, f32, f32); 10] = [
            (&[2, 1], 0.0, 1.0, 2e-5),
            (&[5, 3], 0.0, 1.0, 2e-5),
            (&[3, 5, 7], 0.0, 1.0, 2e-5),
            (&[1, 3, 4, 5], 0.0, 1.0, 2e-5),
            (&[6, 4, 1, 1], -5.0, 20.0, 2e-5),
            (&[2, 3, 17, 9], 0.0, 1.0, 2e-5),
            (&[2, 2, 3, 1, 5], 0.0, 1.0, 2e-5),
            (&[4, 3, 33], 1000.0, 3.0, 2e-4),
            // The GPU sums a channel in chunks of whole images of about
            // 4,096 values: two chunks (5 images, then 4), and images
            // longer than a chunk (one each).
            (&[9, 2, 700], 0.5, 2.0, 1e-4),
            (&[3, 2, 5000], -1.0, 1.0, 1e-4),
        ];
        for (k, &(shape, offset, scale, tol)) in cases.iter().enumerate() {
            let (n, c) = (shape[0], shape[1]);
            let l: usize = shape[2..].iter().product();
            let numel = n * c * l;
            let xv: Vec<f32> = vals(numel, 40 + k as u32)
                .iter()
                .map(|v| offset + scale * v)
                .collect();
            let (wv, bv, gv) = (vals(c, 50), vals(c, 51), vals(numel, 52));
            for (use_w, use_b) in [(true, true), (false, false), (true, false)] {
                let what = format!("{shape:?}, weight {use_w}, bias {use_b}");
                let x = t(&xv, shape, dev).requires_grad_()?;
                let w = t(&wv, &[c], dev).requires_grad_()?;
                let b = t(&bv, &[c], dev).requires_grad_()?;
                let (rm, rv) = (Tensor::zeros(&[c], dev)?, Tensor::ones(&[c], dev)?);
                let y = F::batch_norm(
                    &x,
                    Some(&rm),
                    Some(&rv),
                    use_w.then_some(&w),
                    use_b.then_some(&b),
                    true,
                    0.5,
                    1e-5,
                )?;
                y.mul(&t(&gv, shape, dev))?.sum_all()?.backward()?;
                let [hy, hm, hv, hdx, hdw, hdb] = host(
                    &xv,
                    use_w.then_some(&wv[..]),
                    use_b.then_some(&bv[..]),
                    &gv,
                    [n, c, l],
                    1e-5,
                );
                assert_eq!(y.dims(), shape, "{what}");
                close(&y.to_vec()?, &hy, tol);
                close(&x.grad().expect("x grad").to_vec()?, &hdx, 10.0 * tol);
                if use_w {
                    close(&w.grad().expect("w grad").to_vec()?, &hdw, 10.0 * tol);
                }
                if use_b {
                    close(&b.grad().expect("b grad").to_vec()?, &hdb, 10.0 * tol);
                }
                // Running statistics moved halfway, the variance unbiased.
                let unbiased = (n * l) as f32 / (n * l - 1) as f32;
                let want_rm: Vec<f32> = hm.iter().map(|m| 0.5 * m).collect();
                let want_rv: Vec<f32> = hv.iter().map(|v| 0.5 + 0.5 * v * unbiased).collect();
                close(&rm.to_vec()?, &want_rm, tol);
                close(&rv.to_vec()?, &want_rv, tol);
            }
        }
        Ok(())
    }
);

conformance!(batch_norm_of_views_and_its_gradients, |dev| {
    // A [N, C, H, W] view of a channels-last [N, H, W, C] buffer, and a
    // narrowed one starting inside its buffer.
    let nhwc = rnd(&[3, 4, 5, 2], 61, dev);
    let x = nhwc.permute(&[0, 3, 1, 2])?;
    let y = F::batch_norm(&x, None, None, None, None, true, 0.1, 1e-5)?;
    let want = F::batch_norm(&x.contiguous()?, None, None, None, None, true, 0.1, 1e-5)?;
    close(&y.to_vec()?, &want.to_vec()?, 1e-5);
    let narrow = rnd(&[4, 6, 3], 62, dev).narrow(1, 2, 3)?;
    let y = F::batch_norm(&narrow, None, None, None, None, true, 0.1, 1e-5)?;
    let want = F::batch_norm(
        &narrow.contiguous()?,
        None,
        None,
        None,
        None,
        true,
        0.1,
        1e-5,
    )?;
    close(&y.to_vec()?, &want.to_vec()?, 1e-5);
    check(
        |a| {
            let x = a[0].permute(&[0, 3, 1, 2])?;
            F::batch_norm(&x, None, None, Some(&a[1]), Some(&a[2]), true, 0.1, 1e-5)
        },
        &[
            rnd(&[2, 3, 2, 3], 63, dev),
            rnd(&[3], 64, dev),
            rnd(&[3], 65, dev),
        ],
    )?;
    check(
        |a| F::batch_norm(&a[0], None, None, Some(&a[1]), None, true, 0.1, 1e-3),
        &[rnd(&[1, 2, 5], 66, dev), rnd(&[2], 67, dev)],
    )
});

conformance!(
    batch_norm_keeps_constants_exact_and_nan_in_its_channel,
    |dev| {
        // [3, 3, 2, 2]: channel 0 constant, channel 1 holds one NaN.
        let (n, c, l) = (3, 3, 4);
        let mut xv = vals(n * c * l, 70);
        for i in 0..n {
            for j in 0..l {
                xv[(i * c) * l + j] = 1000.1;
            }
        }
        xv[(2 * c + 1) * l + 3] = f32::NAN;
        let x = t(&xv, &[n, c, 2, 2], dev);
        let y = BatchNorm2d::new(c, dev)?.forward(&x)?.to_vec()?;
        for i in 0..n {
            let row = |ch: usize| &y[(i * c + ch) * l..(i * c + ch + 1) * l];
            assert!(row(0).iter().all(|&v| v == 0.0), "constant channel: {y:?}");
            assert!(row(1).iter().all(|v| v.is_nan()), "NaN channel: {y:?}");
            assert!(row(2).iter().all(|v| v.is_finite()), "other channel: {y:?}");
        }
        Ok(())
    }
);

conformance!(batch_norm_running_statistics_over_many_batches, |dev| {
    // The running mean and variance after six batches against the update
    // on the host from each batch's statistics in f64, with momentum 0.1
    // and as a cumulative average (momentum None: 1 / batches seen).
    let (n, c, l) = (4, 3, 6);
    let correction = (n * l) as f64 / (n * l - 1) as f64;
    for momentum in [Some(0.1), None] {
        let config = BatchNormConfig {
            momentum,
            ..BatchNormConfig::default()
        };
        let bn = BatchNorm2d::with_config(c, config, dev)?;
        let (mut mean, mut var) = (vec![0.0f64; c], vec![1.0f64; c]);
        for step in 0..6 {
            let xv = vals(n * c * l, 90 + step);
            bn.forward(&t(&xv, &[n, c, 2, 3], dev))?;
            let m = momentum.map_or(1.0 / (step as f64 + 1.0), f64::from);
            for ch in 0..c {
                let xs: Vec<f64> = (0..n)
                    .flat_map(|i| (0..l).map(move |j| (i * c + ch) * l + j))
                    .map(|k| xv[k] as f64)
                    .collect();
                let bm = xs.iter().sum::<f64>() / xs.len() as f64;
                let bv = xs.iter().map(|x| (x - bm).powi(2)).sum::<f64>() / xs.len() as f64;
                mean[ch] = mean[ch] * (1.0 - m) + bm * m;
                var[ch] = var[ch] * (1.0 - m) + bv * correction * m;
            }
        }
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let running = |t: &Option<Tensor>| t.as_ref().expect("tracked").to_vec();
        close(&running(&bn.running_mean)?, &f32s(&mean), 1e-5);
        close(&running(&bn.running_var)?, &f32s(&var), 1e-5);
        let count = bn.num_batches_tracked.as_ref().expect("tracked");
        assert_eq!(count.to_vec_i32()?, vec![6], "{momentum:?}");
    }
    Ok(())
});

#[test]
fn batch_norm_is_one_fused_op_each_way() {
    use lam::DeviceExt;
    let (dev, recorder) = lam::testing::Recorder::device(&Device::cpu());
    let bn = BatchNorm2d::new(3, &dev).expect("batch norm");
    let x = Tensor::randn(&[4, 3, 5, 5], &dev)
        .and_then(|x| x.requires_grad_())
        .expect("input");
    // Calls since `before`, less those of making the layer and input.
    let since = |before: &std::collections::BTreeMap<&'static str, u64>| {
        let mut calls = recorder.calls();
        for (k, n) in before {
            *calls.get_mut(k).expect("counts only grow") -= n;
        }
        calls.retain(|_, n| *n > 0);
        calls
    };
    let before = recorder.calls();
    let y = bn.forward(&x).expect("forward");
    let forward = since(&before);
    y.sum_all().and_then(|s| s.backward()).expect("backward");
    let calls = since(&before);
    assert_eq!(calls.get("fused_batch_norm"), Some(&1));
    assert_eq!(calls.get("fused_batch_norm_grad"), Some(&1));
    // The running mean, variance and batch count: one op, where they took
    // ten elementwise ops and casts.
    assert_eq!(calls.get("fused_batch_norm_running"), Some(&1));
    let want = ["fused_batch_norm", "fused_batch_norm_running"];
    assert!(forward.keys().eq(want.iter()), "{forward:?}");
    // The statistics are the kernel's: the one reduction is the test's sum.
    assert_eq!(calls.get("reduce"), Some(&1), "{calls:?}");
}

conformance!(batch_norm_3d_is_the_functional_form_over_five_dims, |dev| {
    let bn = BatchNorm3d::new(3, dev)?;
    assert_eq!(bn.type_name(), "BatchNorm3d");
    let x = rnd(&[2, 3, 2, 2, 3], 80, dev);
    let y = bn.forward(&x)?;
    let (w, b) = (bn.weight.as_ref(), bn.bias.as_ref());
    let want = F::batch_norm(&x, None, None, w, b, true, 0.1, 1e-5)?;
    close(&y.to_vec()?, &want.to_vec()?, 1e-6);
    // The running mean moved a tenth of the way to the batch's.
    let batch_mean = x.mean(&[0, 2, 3, 4], false)?.mul_scalar(0.1)?;
    let running = bn.running_mean.as_ref().expect("running mean");
    close(&running.to_vec()?, &batch_mean.to_vec()?, 1e-6);
    let err = bn
        .forward(&rnd(&[2, 3, 4, 4], 81, dev))
        .expect_err("a 4-d input");
    assert!(err.to_string().contains("BatchNorm3d"), "{err}");
    Ok(())
});
