//! Training throughput of a LeNet-5-like network on `[batch, 1, 28, 28]`:
//! conv 6@5×5 (padding 2), ReLU, max-pool 2, conv 16@5×5, ReLU, max-pool 2,
//! flatten, 400→120→84→10 with ReLUs; cross-entropy, Adam (lr 1e-3), one
//! fixed batch of standard-normal inputs and random labels in `0..10`,
//! exactly the `cnn` of `bench/torch_bench.py`.

use lam_core::nn::{Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, ReLU, Sequential};
use lam_core::{manual_seed, Device, Result, Tensor};

use crate::{arg, training, Outcome};

/// `cnn BATCH STEPS`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let batch: usize = arg(args, 0, "BATCH")?;
    let steps: usize = arg(args, 1, "STEPS")?;
    manual_seed(0);
    let model = model(device)?;
    let x = Tensor::randn(&[batch, 1, 28, 28], device)?;
    let y = Tensor::randint(0, 10, &[batch], device)?;
    training::bench("cnn", &model, &x, &y, steps, device)
}

/// The LeNet-5-like model (also the `ddp` scenario's `cnn`).
pub fn model(device: &Device) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Conv2d::with_config(
            1,
            6,
            5,
            Conv2dConfig::default().padding(2),
            device,
        )?)
        .add(ReLU)
        .add(MaxPool2d::new(2)?)
        .add(Conv2d::new(6, 16, 5, device)?)
        .add(ReLU)
        .add(MaxPool2d::new(2)?)
        .add(Flatten::new())
        .add(Linear::new(16 * 5 * 5, 120, device)?)
        .add(ReLU)
        .add(Linear::new(120, 84, device)?)
        .add(ReLU)
        .add(Linear::new(84, 10, device)?))
}
