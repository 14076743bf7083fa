//! Quickstart: define a model, train it, measure it, save it.
//!
//! A 3 → 4 → 2 MLP with ReLU learns to classify 100 random points with
//! cross-entropy and Adam, on the GPU if there is one, else on the CPU:
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```

#[path = "common/args.rs"]
pub mod args;

use lam::loss::cross_entropy;
use lam::nn::Linear;
use lam::optim::Adam;
use lam::prelude::*;

/// Two fully connected layers with a ReLU between them; the derive names
/// the parameters as PyTorch does: fc1.weight, fc1.bias, fc2.weight, fc2.bias.
#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

fn main() -> Result<()> {
    manual_seed(0);
    let dev = Device::auto()?;

    // 100 random points, each labelled 0 or 1.
    let x = Tensor::randn(&[100, 3], &dev)?;
    let labels = Tensor::randint(0, 2, &[100], &dev)?;

    let model = Mlp {
        fc1: Linear::new(3, 4, &dev)?,
        fc2: Linear::new(4, 2, &dev)?,
    };
    println!("{model}");
    let mut opt = Adam::new(model.parameters(), 0.001)?;

    for epoch in 1..=10 {
        let loss = cross_entropy(&model.forward(&x)?, &labels)?;
        opt.zero_grad();
        loss.backward()?;
        opt.step()?;
        println!("epoch {epoch:2}: loss {:.4}", loss.item()?);
    }

    let predicted = no_grad(|| model.forward(&x)?.argmax(-1, false))?;
    let correct = predicted.eq(&labels)?.sum_all()?.item()?;
    println!("accuracy: {:.0}%", 100.0 * correct / 100.0);

    let path = args::make_out_dir("quickstart")?.join("model.safetensors");
    lam::checkpoint::save_model(&model, &path)?;
    println!("saved the model to {}", path.display());
    Ok(())
}
