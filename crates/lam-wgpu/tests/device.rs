//! Device-level behaviour on every adapter: adapter listing and choice, the
//! per-process default device, limits that turn into `TooLarge` errors,
//! buffers from another device, the lazy queue (no submit until a readback
//! or the dispatch threshold), and the buffer pool's reuse and accounting,
//! the peak of live bytes included.
//!
//! Counter tests open a private device per adapter, so tests running in
//! parallel on the shared devices cannot disturb the numbers.

mod common;

use common::*;
use lam_core::backend::UnaryOp;
use lam_core::{DType, Error, Layout};
use lam_wgpu::{gpu_device, GpuOptions};

#[test]
fn adapters_are_listed_and_named_in_errors() {
    let devices = gpus("adapters");
    if devices.is_empty() {
        return;
    }
    let adapters = lam_wgpu::list_adapters();
    assert!(!adapters.is_empty());
    let err = gpu_device(&GpuOptions {
        adapter: Some("no-such-adapter-xyz".into()),
        ..GpuOptions::default()
    })
    .expect_err("no adapter matches");
    let Error::Device(msg) = &err else {
        panic!("expected Error::Device, got {err:?}");
    };
    assert!(msg.contains("no-such-adapter-xyz"), "{msg}");
    for a in &adapters {
        assert!(msg.contains(&a.name), "the error lists {}: {msg}", a.name);
    }
}

#[test]
fn default_gpu_is_one_device_per_process() {
    if gpus("default_gpu").is_empty() {
        return;
    }
    let a = lam_wgpu::default_gpu().expect("a default GPU");
    let b = lam_wgpu::default_gpu().expect("a default GPU");
    assert_eq!(a, b, "repeated calls return the same device");
    assert!(a.is_gpu());
    // Tensors made through either handle interoperate.
    let x = a.backend().from_f32(&[1.0, 2.0]).unwrap();
    let y = b
        .backend()
        .unary(UnaryOp::Neg, (&x, &Layout::contiguous(&[2])))
        .unwrap();
    assert_eq!(down(b.backend(), &y, &[2]), vec![-1.0, -2.0]);
}

#[test]
fn buffers_beyond_the_binding_limit_are_too_large_errors() {
    for shared in gpus("limits") {
        let dev = private_device(
            &shared,
            GpuOptions {
                max_storage_binding: Some(1024),
                ..GpuOptions::default()
            },
        );
        let b = dev.backend();
        // 256 floats fill the limit exactly; 300 do not fit.
        let ok = b.from_f32(&[1.0; 256]).expect("256 floats fit 1024 bytes");
        assert_eq!(down(b, &ok, &[256])[255], 1.0);
        for result in [b.from_f32(&[0.0; 300]), b.zeros(300, DType::F32)] {
            match result {
                Err(Error::TooLarge { bytes, limit, .. }) => {
                    assert_eq!((bytes, limit), (1200, 1024))
                }
                other => panic!("expected TooLarge, got {other:?}"),
            }
        }
        // An op whose output would exceed the limit fails the same way.
        let l = Layout::contiguous(&[16, 16]);
        let err = b.matmul((&ok, &l), (&ok, &l)).map(|_| ());
        assert!(err.is_ok(), "a 1 KiB output still fits: {err:?}");
        let wide = Layout::contiguous(&[256, 1]);
        let tall = Layout::contiguous(&[1, 256]);
        match b.matmul((&ok, &wide), (&ok, &tall)) {
            Err(Error::TooLarge { .. }) => {}
            other => panic!("expected TooLarge for a 256 KiB output, got {other:?}"),
        }
    }
}

#[test]
fn buffers_of_other_devices_are_rejected_without_panicking() {
    for shared in gpus("foreign buffers") {
        let other = private_device(&shared, GpuOptions::default());
        let l = Layout::contiguous(&[2]);
        let x = other.backend().from_f32(&[1.0, 2.0]).unwrap();
        let err = shared
            .backend()
            .unary(UnaryOp::Exp, (&x, &l))
            .expect_err("foreign buffer");
        assert!(matches!(err, Error::Device(_)), "{err:?}");
        let c = cpu().from_f32(&[1.0, 2.0]).unwrap();
        let err = shared.backend().read_f32((&c, &l)).expect_err("CPU buffer");
        assert!(matches!(err, Error::Device(_)), "{err:?}");
    }
}

