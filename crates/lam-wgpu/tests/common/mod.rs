//! Shared harness of the GPU test binaries: the devices to run on (every
//! adapter found, or a skip/failure per `LAM_REQUIRE_GPU`; private ones for
//! tests that count or disturb device state), the CPU reference backend, deterministic test data, awkward views, and an
//! absolute-plus-relative comparison that names the first mismatch.

#![allow(dead_code)] // each test binary uses part of the harness

use std::sync::Arc;

use lam_core::rng::uniform01;
use lam_core::{Backend, Device, Layout, Storage};
use lam_wgpu::{gpu_device, GpuOptions};

/// One device per GPU adapter found. With no adapter, a skip message on
/// stderr and no devices, unless `LAM_REQUIRE_GPU=1` makes that a failure.
pub fn gpus(test: &str) -> Vec<Device> {
    let devices = lam_wgpu::gpu_devices_for_tests();
    if devices.is_empty() {
        let required = std::env::var("LAM_REQUIRE_GPU").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{test}: LAM_REQUIRE_GPU=1 but no GPU adapter could be opened (adapters seen: {:?})",
            lam_wgpu::list_adapters()
        );
        eprintln!("{test}: skipped, no GPU adapter found (set LAM_REQUIRE_GPU=1 to fail instead)");
    }
    devices
}

/// A fresh device on the same adapter as `shared` (same name and backend).
pub fn private_device(shared: &Device, opts: GpuOptions) -> Device {
    try_private_device(shared, opts).expect("a second device on the same adapter")
}

/// [`private_device`], or why the adapter cannot open one with `opts`.
pub fn try_private_device(shared: &Device, opts: GpuOptions) -> lam_core::Result<Device> {
    let info = lam_wgpu::list_adapters()
        .into_iter()
        .find(|a| shared.name().ends_with(&a.name) && shared.name().starts_with(a.backend.to_str()))
        .expect("the shared device's adapter is listed");
    let opts = GpuOptions {
        adapter: Some(info.name.clone()),
        backends: Some(info.backend.into()),
        ..opts
    };
    gpu_device(&opts)
}

/// The reference backend.
pub fn cpu() -> Arc<dyn Backend> {
    Arc::new(lam_cpu::CpuBackend::new())
}

/// `n` values in `[lo, hi)`, a pure function of `seed`.
pub fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| lo + (hi - lo) * uniform01(seed, i))
        .collect()
}

/// `n` integers in `0..bound`, a pure function of `seed`.
pub fn indices(n: usize, seed: u64, bound: usize) -> Vec<i32> {
    (0..n as u32)
        .map(|i| ((uniform01(seed, i) * bound as f32) as i32).min(bound as i32 - 1))
        .collect()
}

/// A view of `shape` over a buffer of `len` elements, and how it was made.
#[derive(Debug, Clone)]
pub struct ViewCase {
    pub name: &'static str,
    pub layout: Layout,
    pub len: usize,
}

/// Contiguous, transposed, narrowed (with an odd offset) and broadcast
/// (stride-0 leading dim) views of `shape`, each over its own buffer size.
pub fn awkward_views(shape: &[usize]) -> Vec<ViewCase> {
    let rank = shape.len();
    let mut cases = vec![ViewCase {
        name: "contiguous",
        layout: Layout::contiguous(shape),
        len: shape.iter().product(),
    }];
    if rank >= 2 {
        // Stored with the last two dims swapped, viewed back transposed.
        let mut stored = shape.to_vec();
        stored.swap(rank - 2, rank - 1);
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        let layout = Layout::contiguous(&stored)
            .permute(&perm)
            .expect("valid permutation");
        cases.push(ViewCase {
            name: "transposed",
            len: stored.iter().product(),
            layout,
        });
    }
    // Each dim padded by 2 and narrowed from 1, so rows are gapped and the
    // offset is odd.
    let padded: Vec<usize> = shape.iter().map(|&d| d + 2).collect();
    let mut layout = Layout::contiguous(&padded);
    for (d, &size) in shape.iter().enumerate() {
        layout = layout.narrow(d, 1, size).expect("in range");
    }
    cases.push(ViewCase {
        name: "narrowed",
        len: padded.iter().product(),
        layout,
    });
    if rank >= 1 && shape[0] > 1 {
        let mut one = shape.to_vec();
        one[0] = 1;
        let layout = Layout::contiguous(&one)
            .broadcast_to(shape)
            .expect("broadcastable");
        cases.push(ViewCase {
            name: "broadcast",
            len: one.iter().product(),
            layout,
        });
    }
    cases
}

/// Uploads f32 data to a backend.
pub fn up(b: &dyn Backend, data: &[f32]) -> Storage {
    b.from_f32(data).expect("upload")
}

/// Uploads i32 data to a backend.
pub fn up_i(b: &dyn Backend, data: &[i32]) -> Storage {
    b.from_i32(data).expect("upload")
}

/// Reads a whole contiguous f32 buffer of `shape`.
pub fn down(b: &dyn Backend, s: &Storage, shape: &[usize]) -> Vec<f32> {
    b.read_f32((s, &Layout::contiguous(shape)))
        .expect("readback")
}

/// Reads a whole contiguous i32 buffer of `shape`.
pub fn down_i(b: &dyn Backend, s: &Storage, shape: &[usize]) -> Vec<i32> {
    b.read_i32((s, &Layout::contiguous(shape)))
        .expect("readback")
}

/// Asserts `|got - want| <= atol + rtol |want|` elementwise (NaN matches
/// NaN), naming the case, the first bad index and the worst error.
pub fn assert_close(case: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{case}: length");
    let mut worst = (0.0f32, usize::MAX);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() && w.is_nan() {
            continue;
        }
        if g == w {
            continue; // also covers equal infinities
        }
        let err = (g - w).abs();
        let excess = err - (atol + rtol * w.abs());
        // A NaN on one side only is a mismatch too.
        let bad = excess > 0.0 || excess.is_nan();
        if bad && (worst.1 == usize::MAX || excess > worst.0 || excess.is_nan()) {
            worst = (excess, i);
        }
    }
    if worst.1 != usize::MAX {
        let i = worst.1;
        panic!(
            "{case}: element {i} is {} but the reference is {} (atol {atol}, rtol {rtol}); \
             first values got {:?} want {:?}",
            got[i],
            want[i],
            &got[..got.len().min(6)],
            &want[..want.len().min(6)]
        );
    }
}
