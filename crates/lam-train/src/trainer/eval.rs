//! Evaluation passes: [`evaluate`] (mean loss and the task's metrics over a
//! loader, as [`Scores`]) and [`predict`] (every prediction, for metrics,
//! reports and plots). Both put the model in evaluation mode, run without
//! recording gradients, and read the outputs as [`Task::Auto`] decides
//! unless told the task ([`evaluate_task`], [`predict_task`]).

use lam_core::nn::Module;
use lam_core::{no_grad, DType, Error, Result, Tensor};

use super::tally::{Scores, Tally};
use super::task::{plan, resolve, Plan, Task};
use crate::data::DataLoader;
use crate::metrics::{regression_scores, RegressionScores};

/// A model's outputs over a whole data set, read as its task.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// What the outputs were read as (never [`Task::Auto`]).
    pub task: Task,
    /// The true class of each sample (empty for regression).
    pub y_true: Vec<i32>,
    /// The predicted class of each sample: the arg-max of its scores, or
    /// for a binary model 1 when its logit is > 0 (its probability > 0.5).
    /// Empty for regression.
    pub y_pred: Vec<i32>,
    /// Class probabilities, row-major `[N, n_classes]`: softmax rows, or
    /// `[1 − p, p]` for a binary model (scikit-learn's `predict_proba`).
    /// Empty for regression.
    pub probs: Vec<f32>,
    /// Number of classes (2 for a binary model, 0 for regression).
    pub n_classes: usize,
    /// The raw model outputs, row-major `[N, width]`: the values a
    /// regression model predicts, the logits of a classifier.
    pub outputs: Vec<f32>,
    /// The true values, row-major `[N, width]` (regression; empty otherwise).
    pub targets: Vec<f32>,
    /// Outputs per sample.
    pub width: usize,
}

impl Predictions {
    /// The probability of class 1 of each sample, for a binary model.
    pub fn positive_probabilities(&self) -> Option<Vec<f32>> {
        self.task
            .is_binary()
            .then(|| self.probs.chunks(2).map(|row| row[1]).collect())
    }

    /// MSE, MAE and R² of a regression model's outputs.
    pub fn regression_scores(&self) -> Result<RegressionScores> {
        if self.task != Task::Regression {
            return Err(Error::invalid(
                "Predictions::regression_scores",
                format!("the predictions are of a {:?} task", self.task),
            ));
        }
        regression_scores(&self.targets, &self.outputs, self.width)
    }
}

