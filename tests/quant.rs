//! Dynamic int8 quantization: `QuantizedLinear` computes the int8 product
//! exactly as a host reference does, on every device, and stays within
//! quantization error of the `f32` layer; quantized checkpoints are a
//! quarter of the size and load back to the same outputs; weight sharing
//! keeps `2^bits` values and reports its size.

mod common;

use lam::checkpoint::save_model;
use lam::nn::quant::sharing::{share_weights, SharedWeights};
use lam::nn::quant::{linear_int8_static, load_quantized, save_quantized, QuantizedLinear};
use lam::nn::{Linear, Module};
use lam::{Device, DeviceExt, Generator, Result, Tensor};

/// The int8 product computed on the host from the layer's packed weights,
/// each row quantized with its own dynamic scale.
fn reference(q: &QuantizedLinear, x: &[f32], rows: usize) -> Result<Vec<f32>> {
    let k = q.in_features();
    let scales: Vec<f32> = x
        .chunks(k)
        .take(rows)
        .map(|row| row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0)
        .collect();
    reference_scaled(q, x, &scales)
}

/// The int8 product computed on the host, row `r` quantized with `row_scales[r]`.
fn reference_scaled(q: &QuantizedLinear, x: &[f32], row_scales: &[f32]) -> Result<Vec<f32>> {
    let rows = row_scales.len();
    let (k, n) = (q.in_features(), q.out_features());
    let w = q.dequantized_weight()?.to_vec()?;
    let scales = q.scale.to_vec()?;
    let bias = match &q.bias {
        Some(b) => b.to_vec()?,
        None => vec![0.0; n],
    };
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        let s = row_scales[r];
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        for c in 0..n {
            let mut acc = 0i64;
            for j in 0..k {
                let xq = (x[r * k + j] * inv).round_ties_even().clamp(-127.0, 127.0) as i64;
                let wq = (w[c * k + j] / scales[c]).round() as i64;
                acc += xq * wq;
            }
            out[r * n + c] = acc as f32 * s * scales[c] + bias[c];
        }
    }
    Ok(out)
}

conformance!(
    int8_linear_equals_the_host_reference_and_the_f32_layer,
    |dev| {
        let gen = Generator::new(3);
        for (k, n, rows) in [(37, 13, 5), (64, 8, 1), (130, 33, 32)] {
            let linear = lam::rng::with_generator(&gen, || Linear::new(k, n, dev))?;
            let q = QuantizedLinear::from_linear(&linear)?;
            let x = Tensor::randn_with(&[rows, k], dev, &gen)?;
            let y = q.forward(&x)?;
            let want = reference(&q, &x.to_vec()?, rows)?;
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            lam::testing::assert_close(&y.to_vec()?, &want, 1e-5 * scale, 1e-5)?;
            // Within quantization error of the f32 layer.
            let exact = linear.forward(&x)?.to_vec()?;
            let err = exact
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                err < 0.03 * scale,
                "{k}x{n}: int8 error {err} for outputs up to {scale}"
            );
            // Any leading dims.
            let x3 = x.reshape(&[1, rows as isize, k as isize])?;
            assert_eq!(q.forward(&x3)?.shape(), vec![1, rows, n]);
            // Static scales: one for every row, or one per row.
            let bias = q.bias.as_ref();
            let one = Tensor::scalar(0.02, dev)?;
            let y = linear_int8_static(&x3, &one, &q.weight, &q.scale, bias, k)?;
            let want = reference_scaled(&q, &x.to_vec()?, &vec![0.02; rows])?;
            lam::testing::assert_close(&y.to_vec()?, &want, 1e-5 * scale, 1e-5)?;
            let per_row: Vec<f32> = (0..rows).map(|r| 0.01 + 0.003 * r as f32).collect();
            let s = Tensor::from_vec(per_row.clone(), &[rows], dev)?;
            let y = linear_int8_static(&x, &s, &q.weight, &q.scale, bias, k)?;
            let want = reference_scaled(&q, &x.to_vec()?, &per_row)?;
            lam::testing::assert_close(&y.to_vec()?, &want, 1e-5 * scale, 1e-5)?;
        }
        // A row holding NaN gives NaN outputs and leaves the other rows alone.
        let linear = lam::rng::with_generator(&gen, || Linear::new(20, 3, dev))?;
        let q = QuantizedLinear::from_linear(&linear)?;
        let mut values = Tensor::randn_with(&[2, 20], dev, &gen)?.to_vec()?;
        let clean = q
            .forward(&Tensor::from_vec(values.clone(), &[2, 20], dev)?)?
            .to_vec()?;
        values[25] = f32::NAN;
        let y = q
            .forward(&Tensor::from_vec(values, &[2, 20], dev)?)?
            .to_vec()?;
        assert_eq!(&y[..3], &clean[..3]);
        assert!(y[3..].iter().all(|v| v.is_nan()), "{y:?}");
        // Static scales of the wrong shape are an error.
        let bad = Tensor::from_vec(vec![0.1; 3], &[3], dev)?;
        let x = Tensor::randn_with(&[2, 20], dev, &gen)?;
        assert!(linear_int8_static(&x, &bad, &q.weight, &q.scale, None, 20).is_err());
        Ok(())
    }
);

