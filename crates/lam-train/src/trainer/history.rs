//! [`History`]: one [`EpochRecord`] per finished epoch, written after every
//! epoch as CSV (a path ending in `.csv`) or JSON lines (any other name,
//! conventionally `.jsonl`), atomically, and carried inside each training
//! checkpoint so that a resumed run continues the same history (the
//! checkpoint's copy is the one a resume trusts).
//!
//! Classifiers fill the accuracies, regression models the MSE, MAE and R²
//! ([`RegressionScores`]); the CSV has a column for each, empty where a
//! value does not apply, and JSON lines written before the regression
//! columns existed read back with them absent.

use std::path::Path;

use lam_core::checkpoint::write_atomic;
use lam_core::{Error, Result};
use serde_json::{json, Value};

use crate::metrics::RegressionScores;

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// The epoch number, from 1.
    pub epoch: u64,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Training accuracy, for a classifier.
    pub train_accuracy: Option<f64>,
    /// Training MSE, MAE and R², for a regression model.
    pub train_regression: Option<RegressionScores>,
    /// Mean validation loss, when there is a validation set.
    pub val_loss: Option<f64>,
    /// Validation accuracy, for a classifier with a validation set.
    pub val_accuracy: Option<f64>,
    /// Validation MSE, MAE and R², for a regression model with a validation set.
    pub val_regression: Option<RegressionScores>,
    /// The learning rate used.
    pub lr: f64,
    /// Wall time of the epoch (training and validation), in seconds.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_sec: f64,
}

/// The records of a run, in epoch order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// One record per finished epoch.
    pub records: Vec<EpochRecord>,
}

const COLUMNS: [&str; 14] = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
    "samples_per_sec",
    "train_mse",
    "train_mae",
    "train_r2",
    "val_mse",
    "val_mae",
    "val_r2",
];

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// The last record, if any.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.records.last()
    }

    /// CSV with a header; missing values are empty fields.
    pub fn to_csv(&self) -> String {
        let mut out = COLUMNS.join(",") + "\n";
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let reg =
            |s: Option<RegressionScores>, f: fn(&RegressionScores) -> f64| opt(s.as_ref().map(f));
        for r in &self.records {
            let fields = [
                r.epoch.to_string(),
                r.train_loss.to_string(),
                opt(r.train_accuracy),
                opt(r.val_loss),
                opt(r.val_accuracy),
                r.lr.to_string(),
                format!("{:.3}", r.seconds),
                format!("{:.1}", r.samples_per_sec),
                reg(r.train_regression, |s| s.mse),
                reg(r.train_regression, |s| s.mae),
                reg(r.train_regression, |s| s.r2),
                reg(r.val_regression, |s| s.mse),
                reg(r.val_regression, |s| s.mae),
                reg(r.val_regression, |s| s.r2),
            ];
            out += &(fields.join(",") + "\n");
        }
        out
    }

    /// One JSON object per line; missing values are `null`.
    pub fn to_jsonl(&self) -> String {
        self.records
            .iter()
            .map(|r| record_json(r).to_string() + "\n")
            .collect()
    }

    /// Parses what [`History::to_jsonl`] wrote.
    pub fn from_jsonl(text: &str) -> Result<History> {
        let mut records = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |msg: String| Error::Format {
                path: "<history>".into(),
                msg: format!("line {}: {msg}", i + 1),
            };
            let v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let num = |k: &str| v.get(k).and_then(Value::as_f64);
            let need = |k: &str| num(k).ok_or_else(|| bad(format!("missing number `{k}`")));
            let reg = |prefix: &str| {
                Some(RegressionScores {
                    mse: num(&format!("{prefix}_mse"))?,
                    mae: num(&format!("{prefix}_mae"))?,
                    r2: num(&format!("{prefix}_r2"))?,
                })
            };
            records.push(EpochRecord {
                epoch: v
                    .get("epoch")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("missing `epoch`".into()))?,
                train_loss: need("train_loss")?,
                train_accuracy: num("train_accuracy"),
                train_regression: reg("train"),
                val_loss: num("val_loss"),
                val_accuracy: num("val_accuracy"),
                val_regression: reg("val"),
                lr: need("lr")?,
                seconds: need("seconds")?,
                samples_per_sec: need("samples_per_sec")?,
            });
        }
        Ok(History { records })
    }

    /// Writes the history to `path`: CSV if it ends in `.csv`, else JSON
    /// lines. Atomically, as checkpoints are written: a reader (or a run
    /// killed mid-write) sees the old file or the new one, never a part.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = if path.extension().is_some_and(|e| e == "csv") {
            self.to_csv()
        } else {
            self.to_jsonl()
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        write_atomic(path, text.as_bytes())
    }

    /// `(epoch, value)` pairs of one series, skipping epochs without it.
    pub fn series(&self, pick: impl Fn(&EpochRecord) -> Option<f64>) -> Vec<(f64, f64)> {
        self.records
            .iter()
            .filter_map(|r| pick(r).map(|v| (r.epoch as f64, v)))
            .collect()
    }
}

fn record_json(r: &EpochRecord) -> Value {
    let reg = |s: Option<RegressionScores>, f: fn(&RegressionScores) -> f64| s.as_ref().map(f);
    json!({
        "epoch": r.epoch,
        "train_loss": r.train_loss,
        "train_accuracy": r.train_accuracy,
        "val_loss": r.val_loss,
        "val_accuracy": r.val_accuracy,
        "lr": r.lr,
        "seconds": r.seconds,
        "samples_per_sec": r.samples_per_sec,
        "train_mse": reg(r.train_regression, |s| s.mse),
        "train_mae": reg(r.train_regression, |s| s.mae),
        "train_r2": reg(r.train_regression, |s| s.r2),
        "val_mse": reg(r.val_regression, |s| s.mse),
        "val_mae": reg(r.val_regression, |s| s.mae),
        "val_r2": reg(r.val_regression, |s| s.r2),
    })
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}
