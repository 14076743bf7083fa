//! [`ReduceLrOnPlateau`]: lowers the learning rate when a metric stops
//! improving (`torch.optim.lr_scheduler.ReduceLROnPlateau`, same rules):
//!
//! - a metric is better than the best so far when it beats it by more than
//!   `threshold` (relative: `best * (1 ∓ threshold)`, or absolute: `best ∓ threshold`);
//! - after more than `patience` epochs without improvement the rate becomes
//!   `max(lr * factor, min_lr)` (unless that changes it by no more than `eps`),
//!   and the next `cooldown` epochs count no bad epochs.
//!
//! ```ignore
//! let mut plateau = ReduceLrOnPlateau::new(opt.lr()).patience(5);
//! for epoch in 0..100 {
//!     train_one_epoch(&model, &mut opt)?;
//!     opt.set_lr(plateau.step_with(validation_loss)?);
//! }
//! ```

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Whether a lower or a higher metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Relative to the best value.
    Rel,
    /// In the metric's own units.
    Abs,
}

/// Lowers the learning rate when a metric has stopped improving.
#[derive(Debug, Clone)]
pub struct ReduceLrOnPlateau {
    lr: f64,
    mode: PlateauMode,
    factor: f32,
    patience: u64,
    threshold: f32,
    threshold_mode: ThresholdMode,
    cooldown: u64,
    min_lr: f32,
    eps: f32,
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
    epoch: u64,
}

impl ReduceLrOnPlateau {
    /// Starting from `lr`, with PyTorch's defaults: mode min, factor 0.1,
    /// patience 10, threshold 1e-4 relative, no cooldown, min_lr 0, eps 1e-8.
    pub fn new(lr: f32) -> ReduceLrOnPlateau {
        ReduceLrOnPlateau {
            lr: lr as f64,
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
            best: f64::INFINITY,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            epoch: 0,
        }
    }

    /// Whether lower or higher is better (resets the best value).
    pub fn mode(mut self, mode: PlateauMode) -> Self {
        self.mode = mode;
        self.best = match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        self
    }

    /// The factor the rate is multiplied by, in `(0, 1)`.
    pub fn factor(mut self, factor: f32) -> Self {
        self.factor = factor;
        self
    }

    /// Epochs without improvement tolerated before lowering the rate.
    pub fn patience(mut self, patience: u64) -> Self {
        self.patience = patience;
        self
    }

    /// The least improvement that counts.
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// Whether `threshold` is relative or absolute.
    pub fn threshold_mode(mut self, mode: ThresholdMode) -> Self {
        self.threshold_mode = mode;
        self
    }

    /// Epochs to wait after a reduction before counting bad epochs again.
    pub fn cooldown(mut self, cooldown: u64) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The rate is never lowered below this.
    pub fn min_lr(mut self, min_lr: f32) -> Self {
        self.min_lr = min_lr;
        self
    }

    /// Reductions smaller than this are skipped.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// The current learning rate.
    pub fn lr(&self) -> f32 {
        self.lr as f32
    }

    /// Epochs seen so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Records one epoch's `metric` and returns the learning rate to use next.
    /// A NaN metric counts as no improvement.
    pub fn step_with(&mut self, metric: f32) -> Result<f32> {
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(Error::invalid(
                "ReduceLrOnPlateau",
                format!("factor must be in (0, 1), found {}", self.factor),
            ));
        }
        let current = metric as f64;
        self.epoch += 1;
        if self.is_better(current) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.patience {
            let new_lr = (self.lr * self.factor as f64).max(self.min_lr as f64);
            if self.lr - new_lr > self.eps as f64 {
                self.lr = new_lr;
            }
            self.cooldown_counter = self.cooldown;
            self.num_bad_epochs = 0;
        }
        Ok(self.lr as f32)
    }

    /// The counters and current rate, to resume exactly (names as PyTorch's).
    pub fn state_dict(&self) -> BTreeMap<String, f64> {
        [
            ("lr", self.lr),
            ("best", self.best),
            ("num_bad_epochs", self.num_bad_epochs as f64),
            ("cooldown_counter", self.cooldown_counter as f64),
            ("last_epoch", self.epoch as f64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Restores what [`ReduceLrOnPlateau::state_dict`] saved.
    pub fn load_state_dict(&mut self, state: &BTreeMap<String, f64>) -> Result<()> {
        let get = |k: &str| {
            state.get(k).copied().ok_or_else(|| {
                Error::invalid(
                    "ReduceLrOnPlateau::load_state_dict",
                    format!("missing `{k}`"),
                )
            })
        };
        let (lr, best) = (get("lr")?, get("best")?);
        let counts = [
            get("num_bad_epochs")?,
            get("cooldown_counter")?,
            get("last_epoch")?,
        ];
        if counts.iter().any(|c| !(*c >= 0.0 && c.fract() == 0.0)) {
            return Err(Error::invalid(
                "ReduceLrOnPlateau::load_state_dict",
                format!("counters must be whole numbers >= 0, found {counts:?}"),
            ));
        }
        self.lr = lr;
        self.best = best;
        self.num_bad_epochs = counts[0] as u64;
        self.cooldown_counter = counts[1] as u64;
        self.epoch = counts[2] as u64;
        Ok(())
    }

    fn is_better(&self, a: f64) -> bool {
        let (best, t) = (self.best, self.threshold as f64);
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }
}
