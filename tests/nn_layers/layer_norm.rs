//! Layer norm as one fused op (Backend `fused_layer_norm` and its gradient,
//! composed from tensor ops on the unfused devices) against the formula and
//! its gradient in f64 on the host: one element, odd widths, several
//! normalized dims, large offsets, a transposed input, with and without
//! weight and bias; finite differences; one fused call each way per use.

use lam::nn::functional as F;
use lam::nn::{LayerNorm, Module};
use lam::prelude::*;

use crate::common::close;
use crate::conformance;

use super::{check, rnd, t, vals};

/// `(y, dx, dw, db)` in f64 for rows of `cols` with output gradient `g`.
#[allow(clippy::type_complexity)]
fn host(
    x: &[f32],
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    g: &[f32],
    cols: usize,
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / cols;
    let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut dw, mut db) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for r in 0..rows {
        let row: Vec<f64> = x[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let m = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - m).powi(2)).sum::<f64>() / cols as f64;
        let s = 1.0 / (var + eps).sqrt();
        let xh: Vec<f64> = row.iter().map(|v| (v - m) * s).collect();
        let wj = |j: usize| w.map_or(1.0, |w| w[j] as f64);
        let gy: Vec<f64> = (0..cols).map(|j| g[r * cols + j] as f64 * wj(j)).collect();
        let mean_gy = gy.iter().sum::<f64>() / cols as f64;
        let mean_dot = gy.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        for j in 0..cols {
            y[r * cols + j] = (xh[j] * wj(j) + b.map_or(0.0, |b| b[j] as f64)) as f32;
            dx[r * cols + j] = (s * (gy[j] - mean_gy - xh[j] * mean_dot)) as f32;
            dw[j] += g[r * cols + j] as f64 * xh[j];
            db[j] += g[r * cols + j] as f64;
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (y, dx, f(dw), f(db))
}

conformance!(
    layer_norm_matches_the_formula_and_its_gradient_in_f64,
    |dev| {
        // (input shape, normalized dims, offset, scale, tolerance): an
        // offset of 1000 leaves f32 inputs 6e-5 apart, which f32 statistics
        // (the composite's) see.
        let cases: [(&[usize], usize, f32, f32, f32); 6] = [
            (&[1, 1], 1, 0.0, 1.0, 2e-5),
            // 150 rows: the GPU sums the parameters' gradients in chunks
            // of 64 rows, then the chunks, the last one partial.
            (&[3, 50, 7], 1, 0.5, 2.0, 1e-4),
            (&[3, 5], 1, 0.0, 1.0, 2e-5),
            (&[2, 3, 4], 2, 0.0, 1.0, 2e-5),
            (&[4, 33], 1, 1000.0, 3.0, 2e-4),
            (&[2, 300], 1, -5.0, 20.0, 2e-5),
        ];
        for (k, &(shape, dims, offset, scale, tol)) in cases.iter().enumerate() {
            let norm = &shape[shape.len() - dims..];
            let cols: usize = norm.iter().product();
            let n: usize = shape.iter().product();
            let xv: Vec<f32> = vals(n, 10 + k as u32)
                .iter()
                .map(|v| offset + scale * v)
                .collect();
            let (wv, bv, gv) = (vals(cols, 20), vals(cols, 21), vals(n, 22));
            for (use_w, use_b) in [(true, true), (false, false), (true, false)] {
                let what = format!("{shape:?}, weight {use_w}, bias {use_b}");
                let x = t(&xv, shape, dev).requires_grad_()?;
                let w = t(&wv, norm, dev).requires_grad_()?;
                let b = t(&bv, norm, dev).requires_grad_()?;
                let y = F::layer_norm(&x, norm, use_w.then_some(&w), use_b.then_some(&b), 1e-5)?;
                y.mul(&t(&gv, shape, dev))?.sum_all()?.backward()?;
                let (hy, hdx, hdw, hdb) = host(
                    &xv,
                    use_w.then_some(&wv[..]),
                    use_b.then_some(&bv[..]),
                    &gv,
                    cols,
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
            }
        }
        Ok(())
    }
);

conformance!(layer_norm_of_a_transposed_input_and_its_gradients, |dev| {
    // A [5, 3] view of a [3, 5] buffer: rows strided through the buffer.
    let x = rnd(&[3, 5], 31, dev).t()?;
    let y = F::layer_norm(&x, &[3], None, None, 1e-5)?;
    let want = F::layer_norm(&x.contiguous()?, &[3], None, None, 1e-5)?;
    close(&y.to_vec()?, &want.to_vec()?, 1e-6);
    check(
        |a| F::layer_norm(&a[0].t()?, &[3], Some(&a[1]), Some(&a[2]), 1e-5),
        &[
            rnd(&[3, 5], 32, dev),
            rnd(&[3], 33, dev),
            rnd(&[3], 34, dev),
        ],
    )?;
    check(
        |a| F::layer_norm(&a[0], &[2, 3], Some(&a[1]), None, 1e-3),
        &[rnd(&[4, 2, 3], 35, dev), rnd(&[2, 3], 36, dev)],
    )
});

#[test]
fn layer_norm_is_one_fused_op_each_way() {
    use lam::DeviceExt;
    let (dev, recorder) = lam::testing::Recorder::device(&Device::cpu());
    let ln = LayerNorm::new(&[6], &dev).expect("layer norm");
    let x = Tensor::randn(&[4, 6], &dev)
        .and_then(|x| x.requires_grad_())
        .expect("input");
    ln.forward(&x)
        .and_then(|y| y.sum_all())
        .and_then(|s| s.backward())
        .expect("forward and backward");
    let calls = recorder.calls();
    assert_eq!(calls.get("fused_layer_norm"), Some(&1));
    assert_eq!(calls.get("fused_layer_norm_grad"), Some(&1));
    // The statistics are the kernel's: the one reduction is the test's sum.
    assert_eq!(calls.get("reduce"), Some(&1), "{calls:?}");
}
