//! Lean inference: a trained model loaded from its checkpoint and run on
//! batches of inputs, with the `lam` crate alone (no training toolkit, no
//! plotting): what an app that only predicts depends on.
//!
//! ```
//! use lam::infer::Predictor;
//! use lam::nn::{Linear, Module};
//! use lam::prelude::*;
//!
//! # fn main() -> lam::Result<()> {
//! let dev = Device::cpu();
//! let path = std::env::temp_dir().join(format!("lam-infer-doc-{}.safetensors", std::process::id()));
//! lam::checkpoint::save_model(&Linear::new(4, 3, &dev)?, &path)?;
//!
//! let predictor = Predictor::load(Linear::new(4, 3, &dev)?, &path)?.batch_size(2);
//! let classes = predictor.classify(&Tensor::randn(&[5, 4], &dev)?)?;
//! assert_eq!(classes.len(), 5);
//! # std::fs::remove_file(&path).ok();
//! # Ok(()) }
//! ```

use std::path::Path;

use lam_core::nn::quant::load_quantized;
use lam_core::nn::Module;
use lam_core::{checkpoint, no_grad, Error, Result, Tensor};

/// A model in evaluation mode that predicts in batches.
pub struct Predictor<M> {
    model: M,
    batch_size: usize,
}

impl<M: Module> Predictor<M> {
    /// `model` as it is, put in evaluation mode; batches of 256.
    pub fn new(model: M) -> Predictor<M> {
        model.eval();
        Predictor {
            model,
            batch_size: 256,
        }
    }

    /// `model` with the weights of a checkpoint (`save_model`'s safetensors
    /// or `.pth`, or PyTorch's).
    pub fn load(model: M, path: impl AsRef<Path>) -> Result<Predictor<M>> {
        checkpoint::load_model(&model, path)?;
        Ok(Predictor::new(model))
    }

    /// `model` (with quantized layers) with the weights of a quantized
    /// checkpoint (`save_quantized`).
    pub fn load_quantized(model: M, path: impl AsRef<Path>) -> Result<Predictor<M>> {
        load_quantized(&model, path)?;
        Ok(Predictor::new(model))
    }

    /// At most `n` inputs per forward pass (memory, not results: the
    /// outputs are the same for any batch size).
    pub fn batch_size(mut self, n: usize) -> Predictor<M> {
        self.batch_size = n.max(1);
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model's outputs for `inputs` (dim 0 indexes the samples), run
    /// without gradients in batches, on the device the inputs are on.
    pub fn predict(&self, inputs: &Tensor) -> Result<Tensor> {
        if inputs.rank() == 0 {
            return Err(Error::shape(
                "predict",
                "a batch of inputs [N, ...]",
                inputs.dims(),
            ));
        }
        let n = inputs.dims()[0];
        no_grad(|| {
            let mut outs = (0..n)
                .step_by(self.batch_size)
                .map(|start| {
                    let len = self.batch_size.min(n - start);
                    self.model.forward(&inputs.narrow(0, start, len)?)
                })
                .collect::<Result<Vec<_>>>()?;
            match outs.len() {
                // An empty batch still gets the model's output shape.
                0 => self.model.forward(inputs),
                1 => Ok(outs.remove(0)),
                _ => Tensor::cat(&outs, 0),
            }
        })
    }

    /// The class with the largest output for each input.
    pub fn classify(&self, inputs: &Tensor) -> Result<Vec<usize>> {
        let out = self.predict(inputs)?;
        Ok(out
            .argmax(-1, false)?
            .to_vec_i32()?
            .into_iter()
            .map(|c| c as usize)
            .collect())
    }
}
