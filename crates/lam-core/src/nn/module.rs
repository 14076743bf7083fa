//! The [`Module`] trait: a layer or model, and [`Visit`]: the tensors it owns.
//!
//! A module is two things. What it owns — each parameter, buffer and
//! train/eval flag, under a dotted name (`fc1.weight`, `layers.0.bias`),
//! exactly PyTorch's `state_dict` keys — is [`Visit`], which
//! `#[derive(Module)]` writes from the struct's fields. What it computes is
//! [`Module::forward`], written by hand. Everything else (parameter lists,
//! counting, train/eval, moving to a device, checkpoints, printing) is
//! provided on top of the two.
//!
//! ```ignore
//! #[derive(Module)]
//! struct Mlp { fc1: Linear, fc2: Linear }
//!
//! impl Module for Mlp {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         self.fc2.forward(&self.fc1.forward(x)?.relu()?)
//!     }
//! }
//! ```
//!
//! A hand-written [`Visit`] is the same idea spelled out; a tensor it
//! leaves out is never trained nor saved, which is why the derive exists
//! (and why `backward` warns when an optimizer misses a tensor that got a
//! gradient: see [`crate::autograd::UntrainedCheck`]).

use std::sync::atomic::{AtomicBool, Ordering};

use super::describe;
use super::summary::{self, Summary};
use crate::backend::LinearActivation;
use crate::{Device, Result, Tensor};

/// One thing a module owns, as reported by [`Visit::visit`].
pub enum Entry<'a> {
    /// A trainable tensor (requires grad).
    Parameter(&'a Tensor),
    /// A saved, non-trainable tensor (e.g. BatchNorm running statistics).
    Buffer(&'a Tensor),
    /// The module's train/eval flag (true = training).
    Mode(&'a AtomicBool),
}

/// What a module owns: its tensors and flags by name, and its child
/// modules. `#[derive(Module)]` writes it from the struct's fields.
///
/// Required: `visit`. `children` defaults to none, which only makes the
/// module print as a leaf.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say which tensors it owns",
    label = "no `Visit` for this type",
    note = "add `#[derive(Module)]` to the struct (or implement `lam::nn::Visit` by hand)"
)]
pub trait Visit {
    /// Calls `f` with the dotted name of each parameter, buffer and mode flag
    /// (flags are reported under the module's own prefix).
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>));

    /// Calls `f` with each direct child module and its name, in order (a
    /// list of modules is one child, PyTorch's `ModuleList`): the tree that
    /// `Display` and [`Module::summary`] show.
    fn children(&self, _f: &mut dyn FnMut(&str, &dyn Module)) {}
}

/// A layer or model: its forward pass, on top of what it owns ([`Visit`]).
///
/// Required: `forward`. The rest have defaults.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Module",
    label = "not a Module",
    note = "a layer or model implements `Module` (its `forward`); with `#[derive(Module)]`, \
            `impl Module for {Self} {{ fn forward(..) }}` is all that is left to write"
)]
pub trait Module: Visit + Send + Sync {
    /// The forward pass.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;

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

    /// The name `Display` prints (PyTorch's `_get_name()`): the type's name
    /// without its path or generic arguments.
    fn type_name(&self) -> String {
        describe::short_type_name(std::any::type_name::<Self>())
    }

    /// The layer's options as `Display` prints them inside the parentheses
    /// (PyTorch's `extra_repr`, e.g. `in_features=3, out_features=4,
    /// bias=True`); empty by default.
    fn extra_repr(&self) -> String {
        String::new()
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

    /// A table of every module in the tree with its output shape for an
    /// input of `input_shape` (zeros, `F32`, on the device of the model's
    /// first tensor) and its parameter count, as `torchinfo.summary`.
    /// Runs one forward pass in evaluation mode without gradients, then
    /// restores each layer's mode.
    fn summary(&self, input_shape: &[usize]) -> Result<Summary>
    where
        Self: Sized,
    {
        summary::summarize_shape(self, input_shape)
    }

    /// [`Module::summary`] for a given input (token ids for an
    /// `Embedding`, or data on another device).
    fn summary_with(&self, input: &Tensor) -> Result<Summary>
    where
        Self: Sized,
    {
        summary::summarize(self, input)
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

impl<M: Visit + ?Sized> Visit for Box<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        (**self).visit(prefix, f)
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        (**self).children(f)
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        (**self).forward(input)
    }

    fn type_name(&self) -> String {
        (**self).type_name()
    }

    fn extra_repr(&self) -> String {
        (**self).extra_repr()
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
