//! Classification metrics with scikit-learn's definitions: [`accuracy`],
//! [`ConfusionMatrix`], per-class precision, recall and F1 and their
//! [`Average`]s ([`classification_report`], [`precision`], [`recall`],
//! [`f1_score`]).
//!
//! The labels considered are the sorted union of the true and predicted
//! labels, as scikit-learn's `unique_labels`. A ratio whose denominator is
//! zero is 0, as scikit-learn's default `zero_division="warn"` returns.
//! F1 is `2·tp / (2·tp + fp + fn)`.

use std::fmt;

use lam_core::{Error, Result};

/// How per-class scores are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    /// The unweighted mean over classes.
    Macro,
    /// From the total true positives, false positives and false negatives.
    Micro,
    /// The mean over classes weighted by their support (true count).
    Weighted,
    /// The score of one class only (scikit-learn's `average="binary"`).
    Binary(i32),
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScores {
    /// The class.
    pub label: i32,
    /// `tp / (tp + fp)`.
    pub precision: f64,
    /// `tp / (tp + fn)`.
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)`.
    pub f1: f64,
    /// Number of samples truly of this class.
    pub support: usize,
}

/// Per-class scores, accuracy and the three averages.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationReport {
    /// One entry per label, sorted by label.
    pub per_class: Vec<ClassScores>,
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Macro averages (`label` is -1, `support` the total).
    pub macro_avg: ClassScores,
    /// Micro averages.
    pub micro_avg: ClassScores,
    /// Support-weighted averages.
    pub weighted_avg: ClassScores,
}

/// Counts of (true label, predicted label) pairs: `counts[t][p]`, with
/// rows and columns in the order of `labels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    labels: Vec<i32>,
    counts: Vec<Vec<u64>>,
}

/// The fraction of positions where `y_pred` equals `y_true`.
pub fn accuracy(y_true: &[i32], y_pred: &[i32]) -> Result<f64> {
    check_pair("accuracy", y_true.len(), y_pred.len())?;
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// Precision averaged as `average`.
pub fn precision(y_true: &[i32], y_pred: &[i32], average: Average) -> Result<f64> {
    Ok(averaged(y_true, y_pred, average)?.precision)
}

/// Recall averaged as `average`.
pub fn recall(y_true: &[i32], y_pred: &[i32], average: Average) -> Result<f64> {
    Ok(averaged(y_true, y_pred, average)?.recall)
}

/// F1 averaged as `average`.
pub fn f1_score(y_true: &[i32], y_pred: &[i32], average: Average) -> Result<f64> {
    Ok(averaged(y_true, y_pred, average)?.f1)
}

/// Every per-class score and average at once.
pub fn classification_report(y_true: &[i32], y_pred: &[i32]) -> Result<ClassificationReport> {
    let cm = ConfusionMatrix::new(y_true, y_pred)?;
    let per_class = cm.per_class();
    let total = y_true.len();
    let mean = |f: &dyn Fn(&ClassScores) -> f64, weighted: bool| -> f64 {
        if weighted {
            per_class
                .iter()
                .map(|c| f(c) * c.support as f64)
                .sum::<f64>()
                / total as f64
        } else {
            per_class.iter().map(f).sum::<f64>() / per_class.len() as f64
        }
    };
    let avg = |weighted: bool| ClassScores {
        label: -1,
        precision: mean(&|c| c.precision, weighted),
        recall: mean(&|c| c.recall, weighted),
        f1: mean(&|c| c.f1, weighted),
        support: total,
    };
    let (tp, fp, fn_) = cm.totals();
    Ok(ClassificationReport {
        accuracy: accuracy(y_true, y_pred)?,
        macro_avg: avg(false),
        weighted_avg: avg(true),
        micro_avg: scores(-1, tp, fp, fn_, total),
        per_class,
    })
}

impl ConfusionMatrix {
    /// Over the sorted union of the labels in `y_true` and `y_pred`.
    pub fn new(y_true: &[i32], y_pred: &[i32]) -> Result<ConfusionMatrix> {
        let mut labels: Vec<i32> = y_true.iter().chain(y_pred).copied().collect();
        labels.sort_unstable();
        labels.dedup();
        ConfusionMatrix::with_labels(y_true, y_pred, &labels)
    }

    /// Over `labels`, in that order (pairs with other labels are not counted).
    pub fn with_labels(y_true: &[i32], y_pred: &[i32], labels: &[i32]) -> Result<ConfusionMatrix> {
        check_pair("confusion_matrix", y_true.len(), y_pred.len())?;
        let pos = |l: i32| labels.iter().position(|&x| x == l);
        let mut counts = vec![vec![0u64; labels.len()]; labels.len()];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            if let (Some(i), Some(j)) = (pos(t), pos(p)) {
                counts[i][j] += 1;
            }
        }
        Ok(ConfusionMatrix {
            labels: labels.to_vec(),
            counts,
        })
    }

    /// The labels of the rows and columns.
    pub fn labels(&self) -> &[i32] {
        &self.labels
    }

    /// `counts()[t][p]`: samples of label `labels()[t]` predicted as `labels()[p]`.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Each row divided by its sum (rows with no samples stay 0).
    pub fn normalized(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|row| {
                let s: u64 = row.iter().sum();
                row.iter()
                    .map(|&c| if s == 0 { 0.0 } else { c as f64 / s as f64 })
                    .collect()
            })
            .collect()
    }

    /// Precision, recall, F1 and support of each label.
    pub fn per_class(&self) -> Vec<ClassScores> {
        (0..self.labels.len())
            .map(|k| {
                let tp = self.counts[k][k];
                let predicted: u64 = self.counts.iter().map(|r| r[k]).sum();
                let actual: u64 = self.counts[k].iter().sum();
                scores(
                    self.labels[k],
                    tp,
                    predicted - tp,
                    actual - tp,
                    actual as usize,
                )
            })
            .collect()
    }

    /// Total true positives, false positives and false negatives.
    fn totals(&self) -> (u64, u64, u64) {
        let tp: u64 = (0..self.labels.len()).map(|k| self.counts[k][k]).sum();
        let all: u64 = self.counts.iter().flatten().sum();
        (tp, all - tp, all - tp)
    }
}

