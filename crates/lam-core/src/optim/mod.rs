//! Optimizers, gradient clipping and learning-rate schedulers, with
//! `torch.optim`'s update equations.
//!
//! - [`Optimizer`]: `step()` updates every parameter that has a gradient,
//!   in place (its identity, and so the model's handle, is kept), under
//!   [`crate::no_grad`]; `zero_grad()`, `lr()`/`set_lr()`, and
//!   `state_dict()`/`load_state_dict()` to resume training exactly.
//!   Implemented by [`Sgd`], [`Adam`], [`AdamW`], [`RmsProp`] and [`Adagrad`].
//!   Each has PyTorch's defaults and builder methods for the rest:
//!   `Adam::new(model.parameters(), 1e-3)?.betas(0.9, 0.99).weight_decay(1e-4)`.
//!   All take `weight_decay` (an L2 penalty added to the gradient; decoupled
//!   for `AdamW`), `l1` (adds `l1 * sign(p)` to the gradient) and
//!   `maximize` (ascends the objective: the gradient is negated first).
//! - [`clip_grad_norm`] and [`clip_grad_value`]: `torch.nn.utils`' clipping.
//! - [`Scheduler`]: epoch-based learning-rate schedules ([`StepLr`],
//!   [`MultiStepLr`], [`ExponentialLr`], [`CosineAnnealing`] with linear
//!   warm-up), and [`ReduceLrOnPlateau`], driven by a metric. A schedule
//!   computes the rate; the training loop hands it to the optimizer:
//!   `opt.set_lr(sched.step())`.
//!
//! One parameter group per optimizer: a learning rate for all its
//! parameters. Hyper-parameters are checked when `step()` runs, so a bad
//! value is an error naming it, never a panic.
//!
//! Code map: each optimizer's file declares it with `optimizer!`
//! (`declare.rs`: the type, its hyper-parameters stated once, their
//! builders and snapshot names) and gives its `Rule` (`rule.rs`: the
//! checks and the update of one parameter), from which every
//! [`Optimizer`] method follows; `state.rs` holds the per-parameter state
//! and the helpers the updates share.

mod adagrad;
mod adam;
mod clip;
mod declare;
mod plateau;
mod rmsprop;
mod rule;
mod scheduler;
mod sgd;
pub(crate) mod state;

pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use plateau::{PlateauMode, ReduceLrOnPlateau, ThresholdMode};
pub use rmsprop::RmsProp;
pub use scheduler::{CosineAnnealing, ExponentialLr, MultiStepLr, Scheduler, StepLr};
pub use sgd::Sgd;

use std::collections::BTreeMap;

use crate::{Result, Tensor};

/// Updates parameters from their gradients.
///
/// Required: everything but `zero_grad`. `Send + Sync`, as every lam type
/// is, so a training job (a `Box<dyn Optimizer>` with its model) can move
/// to a worker thread.
pub trait Optimizer: Send + Sync {
    /// One update of every parameter that has a gradient (parameters
    /// without one are skipped, as in PyTorch).
    fn step(&mut self) -> Result<()>;

    /// Clears the gradient of every parameter (PyTorch's `set_to_none=True`).
    fn zero_grad(&self) {
        for p in self.params() {
            p.zero_grad();
        }
    }

    /// The learning rate.
    fn lr(&self) -> f32;

    /// Sets the learning rate (schedulers use this).
    fn set_lr(&mut self, lr: f32);

    /// The parameters, in the order the state refers to them by index.
    fn params(&self) -> &[Tensor];

    /// A snapshot of the hyper-parameters and every per-parameter buffer
    /// (copies: later steps do not change it).
    fn state_dict(&self) -> Result<OptimizerState>;

    /// Restores a snapshot: hyper-parameters (including the learning rate),
    /// step counts and buffers. All-or-nothing: every entry is checked
    /// against this optimizer's kind and parameters before anything changes.
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()>;
}

/// What an optimizer needs to resume exactly, as PyTorch's `state_dict()`.
#[derive(Debug, Clone)]
pub struct OptimizerState {
    /// `"sgd"`, `"adam"`, `"adamw"`, `"rmsprop"` or `"adagrad"`.
    pub kind: String,
    /// The learning rate and hyper-parameters by PyTorch's names (`lr`,
    /// `beta1`, `weight_decay`, ...); flags are 0 or 1.
    pub hyper: BTreeMap<String, f64>,
    /// One entry per parameter, in order; `None` before its first step.
    pub params: Vec<Option<ParamState>>,
}

/// The largest step count an optimizer state may hold: far beyond any run
/// (2^53 steps at a billion a second take 285 years) and the largest count
/// exact in `f64`, in which bias corrections are computed. Loading a larger
/// one is an error, so a count can never overflow.
pub const MAX_STEP: u64 = 1 << 53;

/// One parameter's optimizer state.
#[derive(Debug, Clone)]
pub struct ParamState {
    /// Steps taken with this parameter (1 to [`MAX_STEP`]).
    pub step: u64,
    /// Buffers by PyTorch's names (`exp_avg`, `exp_avg_sq`,
    /// `momentum_buffer`, `square_avg`, `grad_avg`, `sum`), each of the
    /// parameter's shape.
    pub buffers: BTreeMap<String, Tensor>,
}
