//! `lam-train`: everything around a model that training needs, kept out of
//! `lam-core` so an application that only runs inference compiles none of
//! it (no progress bars, no plotting).
//!
//! - [`data`]: the [`data::Dataset`] trait, [`data::TensorDataset`], CSV
//!   and IDX readers, the [`data::DataLoader`] (seeded shuffles, background
//!   prefetch, per-batch transforms) and seeded splits / k-fold.
//! - [`datasets`]: loaders for the data shipped in `examples/data`.
//! - [`preprocess`]: an imputer for missing values and scalers, fitted on
//!   the training split (saved beside the model), denoising filters, seeded
//!   image augmentation.
//! - [`metrics`]: accuracy, precision/recall/F1, confusion matrix, ROC/AUC,
//!   MSE/MAE/R², equal to scikit-learn's on stored fixtures.
//! - [`trainer`]: the [`trainer::Trainer`] loop with validation, early
//!   stopping, best/last checkpoints, exact resume, a NaN guard, gradient
//!   clipping, a hook between backward and step, a progress bar and a
//!   history file, for multi-class, binary and regression models
//!   ([`trainer::Task`]).
//! - [`progress()`]: the same progress bar around any loop of your own.
//! - [`prelude`]: `use lam_train::prelude::*;` brings lam's prelude, `nn`,
//!   `optim`, `loss`, the data loader, the trainer, metrics and `progress`.
//! - [`plot`]: loss/metric curves, ROC curves and confusion matrices as PNG or SVG.
//! - [`ensemble`]: soft and hard voting over several trained classifiers.
//! - [`report`]: a classifier's or a regression model's end-of-run summary
//!   (metrics, confusion matrix, plots) in one call.
//!
//! Randomness is a pure function of a user seed and a position (epoch,
//! batch, sample, fold) wherever a seed is given: splits, k-fold,
//! augmentation, a loader's `seed`. What has no seed of its own — dropout
//! masks, a loader without a seed — draws from a [`lam_core::Generator`]:
//! during `Trainer::fit` the trainer's own, whose state its checkpoints
//! save. So runs repeat exactly and resume exactly, whatever other threads
//! draw meanwhile.

pub mod data;
pub mod datasets;
pub mod ensemble;
pub mod explain;
pub mod metrics;
pub mod plot;
pub mod prelude;
pub mod preprocess;
mod progress;
pub mod report;
pub mod search;
mod seed;
pub mod tensorboard;
pub mod trainer;

pub use progress::{progress, Progress, ProgressHandle};
pub use seed::derive_seed;
