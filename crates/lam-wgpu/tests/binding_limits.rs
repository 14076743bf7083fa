//! Devices that allow fewer storage buffers per shader stage than lam's
//! fused kernels bind. WebGPU's default is 8 and OpenGL ES 3.1 promises
//! only 4, where the fused LayerNorm, BatchNorm, LSTM, GRU and attention
//! kernels bind 5 to 8. Such a device declines those ops and lam-core
//! composes them, so every layer trains, to the CPU's numbers; the int8
//! product (6) runs in two passes, to the same bits. A device below lam's
//! own minimum (4) is not opened.
//!
//! The limit is real: the device is requested with it, so wgpu's validation
//! would reject any kernel that slipped past the check.

mod common;

use common::*;
use lam_core::nn::functional::{batch_norm, gru_cell, layer_norm, lstm_cell};
use lam_core::nn::quant::QuantizedLinear;
use lam_core::nn::{Linear, Module};
use lam_core::{Device, Error, Result, SdpaOptions, Tensor};
use lam_wgpu::GpuOptions;

/// A private device on `shared`'s adapter allowing at most `n` storage buffers.
fn limited(shared: &Device, n: u32) -> Result<Device> {
    try_private_device(
        shared,
        GpuOptions {
            max_storage_buffers: Some(n),
            ..GpuOptions::default()
        },
    )
}

/// A tensor of `shape` with values from `seed`, on `device`.
fn input(shape: &[usize], seed: u64, device: &Device) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed, -1.0, 1.0), shape, device).expect("upload")
}

/// Each layer's forward output, then the gradient of every input of
/// `sum(output · w)` for fixed weights `w`, all as host vectors.
fn layers_and_grads(device: &Device) -> Vec<(String, Vec<f32>)> {
    let leaf = |shape: &[usize], seed| input(shape, seed, device).requires_grad_().unwrap();
    let mut results = Vec::new();
    let mut record = |name: &str, out: Tensor, inputs: &[&Tensor]| {
        let w = input(out.dims(), 99, device);
        (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
        results.push((name.to_string(), out.to_vec().unwrap()));
        for (i, t) in inputs.iter().enumerate() {
            let g = t.grad().expect("a gradient").to_vec().unwrap();
            results.push((format!("{name} d{i}"), g));
        }
    };

    let x = leaf(&[3, 5, 6], 1);
    let (w, b) = (leaf(&[6], 2), leaf(&[6], 3));
    let y = layer_norm(&x, &[6], Some(&w), Some(&b), 1e-5).unwrap();
    record("layer_norm", y, &[&x, &w, &b]);

    let x = leaf(&[4, 3, 2, 5], 4);
    let (w, b) = (leaf(&[3], 5), leaf(&[3], 6));
    let y = batch_norm(&x, None, None, Some(&w), Some(&b), true, 0.1, 1e-5).unwrap();
    record("batch_norm", y, &[&x, &w, &b]);

    let (x, h, c) = (leaf(&[2, 3], 7), leaf(&[2, 4], 8), leaf(&[2, 4], 9));
    let (w_ih, w_hh) = (leaf(&[16, 3], 10), leaf(&[16, 4], 11));
    let (h2, c2) = lstm_cell(&x, (&h, &c), &w_ih, &w_hh, None, None).unwrap();
    let y = Tensor::cat(&[h2, c2], 1).unwrap();
    record("lstm_cell", y, &[&x, &h, &c, &w_ih, &w_hh]);

    let (x, h) = (leaf(&[2, 3], 12), leaf(&[2, 4], 13));
    let (w_ih, w_hh, b_hh) = (leaf(&[12, 3], 14), leaf(&[12, 4], 15), leaf(&[12], 16));
    let y = gru_cell(&x, &h, &w_ih, &w_hh, None, Some(&b_hh)).unwrap();
    record("gru_cell", y, &[&x, &h, &w_ih, &w_hh, &b_hh]);

    let (q, k, v) = (
        leaf(&[2, 2, 5, 4], 17),
        leaf(&[2, 2, 7, 4], 18),
        leaf(&[2, 2, 7, 3], 19),
    );
    let options = SdpaOptions {
        causal: true,
        ..SdpaOptions::default()
    };
    let y = Tensor::scaled_dot_product_attention(&q, &k, &v, options).unwrap();
    record("attention", y, &[&q, &k, &v]);
    results
}

#[test]
fn a_device_with_four_storage_buffers_composes_the_fused_layers() {
    let reference = layers_and_grads(&Device::new(cpu()));
    for shared in gpus("binding limits") {
        let device = limited(&shared, 4).expect("4 storage buffers is lam's minimum");
        let results = layers_and_grads(&device);
        for ((name, want), (_, got)) in reference.iter().zip(&results) {
            assert_close(
                &format!("{shared} (4 buffers): {name}"),
                got,
                want,
                1e-4,
                1e-4,
            );
        }
        // Declined, not failed: the fused methods themselves answer None.
        let b = device.backend();
        let x = b.from_f32(&values(12, 20, -1.0, 1.0)).unwrap();
        let l = lam_core::Layout::contiguous(&[3, 4]);
        let fused = b.fused_layer_norm((&x, &l), None, None, 1e-5).unwrap();
        assert!(fused.is_none(), "{shared}: fused_layer_norm with 4 buffers");
    }
}

#[test]
fn the_int8_product_runs_in_two_passes_with_the_same_bits() {
    for shared in gpus("binding limits, int8") {
        let device = limited(&shared, 4).expect("4 storage buffers is lam's minimum");
        let product = |dev: &Device| -> Result<Vec<f32>> {
            lam_core::manual_seed(3);
            let linear = Linear::new(13, 5, dev)?;
            let quantized = QuantizedLinear::from_linear(&linear)?;
            // A transposed input: the quantized product reads views.
            let x = input(&[13, 3], 21, dev).t()?;
            quantized.forward(&x)?.to_vec()
        };
        let (want, got) = (product(&shared).unwrap(), product(&device).unwrap());
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{shared}: the int8 product with 4 buffers against 8 or more"
        );
    }
}

#[test]
fn a_device_below_four_storage_buffers_is_not_opened() {
    for shared in gpus("binding limits, minimum") {
        match limited(&shared, 3) {
            Err(Error::Device(msg)) => assert!(
                msg.contains("max_storage_buffers_per_shader_stage is 3, lam needs 4"),
                "{msg}"
            ),
            other => panic!("{shared}: expected a Device error, got {other:?}"),
        }
    }
}
