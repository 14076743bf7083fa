//! [`Trainer`]: the training loop, so a program says what to train and
//! not how to loop.
//!
//! ```ignore
//! let mut opt = Adam::new(model.parameters(), 1e-3)?;
//! let config = TrainConfig { epochs: 30, checkpoint_dir: Some(dir), ..Default::default() };
//! let report = Trainer::new(&model, &mut opt, loss::cross_entropy)
//!     .config(config)
//!     .fit(&train_loader, Some(&val_loader))?;
//! ```
//!
//! Each epoch: the scheduler's learning rate (if any), the batches
//! (forward, loss, backward, gradient clipping ([`TrainConfig::clip_grad`]),
//! the [`Callback::on_before_step`] hooks, step) with the loss summed on the
//! device and read every `sync_every` batches, a validation pass, then the
//! best weights (`best.safetensors`, by [`Monitor`]), the early-stopping
//! counter, `last.safetensors` (model, optimizer, epoch, history and
//! counters) and last the history file ([`TrainConfig::history_path`]).
//!
//! **Files that agree.** Every file is written atomically (a temporary
//! file renamed over the old one), so a kill leaves each whole, old or
//! new. The history file is written after the checkpoint and rewritten
//! from it when a run resumes, so it never holds an epoch the checkpoint
//! lacks, and after a resume holds exactly the checkpoint's epochs.
//!
//! **Randomness.** A trainer owns a [`Generator`], seeded with
//! [`TrainConfig::seed`] when `fit` first runs (or the one given to
//! [`Trainer::generator`]). Its training steps, its validation passes and
//! the start of each loader epoch run with it as the thread's current
//! generator ([`rng::with_generator`]), so the model's `Dropout`, random
//! ops in the model or the loss, and the shuffles and transforms of a
//! loader without a seed of its own all draw from it — never from the
//! process's default generator, so trainers on other threads and code that
//! calls `manual_seed` or `Tensor::randn` meanwhile change nothing here.
//! The [`Callback::on_before_step`] hooks are part of the step and draw
//! from it too (gradient noise resumes exactly); the other callbacks run
//! outside it. Initialising the model is the caller's part:
//! build it inside `rng::with_generator` to make it independent of other
//! threads too.
//!
//! **Resume.** With `resume: true` the run starts from `last.safetensors`
//! when it exists. The checkpoint holds the weights, the optimizer state
//! and the trainer's generator state at the end of the epoch, and the
//! learning rate is a function of the epoch, so a run killed mid-epoch and
//! resumed loses only that epoch and ends bit-for-bit where an
//! uninterrupted run ends (on the CPU; tests check it, also with another
//! thread drawing random numbers throughout). A checkpoint without a
//! generator state (written before lam-train saved it) resumes with the
//! generator freshly seeded.
//!
//! **NaN guard.** A loss that reads back NaN or infinite stops the run with
//! an error naming the epoch and batches; the last checkpoint is intact.
//!
//! **Tasks.** Multi-class, binary (one logit per sample, or one
//! probability from a model ending in a sigmoid) and regression models all
//! train here; [`Task`] says how their outputs are scored — accuracy for
//! classifiers, MSE, MAE and R² for regression — and [`TrainConfig::task`]
//! is read from the outputs and targets unless stated. A [`Monitor`] the
//! task lacks (accuracy of a regression model) is an error, before training
//! when the task is stated, after the first epoch when it is read.
//!
//! **Data parallel.** [`Trainer::distributed`] makes the trainer one of
//! several [`Replicas`] (lam-dist provides them): metrics are summed over
//! the replicas, only rank 0 writes files, and a failing replica stops the
//! others (see `replicas.rs`).

mod clip;
mod config;
mod eval;
mod history;
mod progress;
mod replicas;
mod state;
mod tally;
mod task;

pub use clip::{GradClip, Step};
pub use config::{Callback, Control, EarlyStopping, Monitor, TrainConfig};
pub use eval::{evaluate, evaluate_task, predict, predict_task, Predictions};
pub use history::{EpochRecord, History};
pub use replicas::{Reduce, Replicas};
pub use tally::Scores;
pub use task::Task;

