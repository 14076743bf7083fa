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

use super::replicas::{Reduce, Replicas};
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

    /// Sums the host totals (after a `sync`) over the replicas, so every
    /// replica scores the passes of all of them together, bit for bit the
    /// same. The regression sums are first moved to a shift every replica
    /// shares (the sample-weighted mean of theirs).
    pub(crate) fn reduce(&mut self, replicas: &dyn Replicas) -> Result<()> {
        // A replica that saw no batch has no plan and empty sums: the
        // others' plan and lengths are taken; seen plans must agree.
        let code = self.plan.map(plan_code);
        let mut header = vec![code.unwrap_or(-1.0), code.map_or(f64::NEG_INFINITY, |c| -c)];
        header.extend(self.host.iter().map(|h| h.len() as f64));
        replicas.reduce(&mut header, Reduce::Max)?;
        if header[0] >= 0.0 && header[0] != -header[1] {
            return Err(Error::Distributed(
                "the replicas scored their outputs as different tasks (different output or \
                 target shapes)"
                    .into(),
            ));
        }
        let plan = plan_from_code(header[0]);
        for (h, &len) in self.host.iter_mut().zip(&header[2..]) {
            h.resize(len as usize, 0.0);
        }
        self.rebase_shift(replicas)?;
        let mut packed = vec![self.host_samples as f64];
        for h in &self.host {
            packed.extend_from_slice(h);
        }
        replicas.reduce(&mut packed, Reduce::Sum)?;
        self.host_samples = packed[0] as usize;
        self.samples = self.host_samples;
        let mut at = 1;
        for h in &mut self.host {
            let n = h.len();
            h.copy_from_slice(&packed[at..at + n]);
            at += n;
        }
        if self.plan.is_none() {
            self.plan = plan;
        }
        Ok(())
    }

    /// Moves the shifted regression sums to the replicas' common shift
    /// `c`: `Σ(t − c) = Σ(t − s) + n(s − c)` and
    /// `Σ(t − c)² = Σ(t − s)² + 2(s − c)Σ(t − s) + n(s − c)²`.
    fn rebase_shift(&mut self, replicas: &dyn Replicas) -> Result<()> {
        let width = self.host[Slot::Shifted as usize].len();
        if width == 0 {
            return Ok(());
        }
        let n = self.host_samples as f64;
        let mine: Vec<f64> = match &self.shift {
            Some(s) => s.to_vec()?.into_iter().map(f64::from).collect(),
            None => vec![0.0; width],
        };
        let mut weighted: Vec<f64> = mine.iter().map(|s| s * n).collect();
        weighted.push(n);
        replicas.reduce(&mut weighted, Reduce::Sum)?;
        let total = weighted[width].max(1.0);
        for (c, &s) in mine.iter().enumerate() {
            let d = s - weighted[c] / total;
            let sd = self.host[Slot::Shifted as usize][c];
            self.host[Slot::ShiftedSquared as usize][c] += 2.0 * d * sd + n * d * d;
            self.host[Slot::Shifted as usize][c] = sd + n * d;
        }
        Ok(())
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

/// A plan as one number (exact in `f64`), to compare across replicas.
fn plan_code(p: Plan) -> f64 {
    let (kind, param) = match p {
        Plan::Classes { rows } => (0u64, u64::from(rows)),
        Plan::Single { open } => (1, u64::from(open)),
        Plan::Values { width } => (2, width as u64),
        Plan::Unscored => (3, 0),
    };
    (kind * (1 << 32) + param) as f64
}

/// The plan [`plan_code`] made `code` from; `None` for a negative code.
fn plan_from_code(code: f64) -> Option<Plan> {
    if code < 0.0 {
        return None;
    }
    let code = code as u64;
    let param = code & 0xffff_ffff;
    Some(match code >> 32 {
        0 => Plan::Classes { rows: param == 1 },
        1 => Plan::Single { open: param == 1 },
        2 => Plan::Values {
            width: param as usize,
        },
        _ => Plan::Unscored,
    })
}
