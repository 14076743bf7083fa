//! Training throughput of a multilayer perceptron: 784-512-256-10 with ReLUs,
//! cross-entropy, Adam (lr 1e-3), on one fixed batch of standard-normal
//! inputs `[batch, 784]` and random labels in `0..10`, exactly the `mlp` of
//! `bench/torch_bench.py`. Reported in steps/s and samples/s.

use lam_core::nn::{Linear, ReLU, Sequential};
use lam_core::{manual_seed, Device, Result, Tensor};

use crate::{arg, training, Outcome};

/// `mlp BATCH STEPS`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let batch: usize = arg(args, 0, "BATCH")?;
    let steps: usize = arg(args, 1, "STEPS")?;
    manual_seed(0);
    let model = model(device)?;
    let x = Tensor::randn(&[batch, 784], device)?;
    let y = Tensor::randint(0, 10, &[batch], device)?;
    training::bench("mlp", &model, &x, &y, steps, device)
}

/// The model: 784-512-256-10 with ReLUs (also the `ddp` scenario's `mlp`).
pub fn model(device: &Device) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(784, 512, device)?)
        .add(ReLU)
        .add(Linear::new(512, 256, device)?)
        .add(ReLU)
        .add(Linear::new(256, 10, device)?))
}
