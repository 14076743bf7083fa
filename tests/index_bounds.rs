//! Out-of-range indices are errors on every device, never numbers: the CPU
//! returns the error at the call, a GPU checks every index in its kernels
//! and returns the error at the next readback or `synchronize` (a
//! device-side fault, as CUDA reports one), before any result computed
//! from the bad index reaches the user. Where an index tensor's bounds are
//! values it holds (host data and joins of it) the error comes at the call
//! on every device; the index tensors here are made three ways — by `cat`
//! (attained bounds), by a cast on the device (unknown bounds) and as a view
//! (its parent's looser bounds) — so both paths are covered. Valid indices
//! cost no readback: a training step stays one submit.
//!
//! GPU tests open private devices: a device-side fault belongs to its
//! device and would otherwise surface in a test running beside this one.

mod common;

use lam::nn::{Embedding, Linear, Module};
use lam::optim::{Optimizer, Sgd};
use lam::prelude::*;

/// The CPU, and a private device on each GPU adapter the suite tests.
fn devices() -> Vec<Device> {
    let mut out = vec![Device::cpu()];
    for api in ["vulkan", "gl"] {
        if let Some(shared) = common::gpu(api) {
            out.push(private(&shared));
        }
    }
    out
}

/// A fresh device on the adapter of `shared`.
fn private(shared: &Device) -> Device {
    let info = lam_wgpu::list_adapters()
        .into_iter()
        .find(|a| shared.name().ends_with(&a.name) && shared.name().starts_with(a.backend.to_str()))
        .expect("the shared device's adapter is listed");
    lam_wgpu::gpu_device(&lam_wgpu::GpuOptions {
        adapter: Some(info.name.clone()),
        backends: Some(info.backend.into()),
        ..lam_wgpu::GpuOptions::default()
    })
    .expect("a private device on the same adapter")
}

/// How an I32 index `[0, bad]` was made, and so what its bounds say.
const SOURCES: [&str; 3] = ["cat", "cast", "view"];

/// `[0, bad]` as an I32 index three ways: `cat` of two host vectors
/// (bounds it attains, so the error may come at the call), a cast of F32
/// values on the device (unknown bounds) and a column view of a host
/// matrix (its parent's looser bounds), whose errors come from the backend.
fn mixed_indices(bad: i32, dev: &Device) -> Result<[Tensor; 3]> {
    let first = Tensor::from_vec_i32(vec![0], &[1], dev)?;
    let second = Tensor::from_vec_i32(vec![bad], &[1], dev)?;
    let cast = Tensor::from_vec(vec![0.0, bad as f32], &[2], dev)?.to_dtype(DType::I32)?;
    let pairs = Tensor::from_vec_i32(vec![0, 1, bad, 2], &[2, 2], dev)?;
    let column = pairs.narrow(1, 0, 1)?.squeeze(1)?;
    Ok([Tensor::cat(&[first, second], 0)?, cast, column])
}

/// Asserts that `result`, read back, is the out-of-range error of `op`
/// for `index` in a dim of `size`: at the call, or at the readback.
fn fails(dev: &Device, what: &str, result: Result<Tensor>, op: &str, index: i64, size: usize) {
    match result.and_then(|t| t.to_vec()) {
        Ok(v) => panic!("{what} on {dev}: expected an error, read {v:?}"),
        Err(Error::OutOfRange {
            op: name,
            index: i,
            size: n,
        }) => {
            assert!(name.starts_with(op), "{what} on {dev}: op {name:?}");
            assert_eq!((i, n), (index, size), "{what} on {dev}");
        }
        Err(e) => panic!("{what} on {dev}: expected OutOfRange, got {e}"),
    }
}

/// After an error, the device computes and reads correctly.
fn still_works(dev: &Device) -> Result<()> {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3], dev)?;
    let i = Tensor::from_vec_i32(vec![2, 0], &[2], dev)?;
    assert_eq!(x.index_select(0, &i)?.to_vec()?, vec![3.0, 1.0], "{dev}");
    Ok(())
}

