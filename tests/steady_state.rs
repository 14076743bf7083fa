//! A training loop's steady state allocates no new buffers: after warm-up
//! steps, every output of a step (activations, gradients, optimizer
//! temporaries) reuses a buffer freed by the step before — from lam-cpu's
//! recycled vectors on the CPU, from lam-wgpu's buffer pool on a GPU.
//!
//! One test in its own binary, devices one after another: the CPU pool is
//! process-wide, so no other test may run beside it.

mod common;

use lam::nn::{Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;

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

/// Runs `steps` training steps and returns the last loss.
fn train(model: &Sequential, opt: &mut Adam, x: &Tensor, y: &Tensor, steps: usize) -> f32 {
    let mut loss = f32::NAN;
    for _ in 0..steps {
        opt.zero_grad();
        let l = model
            .forward(x)
            .and_then(|o| o.cross_entropy(y))
            .expect("forward");
        l.backward().expect("backward");
        opt.step().expect("step");
        loss = l.item().expect("loss");
    }
    loss
}

fn setup(dev: &Device) -> (Sequential, Adam, Tensor, Tensor) {
    lam::manual_seed(5);
    let m = model(dev).expect("model");
    let opt = Adam::new(m.parameters(), 1e-3).expect("adam");
    let x = Tensor::randn(&[32, 1, 16, 16], dev).expect("x");
    let y = Tensor::from_vec_i32((0..32).map(|i| i % 10).collect(), &[32], dev).expect("y");
    (m, opt, x, y)
}

#[test]
fn training_steps_reuse_every_buffer_after_warm_up() {
    // CPU: the process-wide pool of output vectors.
    let cpu = Device::cpu();
    let (m, mut opt, x, y) = setup(&cpu);
    train(&m, &mut opt, &x, &y, 3);
    let before = lam_cpu::pool_stats();
    train(&m, &mut opt, &x, &y, 5);
    let after = lam_cpu::pool_stats();
    assert!(after.reused > before.reused, "the steps reused buffers");
    assert_eq!(
        after.fresh, before.fresh,
        "fresh allocations in steady state on the cpu"
    );

    // GPUs: the device's buffer pool (`buffers_allocated` counts buffers
    // created through the driver).
    for api in ["vulkan", "gl"] {
        let Some(dev) = common::gpu(api) else {
            continue;
        };
        let (m, mut opt, x, y) = setup(&dev);
        train(&m, &mut opt, &x, &y, 3);
        let before = dev.stats();
        train(&m, &mut opt, &x, &y, 5);
        let after = dev.stats();
        assert!(
            after.pool_hits > before.pool_hits,
            "{api}: the steps reused buffers"
        );
        assert_eq!(
            after.buffers_allocated, before.buffers_allocated,
            "{api}: buffers created in steady state"
        );
    }
}
