//! [`Task`]: what a model's outputs mean, which decides the metrics the
//! trainer, [`super::evaluate`] and [`super::predict`] report.
//!
//! | task | outputs | targets | metrics |
//! |------|---------|---------|---------|
//! | [`Task::MultiClass`] | `[N, C]` scores, `C ≥ 2` | a class per sample (`I32 [N]`, or `F32` holding class indices), or probability rows `F32 [N, C]` | accuracy of the arg-max |
//! | [`Task::Binary`] | one logit per sample, `[N, 1]` or `[N]` | 0 or 1 per sample, `I32` or `F32` | accuracy of `logit > 0` (sigmoid > 0.5) |
//! | [`Task::BinaryProbabilities`] | one probability per sample (a model ending in a sigmoid) | as `Binary` | accuracy of `p > 0.5` |
//! | [`Task::Regression`] | values | as many values per sample, `F32` | MSE, MAE, R² (averaged over columns) |
//!
//! [`Task::Auto`] (the default) decides from the first batch's shapes and
//! dtypes, and for one output per sample from the values of the whole pass,
//! as scikit-learn's `type_of_target` and torchmetrics do:
//!
//! - `[N, C ≥ 2]` outputs and one target per sample: multi-class.
//! - One output and one target per sample: binary when every target of the
//!   pass is 0 or 1 (then probabilities when every output lies in
//!   `[0, 1]`, logits otherwise), regression when any target is not.
//! - `F32` targets of the outputs' size: regression.
//! - Anything else (sequence outputs, custom targets): the loss only.
//!
//! State the task in [`super::TrainConfig::task`] (or pass it to
//! [`super::predict_task`]) when the rules guess wrong: probability targets
//! for cross-entropy (`F32 [N, C]`, read as regression by `Auto`), a
//! regression whose targets happen to be all 0 or 1, or a binary logit
//! model whose outputs all lie in `[0, 1]` (early in training).

use lam_core::{DType, Error, Result, Tensor};

/// What a model predicts (see the module docs for the rules of `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// Decided from the outputs and targets.
    #[default]
    Auto,
    /// `[N, C]` class scores (logits or probabilities), `C ≥ 2`.
    MultiClass,
    /// One logit per sample; class 1 when it is > 0.
    Binary,
    /// One probability per sample; class 1 when it is > 0.5.
    BinaryProbabilities,
    /// Real values; no accuracy.
    Regression,
}

impl Task {
    /// True for the tasks that predict classes.
    pub fn is_classification(self) -> bool {
        matches!(
            self,
            Task::MultiClass | Task::Binary | Task::BinaryProbabilities
        )
    }

    /// True for the two binary tasks.
    pub fn is_binary(self) -> bool {
        matches!(self, Task::Binary | Task::BinaryProbabilities)
    }
}

/// How the batches of one pass are scored, from the task and the first
/// batch's shapes and dtypes (every later batch must agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// `[N, C]` scores against one class per sample, or against the
    /// arg-max of probability rows (`rows`).
    Classes { rows: bool },
    /// One output and one target per sample. `open`: the task is `Auto`,
    /// so the pass decides between binary and regression.
    Single { open: bool },
    /// `width` values per sample.
    Values { width: usize },
    /// No metric: the loss only.
    Unscored,
}

/// The plan for a batch of outputs `out` and targets `y` under `task`; an
/// error when a stated task does not fit the shapes.
pub(crate) fn plan(task: Task, out: &Tensor, y: &Tensor) -> Result<Plan> {
    let (o, t) = (out.dims(), y.dims());
    let n = o.first().copied();
    let same_n = n.is_some() && t.first().copied() == n;
    let per = |d: &[usize]| d.iter().skip(1).product::<usize>();
    let one_each = same_n && per(o) == 1 && per(t) == 1;
    let classes = o.len() == 2 && o[1] >= 2 && same_n;
    let label_each = classes && per(t) == 1;
    let rows = classes && y.dtype() == DType::F32 && t == o;
    let same_size = same_n && per(o) == per(t);
    let found = || format!("outputs {o:?} and {:?} targets {t:?}", y.dtype());
    match task {
        Task::Auto => Ok(if label_each {
            Plan::Classes { rows: false }
        } else if one_each {
            Plan::Single { open: true }
        } else if same_size && y.dtype() == DType::F32 {
            Plan::Values { width: per(o) }
        } else {
            Plan::Unscored
        }),
        Task::MultiClass if label_each || rows => Ok(Plan::Classes { rows }),
        Task::MultiClass => Err(Error::invalid(
            "Task::MultiClass",
            format!(
                "expected [N, C ≥ 2] outputs with one class per sample or [N, C] probability rows, found {}",
                found()
            ),
        )),
        Task::Binary | Task::BinaryProbabilities if one_each => Ok(Plan::Single { open: false }),
        Task::Binary | Task::BinaryProbabilities => Err(Error::invalid(
            "Task::Binary",
            format!(
                "expected one output ([N, 1] or [N]) and one target per sample, found {}",
                found()
            ),
        )),
        Task::Regression if same_size => Ok(Plan::Values { width: per(o) }),
        Task::Regression => Err(Error::invalid(
            "Task::Regression",
            format!(
                "expected as many targets as outputs per sample, found {}",
                found()
            ),
        )),
    }
}

/// The task a pass turned out to be, from its plan and what it counted:
/// `nonbinary` targets other than 0 and 1, `outside` outputs outside
/// `[0, 1]`. `None` for an unscored pass.
pub(crate) fn resolve(
    task: Task,
    plan: Plan,
    nonbinary: f64,
    outside: f64,
    samples: usize,
) -> Result<Option<Task>> {
    Ok(match plan {
        Plan::Classes { .. } => Some(Task::MultiClass),
        Plan::Values { .. } => Some(Task::Regression),
        Plan::Unscored => None,
        Plan::Single { .. } if nonbinary > 0.0 => {
            if task.is_binary() {
                return Err(Error::invalid(
                    "Task::Binary",
                    format!("targets must be 0 or 1; {nonbinary} of {samples} are not"),
                ));
            }
            Some(Task::Regression)
        }
        Plan::Single { .. } => Some(match task {
            Task::Auto if outside == 0.0 => Task::BinaryProbabilities,
            Task::Auto => Task::Binary,
            stated => stated,
        }),
    })
}