use std::path::PathBuf;
use std::time::Instant;

use lam_core::amp::{self, GradScaler};
use lam_core::checkpoint::{load_training, save_training};
use lam_core::nn::Module;
use lam_core::optim::{Optimizer, Scheduler};
use lam_core::rng::{self, Generator};
use lam_core::{DType, Error, Result, Tensor};

use crate::data::DataLoader;
use config::BeforeStep;
use progress::Progress;
use state::{RunState, Snapshot};
use tally::Tally;

/// The loss of a model output against its targets (`Send`, as everything a
/// [`Trainer`] holds, so that training can run on a worker thread).
pub type LossFn<'a> = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + 'a>;

/// What [`Trainer::fit`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Every finished epoch, including those before a resume.
    pub history: History,
    /// The epoch (from 1) with the best monitored value.
    pub best_epoch: Option<u64>,
    /// That value.
    pub best_value: Option<f64>,
    /// True when early stopping (or a callback) ended the run.
    pub stopped_early: bool,
    /// The number of finished epochs the run resumed from, if it did.
    pub resumed_from: Option<u64>,
    /// What the last epoch's training pass was scored as (`None` when no
    /// epoch ran, or when the outputs and targets fit no task).
    pub task: Option<Task>,
}

/// Trains one model with one optimizer (see the module docs). `Send`: a
/// training job can be built on one thread and run on another.
pub struct Trainer<'a> {
    model: &'a dyn Module,
    optimizer: &'a mut dyn Optimizer,
    loss: LossFn<'a>,
    scheduler: Option<Box<dyn Scheduler + 'a>>,
    callbacks: Vec<Box<dyn Callback + 'a>>,
    config: TrainConfig,
    generator: Option<Generator>,
    replicas: Option<Box<dyn Replicas + 'a>>,
    /// With [`TrainConfig::mixed_precision`], made at the first step (and
    /// then disabled where autocast turned out to be a no-op).
    scaler: Option<GradScaler>,
}

