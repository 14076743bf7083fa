//! The GPU queue is lazy: a whole training step (forward, backward,
//! optimizer update) records into one command encoder and costs exactly one
//! submit, made when the loss is read back.

mod common;

use lam::nn::{Linear, Module};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;

#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> lam::Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

fn one_submit_per_step(dev: &Device) {
    lam::manual_seed(3);
    let model = Mlp {
        fc1: Linear::new(16, 32, dev).expect("fc1"),
        fc2: Linear::new(32, 4, dev).expect("fc2"),
    };
    let mut opt = Adam::new(model.parameters(), 1e-2).expect("adam");
    let x = Tensor::randn(&[8, 16], dev).expect("x");
    let y = Tensor::from_vec_i32((0..8).map(|i| i % 4).collect(), &[8], dev).expect("y");
    let step = |opt: &mut Adam| -> f32 {
        opt.zero_grad();
        let loss = model
            .forward(&x)
            .and_then(|l| l.cross_entropy(&y))
            .expect("forward");
        loss.backward().expect("backward");
        opt.step().expect("step");
        loss.item().expect("read loss")
    };
    // The first step builds pipelines and optimizer state; measure the next ones.
    let first = step(&mut opt);
    dev.synchronize().expect("sync");
    let mut last = first;
    for _ in 0..3 {
        let before = dev.stats().submits;
        last = step(&mut opt);
        let submits = dev.stats().submits - before;
        assert_eq!(
            submits, 1,
            "a training step on {dev} cost {submits} submits"
        );
    }
    assert!(last < first, "loss did not fall: {first} -> {last}");
}

#[test]
fn vulkan_training_step_is_one_submit() {
    if let Some(dev) = common::gpu("vulkan") {
        one_submit_per_step(&dev);
    }
}

#[test]
fn gl_training_step_is_one_submit() {
    if let Some(dev) = common::gpu("gl") {
        one_submit_per_step(&dev);
    }
}
