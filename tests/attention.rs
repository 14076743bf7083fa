//! Scaled dot-product attention (`Tensor::scaled_dot_product_attention`,
//! Backend `fused_attention` and `fused_attention_grad`) and
//! `MultiheadAttention`'s fused path, on every device — the fused kernels on
//! cpu, vulkan and gl, the composite on their unfused twins — and, for the
//! tests written with `attention_conformance!`, again composed around the
//! backend's `fused_attention_weights` and `fused_attention_weights_grad`
//! (on twins declining the fused attention,
//! [`common::composed_attention`]) and on vulkan and gl with the tiled
//! kernels (`AttentionKernel::Tiled`, [`common::tiled_attention`]).
//!
//! - Known values: `fixtures/attention/sdpa.json`, PyTorch's
//!   `F.scaled_dot_product_attention` in float64
//!   (`fixtures/make_attention_fixtures.py`): outputs and the gradients of
//!   `q`, `k`, `v` and additive masks.
//! - Gradient checks against central differences, with a mask and causal.
//! - `MultiheadAttention` without weights (the fused path) against the same
//!   layer with weights (the composite), masks of every kind included, and a
//!   batch whose keys are all padding (uniform attention on both paths).
//! - The fused kernels against the composite on odd sizes, strided views,
//!   head dims up to the kernels' 128, masks, NaN and fully masked rows.
//! - Bad input gives errors.
//!
//! Shapes are tiny because the GPU runs are on software rasterisers.

mod common;

use common::fixture;
use lam::nn::{AttnMask, Module, MultiheadAttention, MultiheadAttentionConfig};
use lam::prelude::*;
use lam::testing::{gradcheck, GradCheck};
use lam::{SdpaMask, SdpaOptions};
use serde_json::Value;

/// `conformance!`, the same body on a twin of each device that composes
/// attention around the backend's softmax between the products
/// ([`common::composed_attention`]), and on each GPU adapter with the tiled
/// attention kernels: tests `NAME::fused::*`, `NAME::composed::{cpu,
/// vulkan, gl}` and `NAME::tiled::{vulkan, gl}`.
macro_rules! attention_conformance {
    ($name:ident, |$dev:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            conformance!(fused, |$dev| $body);

            mod composed {
                #[allow(unused_imports)]
                use super::*;

                fn body($dev: &lam::Device) -> lam::Result<()> $body

                fn run(device: Option<lam::Device>) {
                    let Some(device) = device else { return };
                    let device = $crate::common::composed_attention(&device);
                    if let Err(e) = body(&device) {
                        panic!("on {}: {e}", device.name());
                    }
                }

                #[test]
                fn cpu() {
                    use lam::DeviceExt;
                    run(Some(lam::Device::cpu()));
                }

                #[test]
                fn vulkan() {
                    run($crate::common::gpu("vulkan"));
                }

                #[test]
                fn gl() {
                    run($crate::common::gpu("gl"));
                }
            }

            mod tiled {
                #[allow(unused_imports)]
                use super::*;

                fn body($dev: &lam::Device) -> lam::Result<()> $body

                fn run(api: &str) {
                    if let Some(device) = $crate::common::tiled_attention(api) {
                        if let Err(e) = body(&device) {
                            panic!("on {} (tiled): {e}", device.name());
                        }
                    }
                }

                #[test]
                fn vulkan() {
                    run("vulkan");
                }

                #[test]
                fn gl() {
                    run("gl");
                }
            }
        }
    };
}

fn rnd(shape: &[usize], salt: u64, dev: &Device) -> Tensor {
    let n = shape.iter().product::<usize>() as u32;
    let data = (0..n)
        .map(|i| 2.0 * lam::rng::uniform01(salt, i) - 1.0)
        .collect();
    Tensor::from_vec(data, shape, dev).expect("a test tensor")
}

