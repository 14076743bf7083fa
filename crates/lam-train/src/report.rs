//! The end of a classifier's training run in one call: predictions over a
//! test loader, accuracy and macro F1, the confusion matrix, and the plots of
//! the history, ROC curves and confusion matrix written to a directory.

use std::path::{Path, PathBuf};

use lam_core::nn::Module;
use lam_core::Result;

use crate::data::DataLoader;
use crate::metrics::{classification_report, ConfusionMatrix};
use crate::plot::{plot_classification, plot_history};
use crate::trainer::{predict, History};

/// What [`report_classifier`] measured and wrote.
#[derive(Debug, Clone)]
pub struct ClassifierReport {
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-averaged F1.
    pub macro_f1: f64,
    /// The confusion matrix (rows: true class, columns: predicted).
    pub confusion: ConfusionMatrix,
    /// Plot files written.
    pub files: Vec<PathBuf>,
}

/// Evaluates `model` on `test`, plots `history` and the classification
/// results into `out_dir`, and, when `print` is set, prints accuracy, macro
/// F1 and the confusion matrix.
pub fn report_classifier(
    model: &dyn Module,
    test: &DataLoader,
    history: &History,
    out_dir: &Path,
    print: bool,
) -> Result<ClassifierReport> {
    let pred = predict(model, test)?;
    let report = classification_report(&pred.y_true, &pred.y_pred)?;
    let confusion = ConfusionMatrix::new(&pred.y_true, &pred.y_pred)?;
    let mut files = plot_history(history, out_dir)?;
    files.extend(plot_classification(&pred, out_dir)?);
    if print {
        println!("test accuracy: {:.4}", report.accuracy);
        println!("test macro F1: {:.4}", report.macro_avg.f1);
        println!("confusion matrix (rows: true class, columns: predicted):\n{confusion}");
        println!("plots, history and checkpoints in {}", out_dir.display());
    }
    Ok(ClassifierReport {
        accuracy: report.accuracy,
        macro_f1: report.macro_avg.f1,
        confusion,
        files,
    })
}
