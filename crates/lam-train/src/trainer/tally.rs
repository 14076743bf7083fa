//! [`Tally`]: the running sums of one pass over a loader — loss, hits,
//! squared and absolute errors — kept on the device between reads, so that
//! scoring a batch adds kernels but no readback. A read packs every sum
//! into one tensor and reads it once, into `f64` totals on the host.
//!
//! What is summed follows the pass's [`Plan`]: hits of the arg-max for
//! classes; for one output per sample, hits at both thresholds (0 for
//! logits, 0.5 for probabilities) plus the counts that decide the task at
//! the end (targets other than 0 and 1, outputs outside `[0, 1]`) and, while
//! regression is still possible, the regression sums; for values, per
//! column sums of squared errors and of the targets (shifted by the first
//! batch's column means, so R²'s total sum of squares does not cancel).

use lam_core::{DType, Error, NoGradGuard, Result, Tensor};

use super::task::{plan, resolve, Plan, Task};
use crate::metrics::{r2_from_sums, RegressionScores};

/// What one pass over a loader measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Mean loss per sample.
    pub loss: f64,
    /// The task the pass was scored as (`None`: outputs and targets fit no
    /// task, so only the loss is known).
    pub task: Option<Task>,
    /// Fraction of correct predictions, for classification.
    pub accuracy: Option<f64>,
    /// MSE, MAE and R², for regression.
    pub regression: Option<RegressionScores>,
}

/// The sums, by position in the packed readback.
#[derive(Clone, Copy)]
enum Slot {
    /// Loss × batch size.
    Loss,
    /// Correct arg-max classes.
    Hits,
    /// Correct `output > 0`.
    HitsLogit,
    /// Correct `output > 0.5`.
    HitsProb,
    /// Outputs outside `[0, 1]`.
    Outside,
    /// Targets other than 0 and 1.
    NonBinary,
    /// Squared errors, per column.
    SquaredError,
    /// Absolute errors.
    AbsError,
    /// Shifted targets, per column.
    Shifted,
    /// Squared shifted targets, per column.
    ShiftedSquared,
}

const SLOTS: usize = 10;

/// Running sums of one pass (see the module docs).
pub(crate) struct Tally {
    task: Task,
    plan: Option<Plan>,
    /// The first batch's column means of the targets (regression).
    shift: Option<Tensor>,
    device: [Option<Tensor>; SLOTS],
    host: [Vec<f64>; SLOTS],
    /// Samples added.
    pub(crate) samples: usize,
    /// Samples included in the host totals.
    pub(crate) host_samples: usize,
}

impl Tally {
    /// Empty sums for a pass scored as `task`.
    pub(crate) fn new(task: Task) -> Tally {
        Tally {
            task,
            plan: None,
            shift: None,
            device: Default::default(),
            host: Default::default(),
            samples: 0,
            host_samples: 0,
        }
    }

    /// Adds one batch (`out` the model output, `y` the targets, `loss` the
    /// batch's mean loss).
    pub(crate) fn add(&mut self, out: &Tensor, y: &Tensor, loss: &Tensor) -> Result<()> {
        let _guard = NoGradGuard::new();
        if loss.numel() != 1 {
            return Err(Error::shape("Trainer", "a scalar loss", loss.dims()));
        }
        let b = out.dims().first().copied().unwrap_or(1);
        let batch_plan = plan(self.task, out, y)?;
        match self.plan {
            None => self.plan = Some(batch_plan),
            Some(p) if p != batch_plan => {
                return Err(Error::invalid(
                    "Trainer",
                    format!(
                        "batches disagree on what the outputs are ({p:?}, then {batch_plan:?} \
                         for outputs {:?} and targets {:?})",
                        out.dims(),
                        y.dims()
                    ),
                ))
            }
            Some(_) => {}
        }
        self.put(Slot::Loss, loss.detach().mul_scalar(b as f32)?)?;
        let out = out.detach();
        match batch_plan {
            Plan::Classes { rows } => {
                let labels = if rows {
                    y.argmax(-1, false)?.to_dtype(DType::F32)?
                } else {
                    y.to_dtype(DType::F32)?.reshape(&[b as isize])?
                };
                let predicted = out.argmax(-1, false)?.to_dtype(DType::F32)?;
                self.put(Slot::Hits, predicted.eq(&labels)?.sum_all()?)?;
            }
            Plan::Single { open } => {
                let o = out.reshape(&[b as isize])?;
                let t = y.to_dtype(DType::F32)?.reshape(&[b as isize])?;
                self.put(Slot::HitsLogit, o.gt_scalar(0.0)?.eq(&t)?.sum_all()?)?;
                self.put(Slot::HitsProb, o.gt_scalar(0.5)?.eq(&t)?.sum_all()?)?;
                let outside = o.lt_scalar(0.0)?.add(&o.gt_scalar(1.0)?)?;
                self.put(Slot::Outside, outside.sum_all()?)?;
                // t (t − 1) is 0 exactly for the targets 0 and 1.
                let nonbinary = t.mul(&t.sub_scalar(1.0)?)?.abs()?.gt_scalar(0.0)?;
                self.put(Slot::NonBinary, nonbinary.sum_all()?)?;
                if open {
                    self.add_values(&o.unsqueeze(1)?, &t.unsqueeze(1)?)?;
                }
            }
            Plan::Values { width } => {
                let shape = [b as isize, width as isize];
                self.add_values(
                    &out.reshape(&shape)?,
                    &y.to_dtype(DType::F32)?.reshape(&shape)?,
                )?;
            }
            Plan::Unscored => {}
        }
        self.samples += b;
        Ok(())
    }

