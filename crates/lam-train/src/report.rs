//! The end of a training run in one call: predictions over a test loader,
//! the task's metrics, and the plots of the history (and, for a
//! classifier, its ROC curves and confusion matrix) written to a directory.
//!
//! - [`report_classifier`]: accuracy, macro F1, ROC AUC and the confusion
//!   matrix of a multi-class or binary classifier (binary: the ROC curve of
//!   the positive class, class 1, scored by its probability).
//! - [`report_regressor`]: MSE, MAE and R² of a regression model.
//!
//! Both read the outputs as [`Task::Auto`] decides (see [`crate::trainer::Task`]);
//! a model of the other kind is an error that names the right function.

use std::path::{Path, PathBuf};

use lam_core::nn::Module;
use lam_core::{Error, Result};

use crate::data::DataLoader;
use crate::metrics::{classification_report, roc_auc, roc_auc_ovr, ConfusionMatrix};
use crate::plot::{plot_classification, plot_history};
use crate::trainer::{predict, History, Predictions, Task};

/// What [`report_classifier`] measured and wrote.
#[derive(Debug, Clone)]
pub struct ClassifierReport {
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-averaged F1.
    pub macro_f1: f64,
    /// ROC AUC: of the positive class for a binary model, the one-vs-rest
    /// macro average for a multi-class one; `None` when a class has no
    /// sample (the curve is undefined).
    pub roc_auc: Option<f64>,
    /// The confusion matrix (rows: true class, columns: predicted).
    pub confusion: ConfusionMatrix,
    /// Plot files written.
    pub files: Vec<PathBuf>,
}

/// What [`report_regressor`] measured and wrote.
#[derive(Debug, Clone)]
pub struct RegressorReport {
    /// Test mean squared error.
    pub mse: f64,
    /// Test mean absolute error.
    pub mae: f64,
    /// Test R² (averaged over output columns).
    pub r2: f64,
    /// Plot files written.
    pub files: Vec<PathBuf>,
}

/// Evaluates classifier `model` on `test`, plots `history` and the
/// classification results into `out_dir`, and, when `print` is set, prints
/// accuracy, macro F1, ROC AUC and the confusion matrix.
pub fn report_classifier(
    model: &dyn Module,
    test: &DataLoader,
    history: &History,
    out_dir: &Path,
    print: bool,
) -> Result<ClassifierReport> {
    let pred = predict(model, test)?;
    if !pred.task.is_classification() {
        return Err(Error::invalid(
            "report_classifier",
            "the outputs and targets make a regression model (targets not all classes); \
             use report_regressor",
        ));
    }
    let report = classification_report(&pred.y_true, &pred.y_pred)?;
    let confusion = ConfusionMatrix::new(&pred.y_true, &pred.y_pred)?;
    let auc = area_under_roc(&pred);
    let mut files = plot_history(history, out_dir)?;
    files.extend(plot_classification(&pred, out_dir)?);
    if print {
        println!("test accuracy: {:.4}", report.accuracy);
        println!("test macro F1: {:.4}", report.macro_avg.f1);
        if let Some(a) = auc {
            println!("test ROC AUC: {a:.4}");
        }
        println!("confusion matrix (rows: true class, columns: predicted):\n{confusion}");
        println!("plots, history and checkpoints in {}", out_dir.display());
    }
    Ok(ClassifierReport {
        accuracy: report.accuracy,
        macro_f1: report.macro_avg.f1,
        roc_auc: auc,
        confusion,
        files,
    })
}

/// Evaluates regression `model` on `test`, plots `history` into `out_dir`,
/// and, when `print` is set, prints MSE, MAE and R².
pub fn report_regressor(
    model: &dyn Module,
    test: &DataLoader,
    history: &History,
    out_dir: &Path,
    print: bool,
) -> Result<RegressorReport> {
    let pred = predict(model, test)?;
    if pred.task != Task::Regression {
        return Err(Error::invalid(
            "report_regressor",
            format!(
                "the outputs and targets make a classifier ({:?}); use report_classifier",
                pred.task
            ),
        ));
    }
    let scores = pred.regression_scores()?;
    let files = plot_history(history, out_dir)?;
    if print {
        println!(
            "test MSE: {:.6}  MAE: {:.6}  R²: {:.4}",
            scores.mse, scores.mae, scores.r2
        );
        println!("plots, history and checkpoints in {}", out_dir.display());
    }
    Ok(RegressorReport {
        mse: scores.mse,
        mae: scores.mae,
        r2: scores.r2,
        files,
    })
}

/// The ROC AUC of a classifier's predictions, when every class has samples.
fn area_under_roc(pred: &Predictions) -> Option<f64> {
    match pred.positive_probabilities() {
        Some(p) => {
            let truth: Vec<bool> = pred.y_true.iter().map(|&t| t == 1).collect();
            roc_auc(&truth, &p).ok()
        }
        None => roc_auc_ovr(&pred.y_true, &pred.probs, pred.n_classes).ok(),
    }
}