impl fmt::Display for ConfusionMatrix {
    /// A table with true labels down and predicted labels across.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
            .flatten()
            .map(|c| c.to_string().len())
            .chain(self.labels.iter().map(|l| l.to_string().len()))
            .max()
            .unwrap_or(1)
            + 1;
        write!(f, "{:>6}", "t\\p")?;
        for l in &self.labels {
            write!(f, "{l:>width$}")?;
        }
        writeln!(f)?;
        for (l, row) in self.labels.iter().zip(&self.counts) {
            write!(f, "{l:>6}")?;
            for c in row {
                write!(f, "{c:>width$}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for ClassificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>12} {:>9} {:>9} {:>9} {:>8}",
            "", "precision", "recall", "f1", "support"
        )?;
        let line = |f: &mut fmt::Formatter<'_>, name: String, c: &ClassScores| {
            writeln!(
                f,
                "{name:>12} {:>9.4} {:>9.4} {:>9.4} {:>8}",
                c.precision, c.recall, c.f1, c.support
            )
        };
        for c in &self.per_class {
            line(f, c.label.to_string(), c)?;
        }
        writeln!(
            f,
            "{:>12} {:>29.4} {:>8}",
            "accuracy", self.accuracy, self.macro_avg.support
        )?;
        line(f, "macro avg".into(), &self.macro_avg)?;
        line(f, "weighted avg".into(), &self.weighted_avg)
    }
}

fn averaged(y_true: &[i32], y_pred: &[i32], average: Average) -> Result<ClassScores> {
    let report = classification_report(y_true, y_pred)?;
    match average {
        Average::Macro => Ok(report.macro_avg),
        Average::Micro => Ok(report.micro_avg),
        Average::Weighted => Ok(report.weighted_avg),
        Average::Binary(pos) => report
            .per_class
            .iter()
            .find(|c| c.label == pos)
            .copied()
            .ok_or_else(|| {
                Error::invalid(
                    "binary average",
                    format!("positive label {pos} is in neither y_true nor y_pred"),
                )
            }),
    }
}

fn scores(label: i32, tp: u64, fp: u64, fn_: u64, support: usize) -> ClassScores {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    ClassScores {
        label,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        f1: ratio(2 * tp, 2 * tp + fp + fn_),
        support,
    }
}

pub(crate) fn check_pair(op: &'static str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::invalid(
            op,
            format!("{a} true values but {b} predictions"),
        ));
    }
    if a == 0 {
        return Err(Error::Empty { op });
    }
    Ok(())
}
