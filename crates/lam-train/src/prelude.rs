//! What a training program needs, in one line: `use lam_train::prelude::*;`.
//!
//! - lam's prelude: `Tensor`, `Device` (with `Device::auto()`), `DType`,
//!   `Module` (the trait and `#[derive(Module)]`), `Optimizer`,
//!   `manual_seed`, `no_grad`, `Result`, `Error`;
//! - the modules `nn`, `optim` and `loss` (as PyTorch's `torch.nn`, …):
//!   `nn::Linear`, `optim::Adam`, `loss::cross_entropy`;
//! - data: [`DataLoader`], [`TensorDataset`], [`Dataset`], [`Features`];
//! - training: [`Trainer`], [`TrainConfig`], [`EarlyStopping`], [`Monitor`],
//!   [`GradClip`], [`Callback`], [`Step`], [`Task`], [`evaluate`], [`predict`];
//! - [`metrics`] and [`progress()`].
//!
//! Names of your own take precedence over a glob import, so the prelude
//! never clashes with them.

pub use lam::prelude::*;
pub use lam::{loss, nn, optim};

pub use crate::data::{DataLoader, Dataset, Features, TensorDataset};
pub use crate::metrics;
pub use crate::progress::progress;
pub use crate::trainer::{
    evaluate, predict, Callback, EarlyStopping, GradClip, Monitor, Step, Task, TrainConfig, Trainer,
};