    /// Reads the device sums into the host totals; returns the loss added
    /// since the last read (NaN/Inf if any batch in between diverged).
    pub(crate) fn sync(&mut self) -> Result<f64> {
        let _guard = NoGradGuard::new();
        let present: Vec<(usize, Tensor)> = self
            .device
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| t.take().map(|t| (i, t)))
            .collect();
        if present.is_empty() {
            return Ok(0.0);
        }
        let flat = present
            .iter()
            .map(|(_, t)| t.reshape(&[-1]))
            .collect::<Result<Vec<_>>>()?;
        // One readback for every sum.
        let values = Tensor::cat(&flat, 0)?.to_vec()?;
        let mut at = 0;
        let mut loss_part = 0.0;
        for ((slot, _), t) in present.iter().zip(&flat) {
            let n = t.numel();
            let part = &values[at..at + n];
            at += n;
            let host = &mut self.host[*slot];
            host.resize(n.max(host.len()), 0.0);
            for (h, &v) in host.iter_mut().zip(part) {
                *h += v as f64;
            }
            if *slot == Slot::Loss as usize {
                loss_part = part[0] as f64;
            }
        }
        self.host_samples = self.samples;
        Ok(loss_part)
    }

    /// The scores of the host totals (after a sync); `op` names errors.
    pub(crate) fn scores(&self, op: &'static str) -> Result<Scores> {
        let n = self.host_samples;
        let Some(plan) = self.plan.filter(|_| n > 0) else {
            return Err(Error::Empty { op });
        };
        let total = |s: Slot| self.host[s as usize].iter().sum::<f64>();
        let task = resolve(
            self.task,
            plan,
            total(Slot::NonBinary),
            total(Slot::Outside),
            n,
        )?;
        let fraction = |s: Slot| total(s) / n as f64;
        let accuracy = match (task, plan) {
            (Some(Task::MultiClass), _) => Some(fraction(Slot::Hits)),
            (Some(Task::Binary), _) => Some(fraction(Slot::HitsLogit)),
            (Some(Task::BinaryProbabilities), _) => Some(fraction(Slot::HitsProb)),
            _ => None,
        };
        let regression = match task {
            Some(Task::Regression) => Some(self.regression(n)),
            _ => None,
        };
        Ok(Scores {
            loss: total(Slot::Loss) / n as f64,
            task,
            accuracy,
            regression,
        })
    }

    /// Syncs and returns the scores; an error when nothing was seen or the
    /// loss is not finite.
    pub(crate) fn read(&mut self, op: &'static str) -> Result<Scores> {
        self.sync()?;
        let scores = self.scores(op)?;
        if !scores.loss.is_finite() {
            return Err(Error::invalid(
                op,
                format!("the mean loss is {}", scores.loss),
            ));
        }
        Ok(scores)
    }

    /// Adds `[B, k]` outputs `o` and targets `t` to the regression sums.
    fn add_values(&mut self, o: &Tensor, t: &Tensor) -> Result<()> {
        let e = o.sub(t)?;
        self.put(Slot::SquaredError, e.square()?.sum(&[0], false)?)?;
        self.put(Slot::AbsError, e.abs()?.sum_all()?)?;
        let shift = match &self.shift {
            Some(s) => s.clone(),
            None => {
                let s = t.mean(&[0], false)?.detach();
                self.shift = Some(s.clone());
                s
            }
        };
        let d = t.sub(&shift)?;
        self.put(Slot::Shifted, d.sum(&[0], false)?)?;
        self.put(Slot::ShiftedSquared, d.square()?.sum(&[0], false)?)
    }

    /// MSE and MAE over every value and R² averaged over columns, from the
    /// host totals of `n` samples.
    fn regression(&self, n: usize) -> RegressionScores {
        let sse = &self.host[Slot::SquaredError as usize];
        let sd = &self.host[Slot::Shifted as usize];
        let sd2 = &self.host[Slot::ShiftedSquared as usize];
        let columns = sse.len().max(1);
        let values = (n * columns) as f64;
        let r2 = (0..sse.len())
            .map(|c| {
                let ss_tot = (sd2[c] - sd[c] * sd[c] / n as f64).max(0.0);
                r2_from_sums(sse[c], ss_tot)
            })
            .sum::<f64>()
            / columns as f64;
        RegressionScores {
            mse: sse.iter().sum::<f64>() / values,
            mae: self.host[Slot::AbsError as usize].iter().sum::<f64>() / values,
            r2,
        }
    }

    /// Adds `value` to the device sum of `slot`.
    fn put(&mut self, slot: Slot, value: Tensor) -> Result<()> {
        let sum = &mut self.device[slot as usize];
        *sum = Some(match sum.take() {
            Some(s) => s.add(&value)?,
            None => value,
        });
        Ok(())
    }
}
