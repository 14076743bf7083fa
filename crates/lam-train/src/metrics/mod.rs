//! Evaluation metrics, each equal to scikit-learn's on the stored fixtures
//! (`fixtures/gen_metrics.py` → `fixtures/metrics/*.json`).
//!
//! - `classification`: [`accuracy`], [`ConfusionMatrix`], [`precision`],
//!   [`recall`], [`f1_score`] with an [`Average`], and
//!   [`classification_report`] (all per-class scores and averages).
//! - `roc`: [`roc_curve`], [`auc`], [`roc_auc`] (binary) and
//!   [`roc_auc_ovr`] (one-vs-rest macro).
//! - `regression`: [`mean_squared_error`], [`mean_absolute_error`],
//!   [`r2_score`].
//!
//! Metrics take host slices (`&[i32]` classes, `&[f32]` scores); the
//! helpers [`predicted_classes`] and [`probabilities`] turn a model's
//! logits into them: `[N, C]` logits of `C ≥ 2` classes (arg-max, softmax),
//! or one logit per sample, `[N, 1]` or `[N]`, of a binary classifier
//! (class 1 when the logit is > 0, i.e. when its sigmoid is > 0.5;
//! probabilities `[1 − σ, σ]` per row, as scikit-learn's `predict_proba`).

mod classification;
mod regression;
mod roc;

pub use classification::{
    accuracy, classification_report, f1_score, precision, recall, Average, ClassScores,
    ClassificationReport, ConfusionMatrix,
};
pub(crate) use regression::r2_from_sums;
pub use regression::{
    mean_absolute_error, mean_squared_error, r2_score, r2_score_columns, regression_scores,
    RegressionScores,
};
pub use roc::{auc, roc_auc, roc_auc_ovr, roc_curve, roc_curves_ovr, RocCurve};

use lam_core::{Error, Result, Tensor};

/// The class of each sample: the arg-max of each row of `logits: [N, C]`,
/// or, for one logit per sample (`[N, 1]` or `[N]`), 1 where it is > 0.
pub fn predicted_classes(logits: &Tensor) -> Result<Vec<i32>> {
    match binary_logits("predicted_classes", logits)? {
        Some(z) => Ok(z.to_vec()?.iter().map(|&v| i32::from(v > 0.0)).collect()),
        None => logits.argmax(-1, false)?.to_vec_i32(),
    }
}

/// Class probabilities, row-major `[N, C]` on the host: the softmax of each
/// row of `logits: [N, C]`, or, for one logit per sample (`[N, 1]` or
/// `[N]`), `[1 − σ(z), σ(z)]` (`C = 2`).
pub fn probabilities(logits: &Tensor) -> Result<Vec<f32>> {
    match binary_logits("probabilities", logits)? {
        Some(z) => Ok(z
            .sigmoid()?
            .to_vec()?
            .iter()
            .flat_map(|&p| [1.0 - p, p])
            .collect()),
        None => logits.softmax(-1)?.to_vec(),
    }
}

/// `Some(z: [N])` when `logits` holds one logit per sample, `None` for
/// `[N, C ≥ 2]`, an error for any other shape.
fn binary_logits(op: &'static str, logits: &Tensor) -> Result<Option<Tensor>> {
    match logits.dims() {
        [_] => Ok(Some(logits.clone())),
        [_, 1] => Ok(Some(logits.squeeze(1)?)),
        [_, _] => Ok(None),
        _ => Err(Error::RankMismatch {
            op,
            expected: "2 ([N, C] logits) or 1 ([N], one logit per sample)".into(),
            found: logits.rank(),
            shape: logits.shape(),
        }),
    }
}
