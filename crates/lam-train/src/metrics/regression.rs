//! Regression metrics with scikit-learn's definitions, summed in `f64`:
//! [`mean_squared_error`], [`mean_absolute_error`] and [`r2_score`]
//! (`1 − SS_res / SS_tot`; a constant `y_true` gives 1 for a perfect fit
//! and 0 otherwise, scikit-learn's `force_finite=True`).
//! [`r2_score_columns`] averages R² over the columns of `[N, k]` data
//! (scikit-learn's `multioutput="uniform_average"`), and
//! [`regression_scores`] gives all three at once as [`RegressionScores`].

use lam_core::{Error, Result};

use super::classification::check_pair;

/// MSE, MAE and R² of one set of predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegressionScores {
    /// Mean squared error over every value.
    pub mse: f64,
    /// Mean absolute error over every value.
    pub mae: f64,
    /// R² of each column, averaged over the columns.
    pub r2: f64,
}

/// `mean((y_true − y_pred)²)`.
pub fn mean_squared_error(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    check_pair("mean_squared_error", y_true.len(), y_pred.len())?;
    Ok(y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| (t as f64 - p as f64).powi(2))
        .sum::<f64>()
        / y_true.len() as f64)
}

/// `mean(|y_true − y_pred|)`.
pub fn mean_absolute_error(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    check_pair("mean_absolute_error", y_true.len(), y_pred.len())?;
    Ok(y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| (t as f64 - p as f64).abs())
        .sum::<f64>()
        / y_true.len() as f64)
}

/// The coefficient of determination of one output.
pub fn r2_score(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    check_pair("r2_score", y_true.len(), y_pred.len())?;
    let mean = y_true.iter().map(|&v| v as f64).sum::<f64>() / y_true.len() as f64;
    let ss_res: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| (t as f64 - p as f64).powi(2))
        .sum();
    let ss_tot: f64 = y_true.iter().map(|&t| (t as f64 - mean).powi(2)).sum();
    Ok(r2_from_sums(ss_res, ss_tot))
}

/// MSE and MAE over every value, and R² averaged over the columns, of
/// row-major `[N, columns]` data.
pub fn regression_scores(
    y_true: &[f32],
    y_pred: &[f32],
    columns: usize,
) -> Result<RegressionScores> {
    Ok(RegressionScores {
        mse: mean_squared_error(y_true, y_pred)?,
        mae: mean_absolute_error(y_true, y_pred)?,
        r2: r2_score_columns(y_true, y_pred, columns)?,
    })
}

/// R² from the residual and total sums of squares, with scikit-learn's
/// rule for a constant target (1 for a perfect fit, else 0).
pub(crate) fn r2_from_sums(ss_res: f64, ss_tot: f64) -> f64 {
    match (ss_tot == 0.0, ss_res == 0.0) {
        (false, _) => 1.0 - ss_res / ss_tot,
        (true, true) => 1.0,
        (true, false) => 0.0,
    }
}

/// R² of each column of row-major `[N, columns]` data, averaged.
pub fn r2_score_columns(y_true: &[f32], y_pred: &[f32], columns: usize) -> Result<f64> {
    check_pair("r2_score_columns", y_true.len(), y_pred.len())?;
    if columns == 0 || !y_true.len().is_multiple_of(columns) {
        return Err(Error::invalid(
            "r2_score_columns",
            format!(
                "{} values do not form rows of {columns} columns",
                y_true.len()
            ),
        ));
    }
    let column = |v: &[f32], c: usize| -> Vec<f32> { v.chunks(columns).map(|r| r[c]).collect() };
    let mut total = 0.0;
    for c in 0..columns {
        total += r2_score(&column(y_true, c), &column(y_pred, c))?;
    }
    Ok(total / columns as f64)
}
