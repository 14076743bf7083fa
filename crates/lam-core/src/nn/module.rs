//! The [`Module`] trait: anything with parameters.
//!
//! A module implements two methods — `forward`, and `visit`, which names each
//! parameter, buffer and train/eval flag it owns, recursing into children
//! with a dotted prefix (`fc1.weight`, `layers.0.bias`), exactly PyTorch's
//! `state_dict` keys. Everything else (parameter lists, counting, train/eval,
//! moving to a device, checkpoints) is provided on top of `visit`.
//!
//! ```ignore
//! struct Mlp { fc1: Linear, fc2: Linear }
//! impl Module for Mlp {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         self.fc2.forward(&self.fc1.forward(x)?.relu()?)
//!     }
//!     fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
//!         self.fc1.visit(&join(prefix, "fc1"), f);
//!         self.fc2.visit(&join(prefix, "fc2"), f);
//!     }
//! }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::LinearActivation;
use crate::{Device, Result, Tensor};

/// One thing a module owns, as reported by [`Module::visit`].
pub enum Entry<'a> {
    /// A trainable tensor (requires grad).
    Parameter(&'a Tensor),
    /// A saved, non-trainable tensor (e.g. BatchNorm running statistics).
    Buffer(&'a Tensor),
    /// The module's train/eval flag (true = training).
    Mode(&'a AtomicBool),
}

/// A layer or model.
pub trait Module: Send + Sync {
    /// The forward pass.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;

    /// Calls `f` with the dotted name of each parameter, buffer and mode flag
    /// (flags are reported under the module's own prefix).
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>));

    /// For layer fusion in [`super::Sequential`]: the activation this layer
    /// is, when it is one a preceding layer can apply as it writes its
    /// output. `None` (the default) for every other layer.
    fn as_activation(&self) -> Option<LinearActivation> {
        None
    }

    /// For layer fusion: `act(self.forward(input))` computed as one op, or
    /// `None` (the default) when this layer cannot absorb `act`.
    fn forward_then(&self, _input: &Tensor, _act: LinearActivation) -> Option<Result<Tensor>> {
        None
    }

    /// Trainable tensors, in a stable order (for optimizers).
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Trainable tensors with their names.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |name, e| {
            if let Entry::Parameter(t) = e {
                out.push((name.to_string(), t.clone()));
            }
        });
        out
    }

    /// Parameters and buffers with their names: what a checkpoint holds.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |name, e| match e {
            Entry::Parameter(t) | Entry::Buffer(t) => out.push((name.to_string(), t.clone())),
            Entry::Mode(_) => {}
        });
        out
    }

    /// Number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|t| t.numel()).sum()
    }

    /// Sets training mode (dropout active, batch statistics) or evaluation mode.
    fn set_training(&self, training: bool) {
        self.visit("", &mut |_, e| {
            if let Entry::Mode(flag) = e {
                flag.store(training, Ordering::Relaxed);
            }
        });
    }

    /// Training mode (PyTorch's `model.train()`).
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode (PyTorch's `model.eval()`).
    fn eval(&self) {
        self.set_training(false);
    }

    /// Moves every parameter and buffer to `device` in place.
    fn to_device(&self, device: &Device) -> Result<()> {
        for (_, t) in self.state_dict() {
            t.move_to_(device)?;
        }
        Ok(())
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }
}

/// `prefix.name`, or `name` at the top level.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A train/eval flag for layers whose behaviour depends on the mode; starts in training mode.
#[derive(Debug)]
pub struct Mode(AtomicBool);

impl Mode {
    /// A flag in training mode, as PyTorch modules start.
    pub fn new() -> Self {
        Mode(AtomicBool::new(true))
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Reports the flag to a visitor.
    pub fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(prefix, Entry::Mode(&self.0));
    }
}

impl Default for Mode {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        (**self).forward(input)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        (**self).visit(prefix, f)
    }

    // The fusion hooks must reach the boxed layer too: their defaults
    // would silently turn fusion off for every boxed layer.
    fn as_activation(&self) -> Option<LinearActivation> {
        (**self).as_activation()
    }

    fn forward_then(&self, input: &Tensor, act: LinearActivation) -> Option<Result<Tensor>> {
        (**self).forward_then(input, act)
    }
}