/// Runs one fixture case; returns the largest absolute error seen.
fn run_case(case: &Value, dev: &Device) -> lam::Result<f32> {
    let input = |key: &str| -> lam::Result<Tensor> {
        fixture::tensor(&case[key], DType::F32, dev)?.requires_grad_()
    };
    let (q, k, v) = (input("q")?, input("k")?, input("v")?);
    let mask = match case.get("mask") {
        Some(m) => Some(fixture::tensor(m, DType::F32, dev)?.requires_grad_()?),
        None => None,
    };
    let kind = case.get("mask_kind").and_then(Value::as_str);
    let options = SdpaOptions {
        mask: mask.as_ref().map(|m| match kind {
            Some("bool") => SdpaMask::Bool(m),
            _ => SdpaMask::Additive(m),
        }),
        causal: case["causal"].as_bool().unwrap_or(false),
        scale: case["scale"].as_f64().map(|s| s as f32),
        dropout_p: 0.0,
    };
    let out = Tensor::scaled_dot_product_attention(&q, &k, &v, options)?;
    let g = fixture::tensor(&case["grad_output"], DType::F32, dev)?;
    out.backward_with(&g)?;
    let mut worst = 0.0f32;
    let mut expect = |what: &str, actual: Option<Tensor>| -> lam::Result<()> {
        let actual =
            actual.ok_or_else(|| Error::invalid("sdpa", format!("{what}: no gradient")))?;
        let want = fixture::floats(&case[what]);
        for (a, w) in actual.to_vec()?.iter().zip(&want) {
            worst = worst.max((a - w).abs());
        }
        fixture::expect_close(what, &actual, &case[what])
    };
    expect("output", Some(out))?;
    expect("dq", q.grad())?;
    expect("dk", k.grad())?;
    expect("dv", v.grad())?;
    if case.get("dmask").is_some() {
        expect("dmask", mask.as_ref().and_then(Tensor::grad))?;
    } else if let Some(m) = &mask {
        // A bool mask takes no gradient.
        if m.grad().is_some_and(|g| {
            g.abs()
                .and_then(|a| a.sum_all())
                .and_then(|s| s.item())
                .unwrap_or(0.0)
                != 0.0
        }) {
            return Err(Error::invalid("sdpa", "a bool mask got a gradient"));
        }
    }
    Ok(worst)
}

attention_conformance!(sdpa_matches_pytorch, |dev| {
    let cases = fixture::file_cases("attention/sdpa.json", 21);
    let worst = std::sync::Mutex::new(0.0f32);
    fixture::run_cases(&cases, dev, |case, dev| {
        let w = run_case(case, dev)?;
        let mut worst = worst.lock().unwrap_or_else(|e| e.into_inner());
        *worst = worst.max(w);
        Ok(())
    })?;
    eprintln!(
        "sdpa vs PyTorch on {dev}: {} cases, max |error| {:.2e}",
        cases.len(),
        worst.into_inner().unwrap_or_else(|e| e.into_inner())
    );
    Ok(())
});

attention_conformance!(sdpa_gradients_match_finite_differences, |dev| {
    let (q, k, v) = (
        rnd(&[1, 2, 3, 4], 1, dev),
        rnd(&[1, 2, 5, 4], 2, dev),
        rnd(&[1, 2, 5, 3], 3, dev),
    );
    let additive = rnd(&[3, 5], 4, dev);
    let check = |causal: bool| {
        gradcheck(
            |t| {
                Tensor::scaled_dot_product_attention(
                    &t[0],
                    &t[1],
                    &t[2],
                    SdpaOptions {
                        mask: Some(SdpaMask::Additive(&t[3])),
                        causal,
                        scale: Some(0.7),
                        dropout_p: 0.0,
                    },
                )
            },
            &[q.clone(), k.clone(), v.clone(), additive.clone()],
            GradCheck::default(),
        )
    };
    check(false)?;
    check(true)?;
    // Without a mask (the fused backward on fused devices).
    gradcheck(
        |t| Tensor::scaled_dot_product_attention(&t[0], &t[1], &t[2], SdpaOptions::default()),
        &[q.clone(), k.clone(), v.clone()],
        GradCheck::default(),
    )
});

