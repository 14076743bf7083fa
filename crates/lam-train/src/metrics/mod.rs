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
//! logits into them.

mod classification;
mod regression;
mod roc;

pub use classification::{
    accuracy, classification_report, f1_score, precision, recall, Average, ClassScores,
    ClassificationReport, ConfusionMatrix,
};
pub use regression::{mean_absolute_error, mean_squared_error, r2_score, r2_score_columns};
pub use roc::{auc, roc_auc, roc_auc_ovr, roc_curve, roc_curves_ovr, RocCurve};

use lam_core::{Error, Result, Tensor};

/// The arg-max class of each row of `logits: [N, C]`.
pub fn predicted_classes(logits: &Tensor) -> Result<Vec<i32>> {
    check_logits("predicted_classes", logits)?;
    logits.argmax(-1, false)?.to_vec_i32()
}

/// The softmax of each row of `logits: [N, C]`, row-major on the host.
pub fn probabilities(logits: &Tensor) -> Result<Vec<f32>> {
    check_logits("probabilities", logits)?;
    logits.softmax(-1)?.to_vec()
}

fn check_logits(op: &'static str, logits: &Tensor) -> Result<()> {
    if logits.rank() != 2 {
        return Err(Error::RankMismatch {
            op,
            expected: "2 ([N, C])".into(),
            found: logits.rank(),
            shape: logits.shape(),
        });
    }
    Ok(())
}
