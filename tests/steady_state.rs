//! A training loop's steady state allocates no new buffers: after warm-up
//! steps, every output of a step (activations, gradients, optimizer
//! temporaries) reuses a buffer freed by the step before — from lam-cpu's
//! recycled vectors on the CPU, from lam-wgpu's buffer pool on a GPU — and
//! so does every upload of a new batch from a `DataLoader`, and every
//! staging buffer that carries it, the kernel parameters and the loss.
//! On a GPU the steps' peak of live bytes is reported and resettable.
//!
//! One test in its own binary, devices one after another: the CPU pool is
//! process-wide, so no other test may run beside it.

mod common;

use lam::nn::{Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;
use lam_train::data::{DataLoader, TensorDataset};

/// A small CNN and MLP head, big enough that every activation goes
/// through the pools (the CPU pool skips vectors under 4096 elements).
fn model(dev: &Device) -> lam::Result<Sequential> {
    Ok(Sequential::new()
        .add(Conv2d::new(1, 4, 3, dev)?)
        .add(ReLU)
        .add(MaxPool2d::new(2)?)
        .add(Flatten::new())
        .add(Linear::new(4 * 7 * 7, 64, dev)?)
        .add(ReLU)
        .add(Linear::new(64, 10, dev)?))
}

/// One training step on `(x, y)`; returns the loss, read back as a real
/// loop does.
fn step(model: &Sequential, opt: &mut Adam, x: &Tensor, y: &Tensor) -> f32 {
    opt.zero_grad();
    let l = model
        .forward(x)
        .and_then(|o| o.cross_entropy(y))
        .expect("forward");
    l.backward().expect("backward");
    opt.step().expect("step");
    l.item().expect("loss")
}

/// Runs `steps` training steps on the fixed batch `(x, y)`.
fn train(model: &Sequential, opt: &mut Adam, x: &Tensor, y: &Tensor, steps: usize) {
    for _ in 0..steps {
        step(model, opt, x, y);
    }
}

/// Runs the training steps of `epochs`, each batch a new upload.
fn train_from(
    model: &Sequential,
    opt: &mut Adam,
    loader: &DataLoader,
    epochs: std::ops::Range<u64>,
) {
    for epoch in epochs {
        for batch in loader.epoch(epoch) {
            let (x, y) = batch.expect("a batch");
            step(model, opt, &x, &y);
        }
    }
}

fn setup(dev: &Device) -> (Sequential, Adam, Tensor, Tensor) {
    lam::manual_seed(5);
    let m = model(dev).expect("model");
    let opt = Adam::new(m.parameters(), 1e-3).expect("adam");
    let x = Tensor::randn(&[32, 1, 16, 16], dev).expect("x");
    let y = Tensor::from_vec_i32((0..32).map(|i| i % 10).collect(), &[32], dev).expect("y");
    (m, opt, x, y)
}

/// 200 samples of `[1, 16, 16]` in shuffled batches of 32: six full
/// batches (32 × 256 features, pooled on the CPU too) and a short one.
fn loader(dev: &Device) -> DataLoader {
    let features: Vec<f32> = (0..200 * 256)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let labels = (0..200).map(|i| i % 10).collect();
    let data = TensorDataset::from_classes(features, &[1, 16, 16], labels).expect("data");
    DataLoader::new(data, 32, dev)
        .expect("loader")
        .shuffle(true)
        .seed(3)
}

#[test]
fn training_steps_reuse_every_buffer_after_warm_up() {
    // CPU: the process-wide pool of output vectors.
    let cpu = Device::cpu();
    let (m, mut opt, x, y) = setup(&cpu);
    train(&m, &mut opt, &x, &y, 3);
    // The CPU keeps no peak of live bytes (DeviceStats' zero).
    assert_eq!(cpu.reset_peak_stats().bytes_live_peak, 0);
    let before = lam_cpu::pool_stats();
    train(&m, &mut opt, &x, &y, 5);
    let after = lam_cpu::pool_stats();
    assert!(after.reused > before.reused, "the steps reused buffers");
    assert_eq!(
        after.fresh, before.fresh,
        "fresh allocations in steady state on the cpu"
    );
    let data = loader(&cpu);
    train_from(&m, &mut opt, &data, 0..2);
    let before = lam_cpu::pool_stats();
    train_from(&m, &mut opt, &data, 2..4);
    let after = lam_cpu::pool_stats();
    assert_eq!(
        after.fresh, before.fresh,
        "fresh allocations in DataLoader-fed steps on the cpu"
    );
    assert!(
        after.bytes_pooled <= before.bytes_pooled,
        "the cpu pool grew from {} to {} bytes",
        before.bytes_pooled,
        after.bytes_pooled
    );

    // GPUs: the device's buffer pool and staging buffers
    // (`buffers_allocated` counts every buffer created through the driver).
    for api in ["vulkan", "gl"] {
        let Some(dev) = common::gpu(api) else {
            continue;
        };
        let (m, mut opt, x, y) = setup(&dev);
        train(&m, &mut opt, &x, &y, 3);
        dev.reset_peak_stats();
        let before = dev.stats();
        train(&m, &mut opt, &x, &y, 5);
        let after = dev.stats();
        assert!(
            after.pool_hits > before.pool_hits,
            "{api}: the steps reused buffers"
        );
        // The activations a step keeps for its backward pass (the first, the
        // convolution's [32, 4, 14, 14] output) were live at once, beyond
        // the weights and optimizer state live between steps.
        assert!(
            after.bytes_live_peak > after.bytes_live + 32 * 4 * 14 * 14 * 4,
            "{api}: peak of live bytes {} after steps with {} live",
            after.bytes_live_peak,
            after.bytes_live
        );
        let reset = dev.reset_peak_stats();
        assert_eq!(reset.bytes_live_peak, after.bytes_live_peak, "{api}");
        assert_eq!(dev.stats().bytes_live_peak, dev.stats().bytes_live, "{api}");
        assert_eq!(
            after.buffers_allocated, before.buffers_allocated,
            "{api}: buffers created in steady state"
        );
        let data = loader(&dev);
        train_from(&m, &mut opt, &data, 0..2);
        let before = dev.stats();
        train_from(&m, &mut opt, &data, 2..4);
        let after = dev.stats();
        assert_eq!(
            after.buffers_allocated, before.buffers_allocated,
            "{api}: buffers created in DataLoader-fed steps"
        );
        assert_eq!(
            after.bytes_pooled, before.bytes_pooled,
            "{api}: bytes kept besides live tensors"
        );
    }
}
