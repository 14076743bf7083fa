//! Helpers for lam-cpu's unit tests: build buffers and views, read them back,
//! and compare with a tolerance.

use lam_core::{Backend, Layout, Storage};

use crate::CpuBackend;

pub fn backend() -> CpuBackend {
    CpuBackend::new()
}

/// A buffer holding `data` and the contiguous layout of `shape`.
pub fn f32s(data: &[f32], shape: &[usize]) -> (Storage, Layout) {
    let layout = Layout::contiguous(shape);
    assert_eq!(
        layout.numel(),
        data.len(),
        "test data does not fill {shape:?}"
    );
    (backend().from_f32(data).unwrap(), layout)
}

/// The contents of a contiguous `F32` buffer of `shape`.
pub fn read(s: &Storage, shape: &[usize]) -> Vec<f32> {
    backend().read_f32((s, &Layout::contiguous(shape))).unwrap()
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u32)
        .map(|i| lam_core::rng::uniform01(seed, i) * 2.0 - 1.0)
        .collect()
}

/// Panics unless `got` and `want` agree within `tol` (absolute + relative).
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan());
        assert!(ok, "element {i}: got {g}, want {w} (tol {tol})");
    }
}
