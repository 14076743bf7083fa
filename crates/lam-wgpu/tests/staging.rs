//! Uploads and readbacks through reused buffers: an upload takes a pooled
//! tensor buffer and a reused staging buffer, and its data reach the device
//! in recording order, so work recorded before it still sees the old
//! contents of a buffer it reuses. Uploading and dropping many tensors
//! keeps the device's memory bounded and, once warm, creates no buffer.
//!
//! Each test opens a private device per adapter, so the counters it reads
//! are its own.

mod common;

use common::*;
use lam_core::backend::{BinaryOp, UnaryOp};
use lam_core::{Backend, DType, Device, Layout, Storage};
use lam_wgpu::GpuOptions;

const MIB: u64 = 1 << 20;

/// A private device per adapter found, opened with `opts`.
fn devices(test: &str, opts: &GpuOptions) -> Vec<Device> {
    gpus(test)
        .iter()
        .map(|shared| private_device(shared, opts.clone()))
        .collect()
}

#[test]
fn an_upload_into_a_reused_buffer_leaves_recorded_work_intact() {
    for dev in devices("upload order", &GpuOptions::default()) {
        let b = dev.backend();
        let l = Layout::contiguous(&[4]);
        for round in 0..2 {
            let x = up(b, &[1.0, 2.0, 3.0, 4.0]);
            let neg = b.unary(UnaryOp::Neg, (&x, &l)).unwrap(); // recorded, not run
            drop(x); // its buffer goes back to the pool while `neg` still reads it
            let hits = b.stats().pool_hits;
            // The pool is last-in first-out: this upload takes x's buffer.
            let y = up(b, &[10.0, 20.0, 30.0, 40.0]);
            assert!(b.stats().pool_hits > hits, "round {round}: a pooled buffer");
            assert_eq!(
                down(b, &neg, &[4]),
                [-1.0, -2.0, -3.0, -4.0],
                "{}",
                dev.name()
            );
            assert_eq!(
                down(b, &y, &[4]),
                [10.0, 20.0, 30.0, 40.0],
                "{}",
                dev.name()
            );
        }
    }
}

#[test]
fn uploading_and_dropping_1_mib_tensors_keeps_memory_bounded() {
    for dev in devices("1 MiB uploads", &GpuOptions::default()) {
        let b = dev.backend();
        let n = (MIB / 4) as usize;
        let mut sum = b.zeros(n, DType::F32).unwrap();
        // 100 uploads (more than the 64 MiB staging budget holds), each
        // added into `sum` and dropped while the addition is still pending.
        sum = add_uploads(b, sum, n, 0..100);
        assert_eq!(down(b, &sum, &[n])[n - 1], 4950.0, "{}", dev.name());
        let warm = b.stats();
        sum = add_uploads(b, sum, n, 100..200);
        let got = down(b, &sum, &[n]);
        assert!(got.iter().all(|&v| v == 19900.0), "{}", dev.name());
        let after = b.stats();
        assert_eq!(
            after.buffers_allocated,
            warm.buffers_allocated,
            "{}: a warm upload loop creates no buffer",
            dev.name()
        );
        // The 64 MiB of staging, and a few tensors and readback buffers.
        assert!(
            after.bytes_pooled <= 72 * MIB,
            "{}: {} bytes kept besides live tensors",
            dev.name(),
            after.bytes_pooled
        );
        assert_eq!(after.bytes_live, MIB, "{}: only `sum` is live", dev.name());
    }
}

#[test]
fn a_small_staging_budget_submits_waits_and_still_takes_larger_uploads() {
    let opts = GpuOptions {
        max_upload_staging: Some(MIB),
        ..GpuOptions::default()
    };
    for dev in devices("staging budget", &opts) {
        let b = dev.backend();
        let n = (MIB / 16) as usize; // 256 KiB: four fill the budget
        let mut sum = b.zeros(n, DType::F32).unwrap();
        let submits = b.stats().submits;
        sum = add_uploads(b, sum, n, 0..20);
        assert!(
            b.stats().submits > submits,
            "{}: a full budget submits the pending work",
            dev.name()
        );
        assert!(b.stats().bytes_pooled <= 3 * MIB, "{}", dev.name());
        let kept = b.stats().bytes_pooled;
        // An upload larger than the whole budget gets a buffer of its own.
        let big: Vec<f32> = (0..2 * n * 4).map(|i| i as f32).collect();
        let t = up(b, &big);
        assert_eq!(down(b, &t, &[big.len()]), big, "{}", dev.name());
        drop(t);
        sum = add_uploads(b, sum, n, 20..40);
        assert!(down(b, &sum, &[n]).iter().all(|&v| v == 780.0));
        // Kept since: the 2 MiB tensor (pooled), its 2 MiB readback buffer
        // and the 256 KiB one of `sum`; not the 2 MiB staging buffer of the
        // large upload, let go once its copy was done.
        let grown = b.stats().bytes_pooled - kept;
        assert!(grown <= 5 * MIB, "{}: {grown} more bytes kept", dev.name());
    }
}

#[test]
fn readbacks_reuse_their_staging_buffers() {
    for dev in devices("readback staging", &GpuOptions::default()) {
        let b = dev.backend();
        let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let x = up(b, &data);
        assert_eq!(down(b, &x, &[1000]), data);
        let before = b.stats();
        for _ in 0..5 {
            assert_eq!(down(b, &x, &[1000]), data);
            b.synchronize().unwrap();
        }
        assert_eq!(
            b.stats().buffers_allocated,
            before.buffers_allocated,
            "{}",
            dev.name()
        );
    }
}

/// Adds an upload of the constant `i` to `sum` for each `i` in `values`,
/// dropping each upload at once.
fn add_uploads(
    b: &dyn Backend,
    mut sum: Storage,
    n: usize,
    values: std::ops::Range<usize>,
) -> Storage {
    let l = Layout::contiguous(&[n]);
    for i in values {
        let x = up(b, &vec![i as f32; n]);
        sum = b.binary(BinaryOp::Add, (&sum, &l), (&x, &l)).unwrap();
    }
    sum
}
