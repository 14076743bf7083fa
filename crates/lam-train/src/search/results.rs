//! [`SearchResults`]: scikit-learn's `cv_results_` as rows — each
//! candidate's parameters, per-fold scores, mean, standard deviation, rank
//! and fit time — and the refit of the best candidate.

use std::fmt;
use std::path::Path;

use lam_core::{Error, Result};

use super::space::Params;

/// One candidate's cross-validated scores.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateResult {
    /// Its hyper-parameters.
    pub params: Params,
    /// Its score on each fold (`split{k}_test_score`).
    pub split_scores: Vec<f64>,
    /// Their mean (`mean_test_score`).
    pub mean: f64,
    /// Their population standard deviation (`std_test_score`).
    pub std: f64,
    /// 1 for the best mean; equal means share the smaller rank
    /// (`rank_test_score`); a NaN mean ranks last.
    pub rank: usize,
    /// Seconds spent on all its folds.
    pub fit_seconds: f64,
}

impl CandidateResult {
    pub(crate) fn new(params: Params, split_scores: Vec<f64>, fit_seconds: f64) -> Self {
        let n = split_scores.len() as f64;
        let mean = split_scores.iter().sum::<f64>() / n;
        let std = (split_scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
        CandidateResult {
            params,
            split_scores,
            mean,
            std,
            rank: 0,
            fit_seconds,
        }
    }
}

/// Every candidate of a search, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// The candidates by rank (ties in the order they were tried).
    pub rows: Vec<CandidateResult>,
}

impl SearchResults {
    /// Ranks `rows` (in the order tried) by mean score, as scikit-learn's
    /// `rankdata(-mean, method="min")`.
    pub(crate) fn ranked(mut rows: Vec<CandidateResult>) -> SearchResults {
        let key = |r: &CandidateResult| {
            if r.mean.is_nan() {
                f64::NEG_INFINITY
            } else {
                r.mean
            }
        };
        for i in 0..rows.len() {
            let mine = key(&rows[i]);
            rows[i].rank = 1 + rows.iter().filter(|r| key(r) > mine).count();
        }
        rows.sort_by_key(|r| r.rank);
        SearchResults { rows }
    }

    /// The best candidate (`best_params_`, `best_score_`).
    pub fn best(&self) -> &CandidateResult {
        &self.rows[0]
    }

    /// Trains the best candidate again with `fit` (on the whole training
    /// split), as `refit=True` does.
    pub fn refit<T>(&self, fit: impl FnOnce(&Params) -> Result<T>) -> Result<T> {
        fit(&self.best().params)
    }

    /// The table as CSV: rank, each parameter, mean, std, each fold's
    /// score, seconds.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let names: Vec<&str> = self.best().params.iter().map(|(n, _)| n).collect();
        let folds = self.best().split_scores.len();
        let mut out = String::from("rank");
        for n in &names {
            out += &format!(",{n}");
        }
        out += ",mean_score,std_score";
        for k in 0..folds {
            out += &format!(",split{k}_score");
        }
        out += ",fit_seconds\n";
        for r in &self.rows {
            out += &r.rank.to_string();
            for (_, v) in r.params.iter() {
                out += &format!(",{v}");
            }
            out += &format!(",{},{}", r.mean, r.std);
            for s in &r.split_scores {
                out += &format!(",{s}");
            }
            out += &format!(",{}\n", r.fit_seconds);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        }
        std::fs::write(path, out).map_err(|e| io_error(path, &e))
    }
}

impl fmt::Display for SearchResults {
    /// One line per candidate, best first: rank, mean ± std, parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rank  mean score ± std       seconds  parameters")?;
        for r in &self.rows {
            writeln!(
                f,
                "{:>4}  {:>9.4} ± {:<9.4} {:>8.2}  {}",
                r.rank, r.mean, r.std, r.fit_seconds, r.params
            )?;
        }
        Ok(())
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}