/// Mean loss and metrics of `model` over one unshuffled pass of `loader`
/// (epoch 0's order; the loader's transform still applies), the task
/// decided by [`Task::Auto`].
pub fn evaluate(
    model: &dyn Module,
    loader: &DataLoader,
    loss: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Scores> {
    evaluate_task(model, loader, loss, Task::Auto)
}

/// [`evaluate`] for a stated task.
pub fn evaluate_task(
    model: &dyn Module,
    loader: &DataLoader,
    loss: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
    task: Task,
) -> Result<Scores> {
    evaluate_tally(model, loader, loss, task)?.read("evaluate")
}

/// The sums of an evaluation pass (synced to the host), to be scored —
/// after summing them over data-parallel replicas, for the trainer.
pub(crate) fn evaluate_tally(
    model: &dyn Module,
    loader: &DataLoader,
    loss: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
    task: Task,
) -> Result<Tally> {
    model.eval();
    no_grad(|| {
        let mut tally = Tally::new(task);
        for batch in loader.epoch(0) {
            let (x, y) = batch?;
            let out = model.forward(&x)?;
            tally.add(&out, &y, &loss(&out, &y)?)?;
        }
        tally.sync()?;
        Ok(tally)
    })
}

/// Every prediction of `model` over `loader` (in the loader's epoch-0
/// order), the task decided by [`Task::Auto`].
pub fn predict(model: &dyn Module, loader: &DataLoader) -> Result<Predictions> {
    predict_task(model, loader, Task::Auto)
}

/// [`predict`] for a stated task.
pub fn predict_task(model: &dyn Module, loader: &DataLoader, task: Task) -> Result<Predictions> {
    model.eval();
    no_grad(|| {
        let mut p = Predictions {
            task,
            y_true: Vec::new(),
            y_pred: Vec::new(),
            probs: Vec::new(),
            n_classes: 0,
            outputs: Vec::new(),
            targets: Vec::new(),
            width: 0,
        };
        let mut first: Option<Plan> = None;
        for batch in loader.epoch(0) {
            let (x, y) = batch?;
            let out = model.forward(&x)?;
            let batch_plan = plan(task, &out, &y)?;
            if *first.get_or_insert(batch_plan) != batch_plan {
                return Err(Error::invalid(
                    "predict",
                    format!(
                        "batches disagree on what the outputs are (outputs {:?}, targets {:?})",
                        out.dims(),
                        y.dims()
                    ),
                ));
            }
            match batch_plan {
                Plan::Classes { rows } => {
                    p.n_classes = out.dims()[1];
                    p.y_pred.extend(out.argmax(-1, false)?.to_vec_i32()?);
                    p.probs.extend(out.softmax(-1)?.to_vec()?);
                    p.y_true.extend(if rows {
                        y.argmax(-1, false)?.to_vec_i32()?
                    } else {
                        class_indices(&y)?
                    });
                }
                Plan::Single { .. } | Plan::Values { .. } => p.targets.extend(y.to_vec()?),
                Plan::Unscored => {
                    return Err(Error::invalid(
                        "predict",
                        format!(
                            "outputs {:?} and {:?} targets {:?} fit no task; state it with predict_task",
                            out.dims(),
                            y.dtype(),
                            y.dims()
                        ),
                    ))
                }
            }
            let b = out.dims().first().copied().unwrap_or(1).max(1);
            p.width = out.numel() / b;
            p.outputs.extend(out.to_vec()?);
        }
        let Some(plan) = first else {
            return Err(Error::Empty { op: "predict" });
        };
        let nonbinary = p.targets.iter().filter(|&&t| t != 0.0 && t != 1.0).count();
        let outside = p
            .outputs
            .iter()
            .filter(|&&o| !(0.0..=1.0).contains(&o))
            .count();
        let samples = p.outputs.len() / p.width.max(1);
        p.task = resolve(task, plan, nonbinary as f64, outside as f64, samples)?
            .ok_or(Error::Empty { op: "predict" })?;
        if p.task.is_binary() {
            read_binary(&mut p);
        } else if p.task == Task::MultiClass {
            p.targets.clear();
        }
        Ok(p)
    })
}

/// Fills a binary model's classes and probabilities from its outputs and targets.
fn read_binary(p: &mut Predictions) {
    let logits = p.task == Task::Binary;
    p.n_classes = 2;
    p.y_true = p.targets.iter().map(|&t| t as i32).collect();
    p.y_pred = p
        .outputs
        .iter()
        .map(|&o| i32::from(if logits { o > 0.0 } else { o > 0.5 }))
        .collect();
    p.probs = p
        .outputs
        .iter()
        .flat_map(|&o| {
            let pos = if logits { 1.0 / (1.0 + (-o).exp()) } else { o };
            [1.0 - pos, pos]
        })
        .collect();
    p.targets.clear();
}

/// One class index per sample from `I32` targets, or from `F32` targets
/// holding whole numbers.
fn class_indices(y: &Tensor) -> Result<Vec<i32>> {
    if y.dtype() == DType::I32 {
        return y.to_vec_i32();
    }
    y.to_vec()?
        .into_iter()
        .map(|v| {
            if v.fract() == 0.0 && v.abs() < 2f32.powi(31) {
                Ok(v as i32)
            } else {
                Err(Error::invalid(
                    "predict",
                    format!("target {v} is not a class index"),
                ))
            }
        })
        .collect()
}
