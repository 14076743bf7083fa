//! The fused attention kernels against the composite (the unfused twin) on
//! odd sizes, strided views, head dims up to the kernels' 128, masks, NaN
//! and fully masked rows; past 128 features GPUs decline and compose.

use lam::prelude::*;
use lam::{SdpaMask, SdpaOptions};

use crate::common::{self, fixture};
use crate::conformance;

use super::rnd;

/// `(B, H, L, S, E, Ev)`.
type Sizes = (usize, usize, usize, usize, usize, usize);

/// The output and the gradients of `q`, `k`, `v` (through `sum(out²)`) of
/// one attention call on `dev`, the inputs made from `salt` (the same
/// values on every device); `nan_row` puts a NaN into query 0.
fn sdpa_run(
    dev: &Device,
    (b, h, l, s, e, ev): Sizes,
    causal: bool,
    mask: Option<&str>,
    nan_row: bool,
    salt: u64,
) -> lam::Result<Vec<Vec<f32>>> {
    let mut q = rnd(&[b, h, l, e], salt, dev);
    if nan_row {
        let mut values = q.to_vec()?;
        values[0] = f32::NAN;
        q = Tensor::from_vec(values, &[b, h, l, e], dev)?;
    }
    let q = q.requires_grad_()?;
    let k = rnd(&[b, h, s, e], salt + 1, dev).requires_grad_()?;
    let v = rnd(&[b, h, s, ev], salt + 2, dev).requires_grad_()?;
    // A bool mask keeping about 3 keys in 4, and an additive one whose
    // last query row is -∞ everywhere (a fully masked row).
    let keep = rnd(&[l, s], salt + 3, dev).gt_scalar(-0.5)?;
    let mut additive = rnd(&[1, h, l, s], salt + 4, dev).to_vec()?;
    for head in 0..h {
        let last = (head * l + l - 1) * s;
        additive[last..last + s].fill(f32::NEG_INFINITY);
    }
    let additive = Tensor::from_vec(additive, &[1, h, l, s], dev)?;
    let options = SdpaOptions {
        mask: match mask {
            Some("bool") => Some(SdpaMask::Bool(&keep)),
            Some(_) => Some(SdpaMask::Additive(&additive)),
            None => None,
        },
        causal,
        ..SdpaOptions::default()
    };
    let out = Tensor::scaled_dot_product_attention(&q, &k, &v, options)?;
    out.mul(&out)?.sum_all()?.backward()?;
    let mut all = vec![out.to_vec()?];
    for t in [&q, &k, &v] {
        all.push(
            t.grad()
                .map(|g| g.to_vec())
                .transpose()?
                .unwrap_or_default(),
        );
    }
    Ok(all)
}

attention_conformance!(sdpa_fused_equals_composite_on_odd_shapes, |dev| {
    // The fused kernels (on fused devices) against the composite of the
    // unfused twin: one query and key, lengths no tile size divides, more
    // keys than one tile holds (the online softmax), more queries than a
    // query block, odd feature counts, causal with L > S and L < S, bool and
    // additive masks with a fully masked row, a NaN query row.
    let composite = common::unfused(dev);
    let cases: &[(Sizes, bool, Option<&str>, bool)] = &[
        ((1, 2, 1, 1, 3, 2), false, None, false),
        ((2, 1, 7, 4, 5, 3), true, None, false),
        ((1, 2, 4, 9, 3, 4), true, Some("additive"), false),
        ((1, 1, 5, 67, 4, 3), false, Some("bool"), false),
        ((1, 1, 3, 300, 3, 2), true, None, false),
        ((1, 1, 3, 300, 3, 2), false, Some("additive"), false),
        ((1, 1, 70, 70, 3, 2), true, None, false),
        ((1, 2, 5, 6, 3, 3), false, None, true),
    ];
    for (i, &(sizes, causal, mask, nan_row)) in cases.iter().enumerate() {
        let salt = 40 + 10 * i as u64;
        let fused = sdpa_run(dev, sizes, causal, mask, nan_row, salt)?;
        let reference = sdpa_run(&composite, sizes, causal, mask, nan_row, salt)?;
        for (what, (a, b)) in ["output", "dq", "dk", "dv"]
            .iter()
            .zip(fused.iter().zip(&reference))
        {
            let what = format!("case {i} {sizes:?} causal {causal} mask {mask:?}: {what}");
            fixture::close(&what, a, b, 1e-5, 1e-4)?;
        }
        if nan_row && fused[0].iter().filter(|x| x.is_nan()).count() != 3 {
            return Err(Error::invalid("sdpa", "the NaN query's row only is NaN"));
        }
    }
    Ok(())
});

