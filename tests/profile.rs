//! The profiler (`lam::profile`): it changes no result, counts every op
//! exactly, prints its table, and on a GPU with timestamp queries times
//! every kernel on the device.
//!
//! Profiling state is process-global and the tests of this binary run on
//! parallel threads, so every test holds [`exclusive`] while it records.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use lam::nn::{Linear, Module, ReLU, Sequential};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;
use lam::profile::{self, Clock};

/// Serialises the tests that touch the global profiler; leaves it off.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    profile::disable();
    profile::reset();
    guard
}

/// Three steps of a small MLP with Adam; the losses and final weights.
fn train(dev: &Device) -> lam::Result<(Vec<f32>, Vec<Vec<f32>>)> {
    lam::manual_seed(11);
    let model = Sequential::new()
        .add(Linear::new(12, 16, dev)?)
        .add(ReLU)
        .add(Linear::new(16, 3, dev)?);
    let mut opt = Adam::new(model.parameters(), 1e-2)?;
    let x = Tensor::randn(&[6, 12], dev)?;
    let y = Tensor::from_vec_i32(vec![0, 1, 2, 0, 1, 2], &[6], dev)?;
    let mut losses = Vec::new();
    for _ in 0..3 {
        opt.zero_grad();
        let loss = model.forward(&x)?.cross_entropy(&y)?;
        loss.backward()?;
        opt.step()?;
        losses.push(loss.item()?);
    }
    let weights = model
        .parameters()
        .iter()
        .map(|p| p.to_vec())
        .collect::<lam::Result<_>>()?;
    Ok((losses, weights))
}

conformance!(profiling_changes_no_result, |dev| {
    let _lock = exclusive();
    let plain = train(dev)?;
    profile::enable();
    let profiled = train(dev)?;
    let report = profile::report();
    profile::disable();
    // Bit for bit: the wrapper only forwards.
    assert_eq!(plain, profiled, "profiling changed the numbers on {dev}");
    // It did record the step: every Linear forward is a matmul.
    assert!(report.count("matmul") >= 3 * 2, "{report}");
    // The fused paths stayed as the device has them: both backends fuse Adam
    // and cross-entropy, so on a plain device a "declined" row means the
    // wrapper failed to forward the call; the unfused twin declines them all.
    let declined = |op: &str| format!("{op} (declined)");
    for (op, calls) in [("fused_adam", 3 * 4), ("fused_cross_entropy", 3)] {
        let (ran, not_ran) = if common::is_unfused(dev) {
            (declined(op), op.to_string())
        } else {
            (op.to_string(), declined(op))
        };
        assert_eq!(report.count(&ran), calls, "{ran} on {dev}: {report}");
        assert_eq!(report.count(&not_ran), 0, "{not_ran} on {dev}: {report}");
    }
    Ok(())
});

conformance!(counts_are_exact, |dev| {
    let _lock = exclusive();
    let a = Tensor::randn(&[4, 5], dev)?;
    let b = Tensor::randn(&[5, 3], dev)?;
    dev.synchronize()?;
    profile::enable();
    let c = a.matmul(&b)?;
    let d = c.relu()?;
    let e = a.matmul(&b)?.matmul(&Tensor::randn(&[3, 2], dev)?)?;
    dev.synchronize()?;
    let report = profile::report();
    profile::disable();
    assert_eq!(report.count("matmul"), 3, "{report}");
    assert_eq!(report.count("unary.relu"), 1, "{report}");
    assert_eq!(report.count("fill_random"), 1, "{report}");
    assert_eq!(report.count("synchronize"), 1, "{report}");
    let host = report
        .section(&dev.name(), Clock::Host)
        .expect("a host section for the device");
    assert_eq!(host.count(), 6, "{report}");
    // Off means off: nothing more is recorded.
    let _ = d.transpose(0, 1)?.matmul(&e)?;
    assert_eq!(profile::report().count("matmul"), 3);
    Ok(())
});

