//! Quickstart: define a model, train it, measure it, save it.
//!
//! A 3 → 4 → 2 MLP with ReLU learns to classify 100 random points (by the
//! sign of their coordinates' sum) with cross-entropy and Adam, in shuffled batches of 20 (a progress bar per
//! epoch), on the GPU if there is one, else on the CPU:
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```

#[path = "common/args.rs"]
pub mod args;

use lam_train::prelude::*;

/// Two fully connected layers with a ReLU between them; the derive names
/// the parameters as PyTorch does: fc1.weight, fc1.bias, fc2.weight, fc2.bias.
#[derive(Module)]
struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

fn main() -> Result<()> {
    manual_seed(0);
    let dev = Device::auto()?;

    // 100 random points, labelled 1 where their coordinates sum above 0.
    let x = Tensor::randn(&[100, 3], &dev)?;
    let labels = x.sum(-1, false)?.gt_scalar(0.0)?.to_dtype(DType::I32)?;
    let loader = DataLoader::new(TensorDataset::new(&x, &labels)?, 20, &dev)?.shuffle(true);

    let model = Mlp {
        fc1: nn::Linear::new(3, 4, &dev)?,
        fc2: nn::Linear::new(4, 2, &dev)?,
    };
    println!("{model}");
    let mut opt = optim::Adam::new(model.parameters(), 0.01)?;

    for epoch in 1..=10 {
        for batch in progress(&loader).desc(format!("epoch {epoch}")) {
            let (x, y) = batch?;
            let loss = loss::cross_entropy(&model.forward(&x)?, &y)?;
            opt.zero_grad();
            loss.backward()?;
            opt.step()?;
        }
    }

    let scores = evaluate(&model, &loader, &loss::cross_entropy)?;
    let accuracy = 100.0 * scores.accuracy.unwrap_or(0.0);
    println!("loss {:.4}, accuracy {accuracy:.0}%", scores.loss);

    let path = args::make_out_dir("quickstart")?.join("model.safetensors");
    lam::checkpoint::save_model(&model, &path)?;
    println!("saved the model to {}", path.display());
    Ok(())
}
