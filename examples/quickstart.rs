//! Quickstart: define a model, train it, measure it, save it.
//!
//! A 3 → 4 → 2 MLP with ReLU learns to classify 100 random points with
//! cross-entropy and Adam, on the GPU if there is one, else on the CPU:
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```

use lam::nn::{Linear, Module};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;
use lam::{checkpoint, loss};

/// Two fully connected layers with a ReLU between them; the derive names
/// the parameters as PyTorch does: fc1.weight, fc1.bias, fc2.weight, fc2.bias.
#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(dev: &Device) -> Result<Mlp> {
        Ok(Mlp {
            fc1: Linear::new(3, 4, dev)?,
            fc2: Linear::new(4, 2, dev)?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

fn main() -> Result<()> {
    manual_seed(0);
    let dev = Device::auto();

    // 100 random points, each labelled 0 or 1.
    let x = Tensor::randn(&[100, 3], &dev)?;
    let labels = Tensor::randint(0, 2, &[100], &dev)?;

    let model = Mlp::new(&dev)?;
    let mut opt = Adam::new(model.parameters(), 0.001)?;

    for epoch in 1..=10 {
        let loss = loss::cross_entropy(&model.forward(&x)?, &labels)?;
        opt.zero_grad();
        loss.backward()?;
        opt.step()?;
        println!("epoch {epoch:2}: loss {:.4}", loss.item()?);
    }

    let predicted = no_grad(|| model.forward(&x)?.argmax(-1, false))?;
    let correct = predicted.eq(&labels)?.sum_all()?.item()?;
    println!("accuracy: {:.0}%", 100.0 * correct / 100.0);

    // Beside the other examples' outputs (or under $LAM_OUT_DIR).
    let dir = std::env::var_os("LAM_OUT_DIR")
        .map_or_else(|| "target/lam-out".into(), std::path::PathBuf::from)
        .join("quickstart");
    std::fs::create_dir_all(&dir).map_err(|e| lam::Error::Io {
        path: dir.display().to_string(),
        msg: e.to_string(),
    })?;
    let path = dir.join("model.safetensors");
    checkpoint::save_model(&model, &path)?;
    println!("saved the model to {}", path.display());
    Ok(())
}
