//! The trainer's settings ([`TrainConfig`]), early stopping
//! ([`EarlyStopping`], watching a [`Monitor`]) and per-step / per-batch /
//! per-epoch hooks ([`Callback`]).

use std::path::PathBuf;

use lam_core::{Error, Result};

use super::clip::{GradClip, Step};
use super::history::EpochRecord;
use super::task::Task;

/// How a [`super::Trainer`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Epochs to train in all (a resumed run counts the finished ones).
    pub epochs: u64,
    /// Seeds the trainer's own generator (unless one is given to
    /// [`super::Trainer::generator`]): dropout masks, random ops in the
    /// model and loss, and the shuffles and transforms of loaders without a
    /// seed of their own draw from it, and checkpoints save its state, so a
    /// resumed run draws exactly what an uninterrupted one did, whatever
    /// other threads draw meanwhile.
    pub seed: u64,
    /// No progress bar and no per-epoch lines.
    pub quiet: bool,
    /// Read the running loss back every this many batches (reading makes a
    /// GPU wait; the NaN guard looks at each value read).
    pub sync_every: usize,
    /// Where `last.safetensors` (model, optimizer, epoch, history) and
    /// `best.safetensors` (model) are written after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Resume from `checkpoint_dir/last.safetensors` when it exists.
    pub resume: bool,
    /// Where the history is written after every epoch (`.csv` or `.jsonl`),
    /// after the checkpoint; at the start of `fit` it is rewritten to match
    /// the run (the checkpoint's epochs on a resume, none on a fresh start).
    pub history_path: Option<PathBuf>,
    /// Stop when the monitored value stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// Which value decides the best epoch (for `best.safetensors` and early stopping).
    pub monitor: Monitor,
    /// What the model predicts, which decides the metrics (default
    /// [`Task::Auto`]: read from the outputs and targets).
    pub task: Task,
    /// Clip the gradients after every backward pass, before the
    /// [`Callback::on_before_step`] hooks and the optimizer step
    /// (PyTorch's `clip_grad_norm_` / `clip_grad_value_`; default none).
    pub clip_grad: Option<GradClip>,
    /// Mixed precision (default off): each batch's forward pass and loss
    /// run under [`lam_core::amp::autocast`] to `F16`, and a
    /// [`lam_core::amp::GradScaler`] with PyTorch's defaults scales the loss,
    /// unscales the gradients before clipping and the hooks, and skips the
    /// steps whose gradients overflowed. Where half precision is not native
    /// to the device (the CPU, adapters without `shader-f16`) the run is
    /// plain `F32`, with no scaler. The scale is not checkpointed: a resumed
    /// run starts again from 2¹⁶.
    pub mixed_precision: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            seed: 0,
            quiet: false,
            sync_every: 10,
            checkpoint_dir: None,
            resume: false,
            history_path: None,
            early_stopping: None,
            monitor: Monitor::ValLoss,
            task: Task::Auto,
            clip_grad: None,
            mixed_precision: false,
        }
    }
}

/// The value that says which epoch is best. Validation values fall back
/// to the training ones when there is no validation set. Accuracy exists
/// for classifiers only, MSE, MAE and R² for regression models: monitoring
/// one the task lacks is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// Validation loss (lower is better).
    ValLoss,
    /// Validation accuracy (higher is better; classifiers).
    ValAccuracy,
    /// Training loss (lower is better).
    TrainLoss,
    /// Validation mean squared error (lower is better; regression).
    ValMse,
    /// Validation mean absolute error (lower is better; regression).
    ValMae,
    /// Validation R² (higher is better; regression).
    ValR2,
}

impl Monitor {
    /// The monitored value of `r`, if it has one.
    pub fn value(self, r: &EpochRecord) -> Option<f64> {
        let regression = r.val_regression.or(r.train_regression);
        match self {
            Monitor::ValLoss => r.val_loss.or(Some(r.train_loss)),
            Monitor::ValAccuracy => r.val_accuracy.or(r.train_accuracy),
            Monitor::TrainLoss => Some(r.train_loss),
            Monitor::ValMse => regression.map(|s| s.mse),
            Monitor::ValMae => regression.map(|s| s.mae),
            Monitor::ValR2 => regression.map(|s| s.r2),
        }
    }

    /// True when higher values are better.
    pub fn maximize(self) -> bool {
        matches!(self, Monitor::ValAccuracy | Monitor::ValR2)
    }

