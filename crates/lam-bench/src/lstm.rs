//! Training throughput of a recurrent classifier, the `lstm` of
//! `bench/torch_bench.py`: a 2-layer LSTM (32 input features, hidden 256,
//! batch first) over sequences of 64 steps, a linear head `256 → 10` on the
//! last step's output, cross-entropy, Adam (lr 1e-3). One fixed batch of
//! standard-normal sequences `[batch, 64, 32]` and random labels in `0..10`.
//! Reported in sequences/s (printed as `samples/s`).

use lam_core::nn::{Linear, Module, RnnConfig, LSTM};
use lam_core::optim::Adam;
use lam_core::{manual_seed, Device, Result, Tensor};

use crate::training::{self, Workload};
use crate::{arg, Outcome};

/// Input features per time step.
const FEATURES: usize = 32;
/// Time steps per sequence.
const SEQ: usize = 64;
/// LSTM hidden size.
const HIDDEN: usize = 256;
/// Stacked LSTM layers.
const LAYERS: usize = 2;
/// Classes of the head.
const CLASSES: usize = 10;

/// `lstm BATCH STEPS`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let batch: usize = arg(args, 0, "BATCH")?;
    let steps: usize = arg(args, 1, "STEPS")?;
    manual_seed(0);
    let model = Classifier::new(device)?;
    let x = Tensor::randn(&[batch, SEQ, FEATURES], device)?;
    let y = Tensor::randint(0, CLASSES as i32, &[batch], device)?;
    let mut opt = Adam::new(model.parameters(), 1e-3)?;
    let workload = Workload {
        name: "lstm",
        batch,
        items_per_step: batch,
        unit: "samples",
        model: &model,
    };
    training::bench_with(&workload, &mut opt, steps, device, || {
        model.forward(&x)?.cross_entropy(&y)
    })
}

/// The LSTM and its head; field names are those of the PyTorch counterpart.
#[derive(lam_core::nn::Module)]
#[module(crate = "lam_core")]
struct Classifier {
    lstm: LSTM,
    head: Linear,
}

impl Classifier {
    fn new(device: &Device) -> Result<Classifier> {
        let config = RnnConfig::default().num_layers(LAYERS).batch_first(true);
        Ok(Classifier {
            lstm: LSTM::with_config(FEATURES, HIDDEN, config, device)?,
            head: Linear::new(HIDDEN, CLASSES, device)?,
        })
    }
}

impl Module for Classifier {
    /// Sequences `[B, SEQ, FEATURES]` → logits `[B, CLASSES]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (out, _) = self.lstm.forward(x, None)?; // [B, SEQ, HIDDEN]
        let last = out.narrow(1, SEQ - 1, 1)?.squeeze(1)?;
        self.head.forward(&last)
    }
}