#[test]
fn quantized_checkpoints_are_a_quarter_and_load_back() -> Result<()> {
    let dev = Device::cpu();
    let dir = std::env::temp_dir().join(format!("lam-quant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| lam::Error::io(&dir, e))?;
    let linear = Linear::new(256, 128, &dev)?;
    let q = QuantizedLinear::from_linear(&linear)?;
    let (f32_path, q_path) = (dir.join("f32.safetensors"), dir.join("int8.safetensors"));
    save_model(&linear, &f32_path)?;
    save_quantized(&q, &q_path)?;
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let ratio = size(&f32_path) as f64 / size(&q_path) as f64;
    assert!(ratio > 3.8, "f32 / int8 file size = {ratio}");
    let back = QuantizedLinear::new(256, 128, true, &dev)?;
    load_quantized(&back, &q_path)?;
    // A file of another layer's sizes is refused by name.
    let other = QuantizedLinear::new(255, 128, true, &dev)?;
    assert!(load_quantized(&other, &f32_path).is_err());
    let x = Tensor::randn(&[4, 256], &dev)?;
    assert_eq!(back.forward(&x)?.to_vec()?, q.forward(&x)?.to_vec()?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn quantized_layers_are_not_exported_and_check_their_input() -> Result<()> {
    let dev = Device::cpu();
    let q = QuantizedLinear::from_linear(&Linear::new(8, 4, &dev)?)?;
    let err = lam::onnx::to_bytes(&q, &Tensor::randn(&[2, 8], &dev)?).unwrap_err();
    assert!(err.to_string().contains("f32 model"), "{err}");
    assert!(q.forward(&Tensor::randn(&[2, 7], &dev)?).is_err());
    assert!(q
        .forward(&Tensor::randn(&[2, 8], &dev)?.to_dtype(lam::DType::I32)?)
        .is_err());
    assert!(q.to_string().contains("qint8"));
    Ok(())
}

#[test]
fn weight_sharing_keeps_two_to_the_bits_values() -> Result<()> {
    let dev = Device::cpu();
    let linear = Linear::new(64, 32, &dev)?;
    let x = Tensor::randn(&[16, 64], &dev)?;
    let before = linear.forward(&x)?.to_vec()?;
    let shared = share_weights(&linear, &["weight"], 4)?;
    let mut values = linear.weight.to_vec()?;
    values.sort_by(f32::total_cmp);
    values.dedup();
    assert!(values.len() <= 16, "{} distinct values", values.len());
    let s: &SharedWeights = &shared[0];
    assert_eq!(s.compressed_bytes(), 64 * 32 / 2 + 16 * 4);
    assert!(s.original_bytes() / s.compressed_bytes() >= 7);
    let after = linear.forward(&x)?.to_vec()?;
    let err = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 0.2, "outputs moved by {err}");
    assert!(share_weights(&linear, &["weight"], 0).is_err());
    assert!(share_weights(&linear, &["nope"], 4).is_err());
    Ok(())
}