attention_conformance!(sdpa_fused_equals_composite_on_head_dims_and_views, |dev| {
    // Head dims from 8 to the kernels' 128 (one, two and four of the tiled
    // kernels' column chunks; 80 pads to 128), E ≠ Ev, lengths around the
    // tiled kernels' blocks of 32 rows and key tiles of 16 or 32 (1, 7, 33,
    // 65, 130), causal with L > S and L < S, masks with a fully masked row,
    // and a NaN query row.
    let composite = common::unfused(dev);
    let cases: &[(Sizes, bool, Option<&str>, bool)] = &[
        ((1, 1, 1, 1, 8, 8), true, None, false),
        ((1, 2, 7, 65, 8, 5), true, Some("additive"), false),
        ((2, 1, 65, 7, 64, 64), true, Some("bool"), false),
        ((1, 1, 130, 33, 80, 16), true, None, false),
        ((1, 1, 33, 130, 128, 128), false, Some("additive"), false),
        ((1, 2, 9, 40, 16, 80), false, None, true),
    ];
    for (i, &(sizes, causal, mask, nan_row)) in cases.iter().enumerate() {
        let salt = 140 + 10 * i as u64;
        let fused = sdpa_run(dev, sizes, causal, mask, nan_row, salt)?;
        let reference = sdpa_run(&composite, sizes, causal, mask, nan_row, salt)?;
        for (what, (a, b)) in ["output", "dq", "dk", "dv"]
            .iter()
            .zip(fused.iter().zip(&reference))
        {
            let what = format!("case {i} {sizes:?} causal {causal} mask {mask:?}: {what}");
            fixture::close(&what, a, b, 1e-5, 1e-4)?;
        }
    }
    // Strided views with head dim 64: heads split out of [B, L, H·E] by a
    // permute, keys broadcast over heads, values transposed, a mask
    // broadcast over batch and heads; the same as contiguous copies.
    let q = rnd(&[2, 40, 3, 64], 200, dev).permute(&[0, 2, 1, 3])?;
    let k = rnd(&[2, 1, 37, 64], 201, dev).expand(&[2, 3, 37, 64])?;
    let v = rnd(&[2, 3, 48, 37], 202, dev).transpose(-1, -2)?;
    let mask = rnd(&[40, 37], 203, dev);
    let run = |q: &Tensor, k: &Tensor, v: &Tensor| -> lam::Result<Vec<Vec<f32>>> {
        let (q, k, v) = (q.detach().requires_grad_()?, k.detach(), v.detach());
        let (k, v) = (k.requires_grad_()?, v.requires_grad_()?);
        let options = SdpaOptions {
            mask: Some(SdpaMask::Additive(&mask)),
            causal: true,
            ..SdpaOptions::default()
        };
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, options)?;
        out.mul(&out)?.sum_all()?.backward()?;
        let grads = [&q, &k, &v].map(|t| t.grad().map(|g| g.to_vec()));
        let mut all = vec![out.to_vec()?];
        for g in grads {
            all.push(g.transpose()?.unwrap_or_default());
        }
        Ok(all)
    };
    let strided = run(&q, &k, &v)?;
    let copied = run(&q.contiguous()?, &k.contiguous()?, &v.contiguous()?)?;
    for (what, (a, b)) in ["output", "dq", "dk", "dv"]
        .iter()
        .zip(strided.iter().zip(&copied))
    {
        fixture::close(&format!("strided {what}"), a, b, 1e-5, 1e-4)?;
    }
    Ok(())
});

conformance!(head_dims_past_the_kernels_limit_compose, |dev| {
    // 130 features: above the WGSL kernels' 128, so GPUs decline and
    // compose; the result is the attention all the same.
    let (q, k, v) = (
        rnd(&[2, 130], 21, dev),
        rnd(&[3, 130], 22, dev),
        rnd(&[3, 2], 23, dev),
    );
    let out = Tensor::scaled_dot_product_attention(&q, &k, &v, SdpaOptions::default())?;
    let scores = q.matmul(&k.t()?)?.mul_scalar(1.0 / 130f32.sqrt())?;
    let want = scores.softmax(-1)?.matmul(&v)?;
    fixture::close("130 features", &out.to_vec()?, &want.to_vec()?, 1e-5, 1e-4)?;
    // No features: every score is 0, so each query averages the values, and
    // the values' gradient is the output gradient spread evenly.
    let (q, k) = (rnd(&[2, 0], 24, dev), rnd(&[3, 0], 25, dev));
    let v = rnd(&[3, 2], 26, dev).requires_grad_()?;
    let out = Tensor::scaled_dot_product_attention(&q, &k, &v, SdpaOptions::default())?;
    let mean = v.mean(&[0], true)?.expand(&[2, 2])?;
    fixture::close("no features", &out.to_vec()?, &mean.to_vec()?, 1e-6, 1e-5)?;
    out.sum_all()?.backward()?;
    let dv = v
        .grad()
        .map(|g| g.to_vec())
        .transpose()?
        .unwrap_or_default();
    fixture::close("no features, dv", &dv, &[2.0 / 3.0; 6], 1e-6, 1e-5)
});