attention_conformance!(sdpa_fully_masked_rows_are_zero, |dev| {
    let (q, k, v) = (
        rnd(&[2, 3, 4], 5, dev),
        rnd(&[2, 4, 4], 6, dev),
        rnd(&[2, 4, 2], 7, dev),
    );
    let q = q.requires_grad_()?;
    // Batch 1 may attend nowhere; batch 0 everywhere.
    let mut keep = vec![1.0; 4];
    keep.extend([0.0; 4]);
    let keep = Tensor::from_vec(keep, &[2, 1, 4], dev)?;
    let options = SdpaOptions {
        mask: Some(SdpaMask::Bool(&keep)),
        ..SdpaOptions::default()
    };
    let out = Tensor::scaled_dot_product_attention(&q, &k, &v, options)?;
    let values = out.to_vec()?;
    if values[6..].iter().any(|&x| x != 0.0) || values[..6].iter().all(|&x| x == 0.0) {
        return Err(Error::invalid("sdpa", format!("masked rows: {values:?}")));
    }
    out.sum_all()?.backward()?;
    let dq = q
        .grad()
        .map(|g| g.to_vec())
        .transpose()?
        .unwrap_or_default();
    if dq[12..].iter().any(|&x| x != 0.0 || x.is_nan()) {
        return Err(Error::invalid("sdpa", format!("masked rows' dq: {dq:?}")));
    }
    Ok(())
});

attention_conformance!(sdpa_strided_inputs_and_dropout, |dev| {
    // Heads split out of [B, L, H·d] by a permute (MultiheadAttention's
    // layout), keys broadcast over heads: the same as contiguous copies.
    let q = rnd(&[2, 5, 3, 4], 8, dev).permute(&[0, 2, 1, 3])?;
    let k = rnd(&[2, 1, 6, 4], 9, dev).expand(&[2, 3, 6, 4])?;
    let v = rnd(&[2, 3, 4, 6], 10, dev).transpose(-1, -2)?;
    let options = SdpaOptions {
        causal: true,
        ..SdpaOptions::default()
    };
    let a = Tensor::scaled_dot_product_attention(&q, &k, &v, options)?;
    let b = Tensor::scaled_dot_product_attention(
        &q.contiguous()?,
        &k.contiguous()?,
        &v.contiguous()?,
        options,
    )?;
    fixture::close("strided", &a.to_vec()?, &b.to_vec()?, 1e-6, 1e-5)?;
    // Dropout 1 drops every weight; dropout 0 is the plain attention.
    let all = SdpaOptions {
        dropout_p: 1.0,
        ..SdpaOptions::default()
    };
    let dropped = Tensor::scaled_dot_product_attention(&q, &k, &v, all)?;
    if dropped.to_vec()?.iter().any(|&x| x != 0.0) {
        return Err(Error::invalid("sdpa", "dropout_p = 1 left weights"));
    }
    Ok(())
});

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

/// `MultiheadAttention` outputs and gradients without weights (fused) and
/// with them (composite) for the given masks.
fn mha_paths_agree(
    m: &MultiheadAttention,
    x: &Tensor,
    kpm: Option<AttnMask<'_>>,
    attn: Option<AttnMask<'_>>,
) -> lam::Result<()> {
    let run = |fused: bool| -> lam::Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let x = x.detach().requires_grad_()?;
        for p in m.parameters() {
            p.zero_grad();
        }
        let out = if fused {
            m.forward(&x, &x, &x, kpm, attn, false)?.0
        } else {
            m.forward_with_weights(&x, &x, &x, kpm, attn, true)?.0
        };
        out.mul(&out)?.sum_all()?.backward()?;
        let mut grads = vec![x
            .grad()
            .map(|g| g.to_vec())
            .transpose()?
            .unwrap_or_default()];
        for p in m.parameters() {
            grads.push(
                p.grad()
                    .map(|g| g.to_vec())
                    .transpose()?
                    .unwrap_or_default(),
            );
        }
        Ok((out.to_vec()?, grads))
    };
    let (fused, fused_grads) = run(true)?;
    let (composed, composed_grads) = run(false)?;
    fixture::close("MultiheadAttention output", &fused, &composed, 1e-5, 1e-4)?;
    for (i, (a, b)) in fused_grads.iter().zip(&composed_grads).enumerate() {
        fixture::close(&format!("gradient {i}"), a, b, 1e-5, 1e-4)?;
    }
    Ok(())
}

