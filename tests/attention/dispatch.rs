//! Which attention a device runs: the fused kernels where the backend has
//! them (no matmuls), the composition around the backend's softmax
//! elsewhere, and on a GPU under `AttentionKernel::Auto` the composite for
//! middling sizes only; and a timing loop of the fused CPU attention
//! against the composite, run by hand.

use lam::nn::MultiheadAttention;
use lam::prelude::*;
use lam::SdpaOptions;

use crate::common::{self, fixture};
use crate::conformance;

use super::rnd;

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