impl<'a> Trainer<'a> {
    /// A trainer with the default [`TrainConfig`].
    pub fn new(
        model: &'a dyn Module,
        optimizer: &'a mut dyn Optimizer,
        loss: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + 'a,
    ) -> Trainer<'a> {
        Trainer {
            model,
            optimizer,
            loss: Box::new(loss),
            scheduler: None,
            callbacks: Vec::new(),
            config: TrainConfig::default(),
            generator: None,
            replicas: None,
            scaler: None,
        }
    }

    /// Sets [`TrainConfig::mixed_precision`]: autocast to `F16` and loss
    /// scaling where half precision is native to the device.
    pub fn mixed_precision(mut self, on: bool) -> Self {
        self.config.mixed_precision = on;
        self
    }

    /// The loss scaler of a mixed-precision run, once its first step ran
    /// (disabled where autocast is a no-op).
    pub fn grad_scaler(&self) -> Option<&GradScaler> {
        self.scaler.as_ref()
    }

    /// With `config`.
    pub fn config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }

    /// With a learning-rate schedule, evaluated at the start of every epoch.
    pub fn scheduler(mut self, scheduler: impl Scheduler + 'a) -> Self {
        self.scheduler = Some(Box::new(scheduler));
        self
    }

    /// Draws from `generator` (shared: training advances it, and a resume
    /// restores its saved state into it) instead of one seeded with
    /// [`TrainConfig::seed`].
    pub fn generator(mut self, generator: &Generator) -> Self {
        self.generator = Some(generator.clone());
        self
    }

    /// With a callback (called in the order added).
    pub fn callback(mut self, callback: impl Callback + 'a) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// As one data-parallel replica of `replicas` (see the module docs):
    /// the model's gradients must be averaged over the replicas (lam-dist's
    /// `DistributedDataParallel`) and the loaders hold this replica's share.
    pub fn distributed(mut self, replicas: impl Replicas + 'a) -> Self {
        self.replicas = Some(Box::new(replicas));
        self
    }

    /// With a hook run after each batch's backward pass (and clipping),
    /// before its optimizer step: a [`Callback::on_before_step`] written as
    /// a closure, called in order with the other callbacks.
    pub fn before_step(self, hook: impl FnMut(&Step<'_>) -> Result<()> + Send + 'a) -> Self {
        self.callback(BeforeStep(hook))
    }

    /// Path of the last checkpoint, when checkpoints are on.
    pub fn last_checkpoint(&self) -> Option<PathBuf> {
        self.config
            .checkpoint_dir
            .as_ref()
            .map(|d| d.join("last.safetensors"))
    }

    /// Path of the best checkpoint, when checkpoints are on.
    pub fn best_checkpoint(&self) -> Option<PathBuf> {
        self.config
            .checkpoint_dir
            .as_ref()
            .map(|d| d.join("best.safetensors"))
    }

    /// Trains for the configured epochs (see the module docs).
    pub fn fit(&mut self, train: &DataLoader, val: Option<&DataLoader>) -> Result<FitReport> {
        let report = self.fit_all(train, val);
        if let (Err(e), Some(r)) = (&report, &self.replicas) {
            r.abort(&e.to_string());
        }
        report
    }

    /// True unless this is a replica other than rank 0: rank 0 writes the files.
    fn is_main(&self) -> bool {
        self.replicas.as_ref().is_none_or(|r| r.rank() == 0)
    }

    fn fit_all(&mut self, train: &DataLoader, val: Option<&DataLoader>) -> Result<FitReport> {
        if self.config.sync_every == 0 {
            return Err(Error::invalid("Trainer", "sync_every must be > 0"));
        }
        if train.num_batches() == 0 {
            return Err(Error::Empty { op: "Trainer::fit" });
        }
        self.config.monitor.check(Some(self.config.task))?;
        if let Some(clip) = self.config.clip_grad {
            clip.check()?;
        }
        if let Some(dir) = self
            .config
            .checkpoint_dir
            .as_ref()
            .filter(|_| self.is_main())
        {
            std::fs::create_dir_all(dir).map_err(|e| history::io_error(dir, e))?;
        }
        let seed = self.config.seed;
        let generator = self
            .generator
            .get_or_insert_with(|| Generator::new(seed))
            .clone();
        let (mut run, mut best_weights, resumed_from) = self.resume_state(train, &generator)?;
        if let Some(r) = &self.replicas {
            let epoch = resumed_from.map_or(-1.0, |e| e as f64);
            replicas::agree(&**r, epoch, "the epoch to resume from (-1: none)")?;
            r.broadcast_model(self.model)?;
        }
        // The history file follows the checkpoint: rewritten from it on a
        // resume (a kill between the two writes leaves it an epoch
        // behind), emptied on a fresh start; a path that cannot be written
        // fails here, before any training.
        self.write_history(&run)?;
        let start = run.history.records.len() as u64;
        let mut stopped_early = run.stopped;
        let mut task = None;
        for epoch in start..self.config.epochs {
            if stopped_early {
                break;
            }
            let (record, epoch_task) = self.run_epoch(epoch, train, val, &generator)?;
            // Auto decides the task only now: a monitor it lacks stops the
            // run before this epoch's files are written.
            self.config.monitor.check(epoch_task)?;
            task = epoch_task;
            run.history.records.push(record.clone());
            let monitor = self.config.monitor;
            let value = monitor.value(&record);
            let min_delta = self.config.early_stopping.map_or(0.0, |e| e.min_delta);
            match value {
                Some(v) if monitor.improves(v, run.best, min_delta) => {
                    run.best = Some(v);
                    run.best_epoch = Some(record.epoch);
                    run.bad_epochs = 0;
                    if self.config.early_stopping.is_some_and(|e| e.restore_best) {
                        best_weights = Some(Snapshot::take(self.model)?);
                    }
                    if let Some(path) = self.best_checkpoint().filter(|_| self.is_main()) {
                        Snapshot::save(self.model, &path)?;
                    }
                }
                _ => {
                    run.bad_epochs += 1;
                    // Keras' rule: stop once `patience` epochs in a row brought no improvement.
                    if self
                        .config
                        .early_stopping
                        .is_some_and(|e| run.bad_epochs >= e.patience.max(1))
                    {
                        run.stopped = true;
                    }
                }
            }
            if let Some(path) = self.last_checkpoint().filter(|_| self.is_main()) {
                // `save_training` stores the current generator's state.
                rng::with_generator(&generator, || {
                    save_training(
                        &path,
                        self.model,
                        &*self.optimizer,
                        epoch + 1,
                        &run.to_metadata(),
                    )
                })?;
            }
            // After the checkpoint, so the file never holds an epoch the
            // checkpoint lacks.
            self.write_history(&run)?;
            for cb in &mut self.callbacks {
                if cb.on_epoch_end(&record)? == Control::Stop {
                    run.stopped = true;
                }
            }
            if let Some(r) = &self.replicas {
                // A callback's Stop on any replica stops every replica.
                run.stopped = replicas::sum(&**r, f64::from(u8::from(run.stopped)))? > 0.0;
            }
            stopped_early = run.stopped;
        }
        if let (Some(es), Some(best)) = (self.config.early_stopping, &best_weights) {
            if es.restore_best {
                best.restore(self.model)?;
            }
        }
        Ok(FitReport {
            history: run.history,
            best_epoch: run.best_epoch,
            best_value: run.best,
            stopped_early,
            resumed_from,
            task,
        })
    }

    /// Writes the run's history to the configured path, if any (atomically).
    fn write_history(&self, run: &RunState) -> Result<()> {
        match self.config.history_path.as_ref().filter(|_| self.is_main()) {
            Some(path) => run.history.write(path),
            None => Ok(()),
        }
    }

    /// A fresh state, or the state of `last.safetensors` when resuming (its
    /// weights, optimizer state and generator state are loaded into the
    /// model, the optimizer and `generator`).
    fn resume_state(
        &mut self,
        train: &DataLoader,
        generator: &Generator,
    ) -> Result<(RunState, Option<Snapshot>, Option<u64>)> {
        let last = self
            .last_checkpoint()
            .filter(|p| self.config.resume && p.exists());
        let Some(last) = last else {
            return Ok((RunState::default(), None, None));
        };
        let saved = load_training(&last, self.model, self.optimizer)?;
        let run = RunState::from_metadata(&saved.metadata, &last)?;
        if run.history.records.len() as u64 != saved.epoch {
            return Err(Error::Format {
                path: last.display().to_string(),
                msg: format!(
                    "epoch {} but {} history records",
                    saved.epoch,
                    run.history.records.len()
                ),
            });
        }
        if let Some(state) = saved.generator {
            generator.set_state(state);
        }
        let best = match self.best_checkpoint().filter(|p| p.exists()) {
            Some(p) if self.config.early_stopping.is_some_and(|e| e.restore_best) => {
                Some(Snapshot::load(&p, train.device())?)
            }
            _ => None,
        };
        Ok((run, best, Some(saved.epoch)))
    }

    /// One epoch (0-based `epoch`): training batches, then validation, both
    /// drawing from `generator`. Returns the record and what the training
    /// pass was scored as.
    fn run_epoch(
        &mut self,
        epoch: u64,
        train: &DataLoader,
        val: Option<&DataLoader>,
        generator: &Generator,
    ) -> Result<(EpochRecord, Option<Task>)> {
        let started = Instant::now();
        let shown = epoch + 1;
        if let Some(s) = &mut self.scheduler {
            s.set_epoch(epoch);
            self.optimizer.set_lr(s.lr());
        }
        for cb in &mut self.callbacks {
            cb.on_epoch_start(shown)?;
        }
        self.model.train();
        let progress = Progress::new(
            shown,
            self.config.epochs,
            train.num_batches(),
            self.config.quiet || !self.is_main(),
        );
        let mut sums = Tally::new(self.config.task);
        let mut since_sync = 0;
        let total = train.num_batches();
        let batches = rng::with_generator(generator, || train.epoch(epoch));
        for (b, batch) in batches.enumerate() {
            let (x, y) = batch?;
            rng::with_generator(generator, || self.train_step((shown, b), &x, &y, &mut sums))?;
            since_sync += 1;
            if since_sync == self.config.sync_every || b + 1 == total {
                let mut part = sums.sync()?;
                if let Some(r) = &self.replicas {
                    // Every replica sees a divergence at the same batch.
                    part = replicas::sum(&**r, part)?;
                }
                if !part.is_finite() {
                    return Err(Error::invalid(
                        "Trainer::fit",
                        format!(
                            "training diverged: the loss is {part} at epoch {shown}, batches {}..={}; \
                             lower the learning rate or check the inputs for NaN/Inf",
                            b + 1 - since_sync,
                            b
                        ),
                    ));
                }
                since_sync = 0;
                progress.update(b + 1, sums.scores("Trainer::fit").ok(), sums.host_samples);
            }
            for cb in &mut self.callbacks {
                cb.on_batch_end(shown, b)?;
            }
        }
        if let Some(r) = &self.replicas {
            sums.sync()?;
            sums.reduce(&**r)?;
        }
        let scores = sums.read("Trainer::fit")?;
        let samples_per_sec = progress::rate(sums.host_samples, started);
        let val_scores = match val {
            Some(v) => Some(rng::with_generator(generator, || self.validate(v))?),
            None => None,
        };
        let record = EpochRecord {
            epoch: shown,
            train_loss: scores.loss,
            train_accuracy: scores.accuracy,
            train_regression: scores.regression,
            val_loss: val_scores.map(|s| s.loss),
            val_accuracy: val_scores.and_then(|s| s.accuracy),
            val_regression: val_scores.and_then(|s| s.regression),
            lr: self.optimizer.lr() as f64,
            seconds: started.elapsed().as_secs_f64(),
            samples_per_sec,
        };
        progress.finish(&record, self.config.epochs);
        Ok((record, scores.task))
    }

    /// One optimizer step on the batch `(x, y)` (batch `at.1` of epoch
    /// `at.0`, from 1), its loss and scores added to `sums`.
    fn train_step(
        &mut self,
        at: (u64, usize),
        x: &Tensor,
        y: &Tensor,
        sums: &mut Tally,
    ) -> Result<()> {
        self.optimizer.zero_grad();
        let (out, loss) = {
            let autocast = self
                .config
                .mixed_precision
                .then(|| amp::autocast(&x.device(), DType::F16))
                .transpose()?;
            if let Some(ac) = &autocast {
                self.scaler
                    .get_or_insert_with(|| GradScaler::new().enabled(ac.enabled()));
            }
            let out = self.model.forward(x)?;
            let loss = (self.loss)(&out, y)?;
            (out, loss)
        };
        match &mut self.scaler {
            Some(scaler) => {
                scaler.scale(&loss)?.backward()?;
                // Clipping and the hooks see the true gradients.
                scaler.unscale_(&*self.optimizer)?;
            }
            None => loss.backward()?,
        }
        let grad_norm = match self.config.clip_grad {
            Some(clip) => clip.apply(&self.model.parameters())?,
            None => None,
        };
        let step = Step {
            epoch: at.0,
            batch: at.1,
            model: self.model,
            loss: &loss,
            grad_norm: grad_norm.as_ref(),
        };
        for cb in &mut self.callbacks {
            cb.on_before_step(&step)?;
        }
        match &mut self.scaler {
            Some(scaler) => {
                scaler.step(&mut *self.optimizer)?;
                scaler.update()?;
            }
            None => self.optimizer.step()?,
        }
        sums.add(&out, y, &loss)
    }

    /// The validation scores; over every replica's share, evaluated with
    /// rank 0's weights and buffers, when distributed.
    fn validate(&self, val: &DataLoader) -> Result<Scores> {
        let Some(r) = &self.replicas else {
            return evaluate_task(self.model, val, &*self.loss, self.config.task);
        };
        r.broadcast_model(self.model)?;
        let mut tally = eval::evaluate_tally(self.model, val, &*self.loss, self.config.task)?;
        tally.reduce(&**r)?;
        tally.read("evaluate")
    }
}