attention_conformance!(mha_fused_path_equals_composite, |dev| {
    let (l, b, e, h) = (5, 3, 8, 2);
    let x = rnd(&[l, b, e], 11, dev);
    let m = MultiheadAttention::new(e, h, dev)?;
    mha_paths_agree(&m, &x, None, None)?;
    // Key padding: batch 2's keys are all padding (uniform attention).
    let mut pad = vec![0.0; b * l];
    pad[3] = 1.0;
    pad[2 * l..].fill(1.0);
    let pad = Tensor::from_vec(pad, &[b, l], dev)?;
    let causal = lam::nn::causal_mask(l, dev)?;
    mha_paths_agree(
        &m,
        &x,
        Some(AttnMask::Bool(&pad)),
        Some(AttnMask::Bool(&causal)),
    )?;
    // The causal mask as 0/-∞ (on the CPU, the kernel's causal flag).
    let hidden = causal.to_vec()?;
    let causal_additive = hidden
        .iter()
        .map(|&x| if x != 0.0 { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    let causal_additive = Tensor::from_vec(causal_additive, &[l, l], dev)?;
    mha_paths_agree(&m, &x, None, Some(AttnMask::Additive(&causal_additive)))?;
    let additive = rnd(&[b * h, l, l], 12, dev);
    mha_paths_agree(
        &m,
        &x,
        Some(AttnMask::Bool(&pad)),
        Some(AttnMask::Additive(&additive)),
    )?;
    // Extra key positions (bias_k/bias_v, a zero key) widen the masks.
    let config = MultiheadAttentionConfig {
        add_bias_kv: true,
        add_zero_attn: true,
        batch_first: true,
        ..MultiheadAttentionConfig::default()
    };
    let m = MultiheadAttention::with_config(e, h, config, dev)?;
    let xb = rnd(&[b, l, e], 13, dev);
    mha_paths_agree(
        &m,
        &xb,
        Some(AttnMask::Bool(&pad)),
        Some(AttnMask::Bool(&causal)),
    )?;
    // Unbatched.
    let m = MultiheadAttention::new(e, h, dev)?;
    mha_paths_agree(
        &m,
        &rnd(&[l, e], 14, dev),
        None,
        Some(AttnMask::Bool(&causal)),
    )?;
    // The Module forward (self-attention, no weights) is the fused path.
    let y = Module::forward(&m, &rnd(&[l, e], 15, dev))?;
    if y.dims() != [l, e] {
        return Err(Error::invalid("mha", format!("shape {:?}", y.dims())));
    }
    Ok(())
});

attention_conformance!(fused_kernels_run_where_the_backend_has_them, |dev| {
    let (rec, recorder) = lam::testing::Recorder::device(dev);
    let fused = common::fuses_attention(dev);
    // The attention alone: the composite's products are the only matmuls.
    let q = rnd(&[2, 3, 4], 17, &rec).requires_grad_()?;
    let (k, v) = (rnd(&[2, 5, 4], 18, &rec), rnd(&[2, 5, 3], 19, &rec));
    let out = Tensor::scaled_dot_product_attention(&q, &k, &v, SdpaOptions::default())?;
    out.backward_with(&Tensor::ones(out.dims(), &rec)?)?;
    let matmuls = recorder.calls().get("matmul").copied().unwrap_or(0);
    if fused != (matmuls == 0) {
        return Err(Error::invalid(
            "sdpa",
            format!("{matmuls} matmuls on {dev}"),
        ));
    }
    // Composed around the backend's softmax between the products, the
    // attention makes no reduction of its own (the composite's max and sums).
    if !fused && !common::is_unfused(dev) {
        let calls = recorder.calls();
        let called = |m: &str| calls.get(m).is_some_and(|&n| n > 0);
        if called("reduce")
            || !called("fused_attention_weights")
            || !called("fused_attention_weights_grad")
        {
            return Err(Error::invalid("sdpa", format!("calls {calls:?} on {dev}")));
        }
    }
    // MultiheadAttention without weights skips the two products of the
    // composite (scores, weights × values) where the kernel runs.
    let m = MultiheadAttention::new(8, 2, &rec)?;
    let x = rnd(&[5, 2, 8], 20, &rec);
    let count = |weights: bool| -> lam::Result<u64> {
        let before = recorder.calls().get("matmul").copied().unwrap_or(0);
        no_grad(|| m.forward(&x, &x, &x, None, None, weights))?;
        Ok(recorder.calls().get("matmul").copied().unwrap_or(0) - before)
    };
    let (with, without) = (count(true)?, count(false)?);
    let skipped = if fused { 2 } else { 0 };
    if with != without + skipped {
        return Err(Error::invalid(
            "mha",
            format!("matmuls with weights {with}, without {without} on {dev}"),
        ));
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

#[test]
fn sdpa_bad_input_is_an_error() {
    use lam::DeviceExt;
    let dev = Device::cpu();
    let t = |shape: &[usize]| rnd(shape, 16, &dev);
    let plain = SdpaOptions::default();
    let sdpa = |q: &Tensor, k: &Tensor, v: &Tensor, o: SdpaOptions<'_>| {
        Tensor::scaled_dot_product_attention(q, k, v, o)
    };
    // Feature mismatch, key/value length mismatch, rank 1, batch mismatch.
    assert!(sdpa(&t(&[2, 3, 4]), &t(&[2, 5, 3]), &t(&[2, 5, 4]), plain).is_err());
    assert!(sdpa(&t(&[2, 3, 4]), &t(&[2, 5, 4]), &t(&[2, 6, 4]), plain).is_err());
    assert!(sdpa(&t(&[4]), &t(&[5, 4]), &t(&[5, 4]), plain).is_err());
    assert!(sdpa(&t(&[2, 3, 4]), &t(&[3, 5, 4]), &t(&[3, 5, 4]), plain).is_err());
    // A mask that does not broadcast to the scores, a bad dropout, I32 input.
    let mask = t(&[3, 4]);
    let masked = SdpaOptions {
        mask: Some(SdpaMask::Additive(&mask)),
        ..plain
    };
    assert!(sdpa(&t(&[2, 3, 4]), &t(&[2, 5, 4]), &t(&[2, 5, 4]), masked).is_err());
    let dropout = SdpaOptions {
        dropout_p: 1.5,
        ..plain
    };
    assert!(sdpa(&t(&[3, 4]), &t(&[5, 4]), &t(&[5, 4]), dropout).is_err());
    let ints = Tensor::from_vec_i32(vec![0; 12], &[3, 4], &dev).expect("ints");
    assert!(sdpa(&ints, &t(&[5, 4]), &t(&[5, 4]), plain).is_err());
    // Empty sizes give empty or zero outputs, not errors.
    let out = sdpa(&t(&[0, 4]), &t(&[5, 4]), &t(&[5, 2]), plain).expect("no queries");
    assert_eq!(out.dims(), [0, 2]);
    let out = sdpa(&t(&[3, 4]), &t(&[0, 4]), &t(&[0, 2]), plain).expect("no keys");
    assert_eq!(out.to_vec().expect("values"), vec![0.0; 6]);
}

/// Times the fused CPU attention against the composite (the unfused twin)
/// on the `gpt` benchmark's shapes, forward and forward + backward, and the
/// buffers each needs. Not a test: run by hand with
/// `cargo test -p lam --test attention -- --ignored --nocapture`.
#[test]
#[ignore = "a timing loop, run by hand with --ignored --nocapture"]
fn time_fused_against_composite_on_cpu() {
    use lam::DeviceExt;
    let cpu = Device::cpu();
    let unfused = common::unfused(&cpu);
    for (b, h, l, d) in [
        (8, 4, 64, 32),
        (16, 8, 128, 64),
        (16, 8, 256, 64),
        (8, 8, 256, 32),
    ] {
        for dev in [&cpu, &unfused] {
            let q = rnd(&[b, h, l, d], 1, dev).requires_grad_().expect("q");
            let k = rnd(&[b, h, l, d], 2, dev).requires_grad_().expect("k");
            let v = rnd(&[b, h, l, d], 3, dev).requires_grad_().expect("v");
            let options = SdpaOptions {
                causal: true,
                ..SdpaOptions::default()
            };
            let run = |backward: bool| {
                let out = Tensor::scaled_dot_product_attention(&q, &k, &v, options).expect("sdpa");
                if backward {
                    out.sum_all().expect("sum").backward().expect("backward");
                }
                dev.synchronize().expect("sync");
            };
            let median = |backward: bool| {
                let mut times: Vec<f64> = (0..7)
                    .map(|_| {
                        let start = std::time::Instant::now();
                        run(backward);
                        start.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                times[3]
            };
            // The CPU pool keeps every freed buffer by length: what it
            // gains over a step is the memory the step needed beyond what
            // earlier runs (the fused path's, for the composite) left.
            let pooled = dev.stats().bytes_pooled;
            run(true);
            let grown = dev.stats().bytes_pooled.saturating_sub(pooled);
            let (fwd, step) = (median(false), median(true));
            eprintln!(
                "B {b} H {h} L {l} d {d} on {dev}: forward {fwd:.2} ms, forward+backward {step:.2} ms, \
                 new buffers {:.1} MiB ([L, S] scores: {:.1} MiB)",
                grown as f64 / (1 << 20) as f64,
                (b * h * l * l * 4) as f64 / (1 << 20) as f64
            );
        }
    }
}

/// The backend calls of one causal `sdpa` forward and backward on `dev`
/// with `[1, 1, l, e]` queries and keys `[1, 1, s, e]`, and its output.
fn sdpa_calls(dev: &Device, l: usize, s: usize, e: usize) -> (Vec<String>, Vec<f32>) {
    let (dev, recorder) = lam::testing::Recorder::device(dev);
    let q = rnd(&[1, 1, l, e], 7, &dev).requires_grad_().expect("q");
    let k = rnd(&[1, 1, s, e], 8, &dev).requires_grad_().expect("k");
    let v = rnd(&[1, 1, s, e], 9, &dev);
    let options = SdpaOptions {
        causal: true,
        ..SdpaOptions::default()
    };
    let out = Tensor::scaled_dot_product_attention(&q, &k, &v, options).expect("sdpa");
    out.sum_all().and_then(|t| t.backward()).expect("backward");
    let calls = recorder.calls().into_keys().map(String::from).collect();
    (calls, out.to_vec().expect("output"))
}

#[test]
fn a_gpu_composes_attention_of_middling_size_and_fuses_the_rest() {
    // A device opened with the default options (AttentionKernel::Auto)
    // composes a call whose scores take more than 1 MiB and at most 64 MiB
    // (two batched products around a softmax) and runs the fused kernels
    // on the others, per row below and tiled above; the test devices take
    // the per-row kernels for every call.
    let Some(shared) = common::gpu("vulkan") else {
        return;
    };
    let auto = common::private_device(&shared);
    let uses_matmul = |calls: &[String]| calls.iter().any(|c| c == "matmul");
    // 33 × 40 scores: launches bound it, so fused.
    let (small, _) = sdpa_calls(&auto, 33, 40, 5);
    assert!(!uses_matmul(&small), "{small:?}");
    // 600 × 500 scores are 1.2 MB: composed, and equal to the kernels'.
    let (middling, composed) = sdpa_calls(&auto, 600, 500, 3);
    assert!(uses_matmul(&middling), "{middling:?}");
    let (fused_calls, fused) = sdpa_calls(&shared, 600, 500, 3);
    assert!(!uses_matmul(&fused_calls), "{fused_calls:?}");
    fixture::close("composed against fused", &composed, &fused, 1e-5, 1e-5).expect("same output");
    // 4096 × 4100 scores are 67.2 MB: fused even under Auto (the tiled
    // kernels), and equal to the per-row kernels' output.
    let (large, out) = sdpa_calls(&auto, 4096, 4100, 1);
    assert!(!uses_matmul(&large), "{large:?}");
    assert!(out.iter().all(|x| x.is_finite()), "finite outputs");
    let (_, per_row) = sdpa_calls(&shared, 4096, 4100, 1);
    fixture::close("tiled against per-row", &out, &per_row, 1e-5, 1e-5).expect("same output");
}