#[test]
fn out_of_range_indices_are_errors_before_any_value_is_read() -> Result<()> {
    for dev in devices() {
        let x = Tensor::ones(&[3, 4], &dev)?;
        for (how, idx) in SOURCES.into_iter().zip(mixed_indices(1000, &dev)?) {
            let what = format!("index_select with an index from {how}");
            fails(
                &dev,
                &what,
                x.index_select(0, &idx),
                "index_select",
                1000,
                3,
            );
            still_works(&dev)?;

            let what = format!("gather with an index from {how}");
            let g = idx.reshape(&[2, 1])?;
            fails(&dev, &what, x.gather(1, &g), "gather", 1000, 4);
            still_works(&dev)?;

            let what = format!("scatter_add with an index from {how}");
            let src = Tensor::ones(&[2, 4], &dev)?;
            let s = idx.reshape(&[2, 1])?.broadcast_to(&[2, 4])?.contiguous()?;
            fails(
                &dev,
                &what,
                x.scatter_add(0, &s, &src),
                "scatter_add",
                1000,
                3,
            );
            still_works(&dev)?;

            let what = format!("Embedding with indices from {how}");
            let emb = Embedding::new(3, 4, &dev)?;
            fails(&dev, &what, emb.forward(&idx), "index_select", 1000, 3);
            still_works(&dev)?;
        }
        for (how, targets) in SOURCES.into_iter().zip(mixed_indices(7, &dev)?) {
            let what = format!("cross_entropy with targets from {how}");
            let logits = Tensor::ones(&[2, 3], &dev)?;
            fails(
                &dev,
                &what,
                logits.cross_entropy(&targets),
                "cross_entropy",
                7,
                3,
            );
            still_works(&dev)?;
        }
    }
    Ok(())
}

#[test]
fn indices_wholly_out_of_range_are_errors_at_the_call() -> Result<()> {
    // Bounds that exclude every valid index prove the error without
    // looking at the values, so every device reports it before any work.
    for dev in devices() {
        let x = Tensor::ones(&[3, 4], &dev)?;
        let high = Tensor::from_vec_i32(vec![3, 5], &[2], &dev)?;
        let e = x
            .index_select(0, &high)
            .expect_err("bounds 3..=5 miss 0..3");
        assert!(
            matches!(
                e,
                Error::OutOfRange {
                    index: 3,
                    size: 3,
                    ..
                }
            ),
            "{dev}: {e}"
        );
        let negative = Tensor::from_vec_i32(vec![-2, -1], &[2, 1], &dev)?;
        let e = x.gather(1, &negative).expect_err("negative indices");
        assert!(
            matches!(
                e,
                Error::OutOfRange {
                    index: -2,
                    size: 4,
                    ..
                }
            ),
            "{dev}: {e}"
        );
    }
    Ok(())
}

#[test]
fn one_report_for_several_faults_then_the_device_works() -> Result<()> {
    for dev in devices().into_iter().filter(Device::is_gpu) {
        let x = Tensor::ones(&[3, 4], &dev)?;
        // Indices cast on the device: no bounds prove them out of range, so
        // both faults happen on the device.
        let [_, first, _] = mixed_indices(1000, &dev)?;
        let [_, second, _] = mixed_indices(-5, &dev)?;
        // Recorded on the device; nothing is read yet.
        let a = x.index_select(0, &first)?;
        let b = x.index_select(1, &second)?;
        let e = dev.synchronize().expect_err("the faults are reported");
        assert!(
            matches!(
                e,
                Error::OutOfRange {
                    index: 1000,
                    size: 3,
                    ..
                }
            ),
            "{dev}: the first fault is the one reported: {e}"
        );
        // Reported once: the device is clear again.
        dev.synchronize()?;
        assert_eq!(a.dims(), [2, 4]);
        assert_eq!(b.dims(), [3, 2]);
        still_works(&dev)?;
    }
    Ok(())
}

#[test]
fn a_training_step_with_device_made_indices_is_one_submit() -> Result<()> {
    // Token ids and targets cast on the device: their bounds are unknown,
    // and no index is read back to check them.
    for dev in devices().into_iter().filter(Device::is_gpu) {
        lam::manual_seed(5);
        let emb = Embedding::new(10, 8, &dev)?;
        let fc = Linear::new(8, 3, &dev)?;
        let mut params = emb.parameters();
        params.extend(fc.parameters());
        let mut opt = Sgd::new(params, 0.5)?;
        let ids: Vec<f32> = (0..6).map(|i| (i * 7 % 10) as f32).collect();
        let ids = Tensor::from_vec(ids, &[6], &dev)?.to_dtype(DType::I32)?;
        let targets = Tensor::from_vec(vec![0.0, 1.0, 2.0, 1.0, 0.0, 2.0], &[6], &dev)?
            .to_dtype(DType::I32)?;
        let mut step = || -> Result<f32> {
            opt.zero_grad();
            let loss = fc.forward(&emb.forward(&ids)?)?.cross_entropy(&targets)?;
            loss.backward()?;
            opt.step()?;
            loss.item()
        };
        let first = step()?;
        let mut last = first;
        for _ in 0..3 {
            let before = dev.stats().submits;
            last = step()?;
            let submits = dev.stats().submits - before;
            assert_eq!(submits, 1, "a step on {dev} cost {submits} submits");
        }
        assert!(last < first, "{dev}: loss did not fall: {first} -> {last}");
    }
    Ok(())
}