#[test]
fn work_is_queued_until_a_readback_or_the_threshold() {
    for shared in gpus("lazy queue") {
        let dev = private_device(&shared, GpuOptions::default());
        let b = dev.backend();
        let l = Layout::contiguous(&[64]);
        let mut x = b.from_f32(&values(64, 1, -1.0, 1.0)).unwrap();
        let before = b.stats();
        for _ in 0..10 {
            x = b.unary(UnaryOp::MulScalar(1.0), (&x, &l)).unwrap();
        }
        let queued = b.stats();
        assert_eq!(queued.submits, before.submits, "ops alone submit nothing");
        assert_eq!(queued.dispatches, before.dispatches + 10);
        let _ = down(b, &x, &[64]);
        assert_eq!(
            b.stats().submits,
            queued.submits + 1,
            "one readback, one submit"
        );

        // Past the threshold (512 dispatches) the queue submits by itself.
        let start = b.stats().submits;
        for _ in 0..600 {
            x = b.unary(UnaryOp::AddScalar(0.0), (&x, &l)).unwrap();
        }
        assert!(b.stats().submits > start, "600 dispatches trigger a submit");
        b.synchronize().unwrap();
        assert_eq!(down(b, &x, &[64]).len(), 64);
    }
}

#[test]
fn freed_buffers_return_to_the_pool() {
    for shared in gpus("pool") {
        let dev = private_device(&shared, GpuOptions::default());
        let b = dev.backend();
        let live0 = b.stats().bytes_live;
        let x = b.zeros(1000, DType::F32).unwrap(); // 4000 bytes -> the 4096 class
        assert_eq!(b.stats().bytes_live, live0 + 4096);
        drop(x);
        assert_eq!(b.stats().bytes_live, live0);
        let hits = b.stats().pool_hits;
        let allocated = b.stats().buffers_allocated;
        let y = b.zeros(900, DType::F32).unwrap(); // same class, served by the pool
        let s = b.stats();
        assert_eq!(s.pool_hits, hits + 1);
        assert_eq!(s.buffers_allocated, allocated);
        // Reused memory is really zeroed, not stale.
        assert!(down(b, &y, &[900]).iter().all(|&v| v == 0.0));
    }
}

#[test]
fn a_request_takes_a_free_buffer_of_its_own_class_only() {
    for shared in gpus("pool_reuse") {
        let dev = private_device(&shared, GpuOptions::default());
        let b = dev.backend();
        let live0 = b.stats().bytes_live;
        // 400,000 bytes: the 448 KiB class (a quarter-step above 256 KiB).
        drop(b.zeros(100_000, DType::F32).unwrap());
        let allocated = b.stats().buffers_allocated;
        // 360,000 bytes (the 384 KiB class) get a buffer of their own
        // class, not the free 448 KiB one, which a long-lived tensor would
        // otherwise hold with 64 KiB to spare for its whole life.
        let y = b.zeros(90_000, DType::F32).unwrap();
        assert_eq!(b.stats().bytes_live, live0 + (384 << 10));
        assert_eq!(b.stats().buffers_allocated, allocated + 1);
        assert!(down(b, &y, &[90_000]).iter().all(|&v| v == 0.0));
        // The 448 KiB class still has its free buffer.
        let allocated = b.stats().buffers_allocated;
        let z = b.zeros(100_000, DType::F32).unwrap();
        assert_eq!(b.stats().buffers_allocated, allocated);
        assert_eq!(b.stats().bytes_live, live0 + (384 << 10) + (448 << 10));
        assert!(down(b, &z, &[100_000]).iter().all(|&v| v == 0.0));
    }
}