conformance!(the_table_accounts_for_the_span, |dev| {
    let _lock = exclusive();
    let outer = Instant::now();
    profile::enable();
    let inner = Instant::now();
    let (losses, _) = train(dev)?;
    dev.synchronize()?;
    let inner = inner.elapsed();
    let report = profile::report();
    let outer = outer.elapsed();
    profile::disable();
    assert!(losses.iter().all(|l| l.is_finite()));
    let text = report.to_string();
    let first = text.lines().next().unwrap_or("");
    assert!(first.starts_with("lam profile: "), "{text}");
    assert!(text.contains(&dev.name()), "{text}");
    for op in [
        "matmul",
        "fused_adam",
        "synchronize",
        "other (host, outside ops)",
    ] {
        assert!(text.contains(op), "{op} missing from\n{text}");
    }
    // The span is the wall time from `enable` to `report`, by a clock of
    // the test's own.
    assert!(
        inner <= report.span && report.span <= outer,
        "span {:?} outside [{inner:?}, {outer:?}]",
        report.span
    );
    // The ops ran one at a time inside the span, so their host time fits
    // in it and "other" is the rest of it, as the table prints.
    assert!(
        !report.host_total().is_zero() && report.host_total() <= report.span,
        "host total {:?}, span {:?}\n{text}",
        report.host_total(),
        report.span
    );
    assert_eq!(report.other(), report.span - report.host_total());
    assert!(report.host_share() > 0.0 && report.host_share() <= 1.0);
    let other_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("other (host, outside ops)"))
        .unwrap_or_default();
    let printed_ms = other_row.split_whitespace().nth(4).unwrap_or_default();
    let other_ms = format!("{:.2}", report.other().as_secs_f64() * 1e3);
    assert_eq!(printed_ms, other_ms, "{text}");
    // A reset empties the table.
    profile::reset();
    assert_eq!(profile::report().count("matmul"), 0);
    Ok(())
});

conformance!(shapes_split_products_by_their_sizes, |dev| {
    let _lock = exclusive();
    let b = Tensor::randn(&[3, 4], dev)?;
    let run = || -> lam::Result<()> {
        Tensor::randn(&[2, 3], dev)?.matmul(&b)?.to_vec()?;
        Tensor::randn(&[5, 3], dev)?.matmul(&b)?.to_vec()?;
        Tensor::randn(&[2, 2, 3], dev)?.matmul(&b)?.to_vec()?;
        Ok(())
    };
    // Without shapes every product is one row.
    profile::enable();
    run()?;
    let plain = profile::report();
    assert_eq!(plain.count("matmul"), 3, "{plain}");
    assert!(!profile::records_shapes());
    // With shapes, one row per product's `BxMxNxK`, on the host and (where
    // kernels are timed) on the GPU, whose rows add the load modes.
    profile::enable_with_shapes();
    assert!(profile::records_shapes() && profile::is_enabled());
    run()?;
    let report = profile::report();
    profile::disable();
    assert_eq!(report.count("matmul"), 0, "{report}");
    // A batch times one matrix is one product of the stacked rows.
    for shape in ["1x2x4x3", "1x5x4x3", "1x4x4x3"] {
        assert_eq!(report.count(&format!("matmul {shape}")), 1, "{report}");
    }
    if let Some(gpu) = report.section(&dev.name(), Clock::Gpu) {
        let rows: Vec<&str> = gpu.rows.iter().map(|r| r.op.as_str()).collect();
        assert!(
            rows.iter().any(|r| r.contains(" 1x5x4x3 a")),
            "{rows:?}\n{report}"
        );
    }
    Ok(())
});

/// Whether the Vulkan adapter `dev` runs on has the features kernel timing
/// needs, asked of wgpu directly (not of lam) so a wrong answer from lam
/// fails the test below.
fn has_timestamps(dev: &Device) -> bool {
    use lam_wgpu::wgpu;
    let want = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    adapters
        .iter()
        .any(|a| dev.name().ends_with(&a.get_info().name) && a.features().contains(want))
}

#[test]
fn vulkan_kernels_are_timed_with_timestamp_queries() {
    let Some(dev) = common::gpu("vulkan") else {
        return;
    };
    let _lock = exclusive();
    let timestamps = has_timestamps(&dev);
    let a = Tensor::randn(&[64, 64], &dev).expect("a");
    dev.synchronize().expect("sync");
    profile::enable();
    let mut c = a.clone();
    for _ in 0..3 {
        c = c.matmul(&a).expect("matmul");
    }
    let _ = c.to_vec().expect("read");
    let report = profile::report();
    profile::disable();
    let gpu = report.section(&dev.name(), Clock::Gpu);
    let note = report
        .section(&dev.name(), Clock::Host)
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    if !timestamps {
        eprintln!("skipped: {dev} has no timestamp queries inside passes");
        assert!(gpu.is_none(), "{report}");
        assert!(note.starts_with("no timestamp queries"), "{report}");
        return;
    }
    assert!(note.contains("from timestamp queries"), "{report}");
    let gpu = gpu.unwrap_or_else(|| panic!("no GPU section on {dev}:\n{report}"));
    let matmul = gpu
        .rows
        .iter()
        .find(|r| r.op == "matmul")
        .unwrap_or_else(|| panic!("no matmul kernel row:\n{report}"));
    assert_eq!(matmul.count, 3, "{report}");
    assert!(!matmul.total.is_zero(), "{report}");
    // Device time of work inside the span cannot exceed the span.
    assert!(report.gpu_total() <= report.span, "{report}");
}
