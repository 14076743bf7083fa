//! `Tensor::scaled_dot_product_attention` on known values
//! (`fixtures/attention/sdpa.json`, PyTorch in float64: outputs and the
//! gradients of `q`, `k`, `v` and additive masks), against central
//! differences with a mask and causal, with fully masked rows, strided
//! inputs and dropout; bad input gives errors.

use lam::prelude::*;
use lam::testing::{gradcheck, GradCheck};
use lam::{SdpaMask, SdpaOptions};
use serde_json::Value;

use crate::common::fixture;
use crate::conformance;

use super::rnd;

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