#[test]
fn the_peak_of_live_bytes_is_kept_until_reset() {
    for shared in gpus("peak") {
        let dev = private_device(&shared, GpuOptions::default());
        let b = dev.backend();
        dev.reset_peak_stats();
        let live0 = b.stats().bytes_live;
        assert_eq!(
            b.stats().bytes_live_peak,
            live0,
            "a reset starts from the live bytes"
        );
        let x = b.zeros(1000, DType::F32).unwrap(); // the 4096 class
        let y = b.zeros(2000, DType::F32).unwrap(); // the 8192 class
        drop((x, y));
        let z = b.zeros(1000, DType::F32).unwrap();
        let s = b.stats();
        assert_eq!(s.bytes_live, live0 + 4096);
        assert_eq!(
            s.bytes_live_peak,
            live0 + 4096 + 8192,
            "both were live at once"
        );
        let before = dev.reset_peak_stats();
        assert_eq!(
            before.bytes_live_peak,
            live0 + 4096 + 8192,
            "the reset returns the old peak"
        );
        assert_eq!(b.stats().bytes_live_peak, live0 + 4096);
        drop(z);
        assert_eq!(
            b.stats().bytes_live_peak,
            live0 + 4096,
            "frees leave the peak"
        );
    }
}

#[test]
fn a_lost_device_gives_errors_not_panics() {
    for shared in gpus("device loss") {
        let dev = private_device(&shared, GpuOptions::default());
        let b = dev.backend();
        let l = Layout::contiguous(&[4]);
        let x = b.from_f32(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let y = b.unary(UnaryOp::Exp, (&x, &l)).unwrap();
        lam_wgpu::simulate_device_loss(&x).unwrap();
        // Every kind of call fails cleanly from now on, and never hangs.
        let results = [
            b.read_f32((&y, &l)).map(|_| ()),
            b.unary(UnaryOp::Exp, (&x, &l)).map(|_| ()),
            b.from_f32(&[1.0]).map(|_| ()),
            b.zeros(8, DType::F32).map(|_| ()),
            b.synchronize(),
        ];
        for r in results {
            assert!(
                matches!(r, Err(Error::Device(_))),
                "{} after loss: {r:?}",
                dev.name()
            );
        }
        // Dropping its tensors afterwards is fine too.
        drop((x, y));
    }
}

#[test]
fn kernels_with_fewer_checks_give_the_same_bits() {
    // ShaderChecks::NoLoopCounters compiles the kernels without the loop
    // counters wgpu adds, Unchecked also without its index clamps and
    // division guards; every loop ends by itself and every index is in
    // range, so the results are the bits of the fully checked kernels: products (a 128-tile one among
    // them), LayerNorm, the fused attention, softmax, reductions, and the
    // backward of all of them.
    use lam_core::nn::functional::layer_norm;
    use lam_core::{SdpaOptions, Tensor};
    use lam_wgpu::ShaderChecks;

    for shared in gpus("shader checks") {
        let run = |checks: ShaderChecks| -> Vec<Vec<u32>> {
            let dev = private_device(
                &shared,
                GpuOptions {
                    shader_checks: checks,
                    ..GpuOptions::default()
                },
            );
            let leaf = |shape: &[usize], seed| {
                let n = shape.iter().product();
                Tensor::from_vec(values(n, seed, -1.0, 1.0), shape, &dev)
                    .and_then(|t| t.requires_grad_())
                    .expect("a leaf")
            };
            let (x, w, big) = (
                leaf(&[2, 4, 9, 16], 1),
                leaf(&[16, 16], 2),
                leaf(&[128, 128], 3),
            );
            let h = x.matmul(&w).expect("matmul");
            let q = layer_norm(&h, &[16], None, None, 1e-5).expect("layer_norm");
            let causal = SdpaOptions {
                causal: true,
                ..SdpaOptions::default()
            };
            let a = Tensor::scaled_dot_product_attention(&q, &h, &x, causal).expect("sdpa");
            let square = big.matmul(&big).expect("128-tile product");
            let y = a
                .softmax(-1)
                .and_then(|s| s.mul(&a))
                .and_then(|s| s.sum_all())
                .and_then(|s| s.add(&square.sum_all()?))
                .expect("the loss");
            y.backward().expect("backward");
            [
                y,
                x.grad().expect("dx"),
                w.grad().expect("dw"),
                big.grad().expect("dbig"),
            ]
            .iter()
            .map(|t| {
                t.to_vec()
                    .expect("read")
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            })
            .collect()
        };
        let full = run(ShaderChecks::Full);
        for fewer in [ShaderChecks::NoLoopCounters, ShaderChecks::Unchecked] {
            assert_eq!(full, run(fewer), "{fewer:?} on {}", shared.name());
        }
    }
}