    /// An error unless a model of `task` (`None`: outputs that fit no
    /// task) has this value; `Task::Auto` fits every monitor.
    pub fn check(self, task: Option<Task>) -> Result<()> {
        let classification = matches!(self, Monitor::ValAccuracy);
        let regression = matches!(self, Monitor::ValMse | Monitor::ValMae | Monitor::ValR2);
        let fits = match task {
            Some(Task::Auto) => true,
            Some(Task::Regression) => !classification,
            Some(_) => !regression,
            None => !classification && !regression,
        };
        if fits {
            return Ok(());
        }
        let what = match task {
            Some(Task::Regression) => {
                "the model is a regression model (no accuracy): monitor ValLoss, ValMse, ValMae or ValR2"
                    .to_string()
            }
            Some(t) => format!(
                "the model is a classifier ({t:?}; no MSE, MAE or R²): monitor ValLoss or ValAccuracy"
            ),
            None => "the outputs and targets fit no task, so only the loss is known: monitor \
                     ValLoss or TrainLoss, or state TrainConfig::task"
                .to_string(),
        };
        Err(Error::invalid(
            "Trainer",
            format!("cannot monitor {self:?}: {what}"),
        ))
    }

    /// True when `value` beats `best` by more than `min_delta`.
    pub fn improves(self, value: f64, best: Option<f64>, min_delta: f64) -> bool {
        match best {
            None => true,
            Some(b) if self.maximize() => value > b + min_delta,
            Some(b) => value < b - min_delta,
        }
    }
}

/// Keras-style early stopping on [`TrainConfig::monitor`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement tolerated before stopping.
    pub patience: u64,
    /// The smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Load the best epoch's weights back into the model when training ends.
    pub restore_best: bool,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without improvement; restores the best weights.
    pub fn new(patience: u64) -> EarlyStopping {
        EarlyStopping {
            patience,
            min_delta: 0.0,
            restore_best: true,
        }
    }

    /// With `min_delta`.
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// With or without restoring the best weights.
    pub fn restore_best(mut self, restore: bool) -> Self {
        self.restore_best = restore;
        self
    }
}

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this epoch (its checkpoint is written first).
    Stop,
}

/// Hooks into the training loop. All methods have defaults that do
/// nothing; an error from any of them ends `fit` with that error (the last
/// checkpoint stays as the previous epoch left it). `Send`, so a
/// [`super::Trainer`] can run on a worker thread: state a callback shares
/// with other code goes in an atomic or a `Mutex`, not a `Cell`.
pub trait Callback: Send {
    /// Before the first batch of `epoch` (from 1).
    fn on_epoch_start(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }

    /// After a batch's backward pass and gradient clipping, before its
    /// optimizer step: `step` holds the model, whose gradients this hook
    /// may read (to log their norm) or replace (custom clipping).
    fn on_before_step(&mut self, _step: &Step<'_>) -> Result<()> {
        Ok(())
    }

    /// After the optimizer step of batch `batch` (from 0) of `epoch`.
    fn on_batch_end(&mut self, _epoch: u64, _batch: usize) -> Result<()> {
        Ok(())
    }

    /// After the epoch's checkpoint is written.
    fn on_epoch_end(&mut self, _record: &EpochRecord) -> Result<Control> {
        Ok(Control::Continue)
    }
}

impl<C: Callback + ?Sized> Callback for &mut C {
    fn on_epoch_start(&mut self, epoch: u64) -> Result<()> {
        (**self).on_epoch_start(epoch)
    }

    fn on_before_step(&mut self, step: &Step<'_>) -> Result<()> {
        (**self).on_before_step(step)
    }

    fn on_batch_end(&mut self, epoch: u64, batch: usize) -> Result<()> {
        (**self).on_batch_end(epoch, batch)
    }

    fn on_epoch_end(&mut self, record: &EpochRecord) -> Result<Control> {
        (**self).on_epoch_end(record)
    }
}

/// A closure as an [`Callback::on_before_step`] hook ([`super::Trainer::before_step`]).
pub(crate) struct BeforeStep<F>(pub(crate) F);

impl<F: FnMut(&Step<'_>) -> Result<()> + Send> Callback for BeforeStep<F> {
    fn on_before_step(&mut self, step: &Step<'_>) -> Result<()> {
        (self.0)(step)
    }
}
