//! Epoch-based learning-rate schedules. Each is a closed-form function of
//! the epoch (PyTorch's `_get_closed_form_lr`), computed in `f64`, so a
//! schedule resumes exactly with `set_epoch` and never drifts.
//!
//! ```ignore
//! let mut sched = StepLr::new(opt.lr(), 30, 0.1)?;
//! for epoch in 0..90 {
//!     train_one_epoch(&model, &mut opt)?;
//!     opt.set_lr(sched.step());
//! }
//! ```

use std::f64::consts::PI;

use crate::{Error, Result};

/// A learning rate as a function of the epoch.
///
/// Required: `lr_at`, `epoch` and `set_epoch`; `lr` and `step` have
/// defaults. `Send + Sync`, so a trainer holding one can move between threads.
pub trait Scheduler: Send + Sync {
    /// The learning rate at `epoch`.
    fn lr_at(&self, epoch: u64) -> f32;

    /// The current epoch: how many times `step` has been called (PyTorch's `last_epoch`).
    fn epoch(&self) -> u64;

    /// Jumps to `epoch` (to resume from a checkpoint).
    fn set_epoch(&mut self, epoch: u64);

    /// The learning rate at the current epoch.
    fn lr(&self) -> f32 {
        self.lr_at(self.epoch())
    }

    /// Advances one epoch and returns the new learning rate.
    fn step(&mut self) -> f32 {
        let next = self.epoch() + 1;
        self.set_epoch(next);
        self.lr()
    }
}

/// `base_lr * gamma^(epoch / step_size)` (`torch.optim.lr_scheduler.StepLR`).
#[derive(Debug, Clone)]
pub struct StepLr {
    base_lr: f32,
    step_size: u64,
    gamma: f32,
    epoch: u64,
}

impl StepLr {
    /// Multiplies the rate by `gamma` every `step_size` (> 0) epochs.
    pub fn new(base_lr: f32, step_size: u64, gamma: f32) -> Result<StepLr> {
        if step_size == 0 {
            return Err(Error::invalid("StepLr::new", "step_size must be > 0"));
        }
        Ok(StepLr {
            base_lr,
            step_size,
            gamma,
            epoch: 0,
        })
    }
}

impl Scheduler for StepLr {
    fn lr_at(&self, epoch: u64) -> f32 {
        decayed(self.base_lr, self.gamma, epoch / self.step_size)
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }
}

/// `base_lr * gamma^(milestones passed)` (`MultiStepLR`).
#[derive(Debug, Clone)]
pub struct MultiStepLr {
    base_lr: f32,
    milestones: Vec<u64>,
    gamma: f32,
    epoch: u64,
}

impl MultiStepLr {
    /// Multiplies the rate by `gamma` at each milestone epoch (a milestone
    /// listed twice counts twice, as in PyTorch).
    pub fn new(base_lr: f32, milestones: &[u64], gamma: f32) -> MultiStepLr {
        let mut milestones = milestones.to_vec();
        milestones.sort_unstable();
        MultiStepLr {
            base_lr,
            milestones,
            gamma,
            epoch: 0,
        }
    }
}

impl Scheduler for MultiStepLr {
    fn lr_at(&self, epoch: u64) -> f32 {
        let passed = self.milestones.partition_point(|&m| m <= epoch);
        decayed(self.base_lr, self.gamma, passed as u64)
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }
}

/// `base_lr * gamma^epoch` (`ExponentialLR`).
#[derive(Debug, Clone)]
pub struct ExponentialLr {
    base_lr: f32,
    gamma: f32,
    epoch: u64,
}

impl ExponentialLr {
    /// Multiplies the rate by `gamma` every epoch.
    pub fn new(base_lr: f32, gamma: f32) -> ExponentialLr {
        ExponentialLr {
            base_lr,
            gamma,
            epoch: 0,
        }
    }
}

impl Scheduler for ExponentialLr {
    fn lr_at(&self, epoch: u64) -> f32 {
        decayed(self.base_lr, self.gamma, epoch)
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }
}

/// Cosine annealing from `base_lr` to `eta_min` over `total_epochs`, after an
/// optional linear warm-up:
///
/// ```text
/// e < w:   base_lr (f + (1 - f) e / w)                      (warm-up, f = start_factor)
/// e >= w:  eta_min + (base_lr - eta_min) (1 + cos(π (e - w) / (T - w))) / 2
/// e >= T:  eta_min
/// ```
///
/// Without warm-up this is `CosineAnnealingLR(T_max = T)`; with it, PyTorch's
/// `SequentialLR([LinearLR(f, total_iters = w), CosineAnnealingLR(T_max = T - w)], [w])`.
#[derive(Debug, Clone)]
pub struct CosineAnnealing {
    base_lr: f32,
    total_epochs: u64,
    eta_min: f32,
    warmup_epochs: u64,
    start_factor: f32,
    epoch: u64,
}

impl CosineAnnealing {
    /// Anneals to 0 over `total_epochs`, without warm-up.
    pub fn new(base_lr: f32, total_epochs: u64) -> CosineAnnealing {
        CosineAnnealing {
            base_lr,
            total_epochs,
            eta_min: 0.0,
            warmup_epochs: 0,
            start_factor: 1.0,
            epoch: 0,
        }
    }

    /// The final learning rate.
    pub fn eta_min(mut self, eta_min: f32) -> Self {
        self.eta_min = eta_min;
        self
    }

    /// A linear warm-up over the first `epochs`, starting at `start_factor * base_lr`.
    pub fn warmup(mut self, epochs: u64, start_factor: f32) -> Self {
        self.warmup_epochs = epochs;
        self.start_factor = start_factor;
        self
    }
}

impl Scheduler for CosineAnnealing {
    fn lr_at(&self, epoch: u64) -> f32 {
        let (base, w) = (self.base_lr as f64, self.warmup_epochs);
        if epoch < w {
            let f = self.start_factor as f64;
            return (base * (f + (1.0 - f) * epoch as f64 / w as f64)) as f32;
        }
        let (t, span) = (epoch - w, self.total_epochs.saturating_sub(w));
        if t >= span {
            return self.eta_min;
        }
        let eta_min = self.eta_min as f64;
        (eta_min + (base - eta_min) * (1.0 + (PI * t as f64 / span as f64).cos()) / 2.0) as f32
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }
}

/// `base * gamma^k` in `f64`.
fn decayed(base: f32, gamma: f32, k: u64) -> f32 {
    let k = i32::try_from(k).unwrap_or(i32::MAX);
    (base as f64 * (gamma as f64).powi(k)) as f32
}
