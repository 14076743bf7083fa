//! Filling missing values (NaN) with statistics of the training split:
//! [`Imputer`], scikit-learn's `SimpleImputer` with the strategies
//! [`Impute::Mean`], [`Impute::Median`] and [`Impute::Constant`].
//!
//! ```ignore
//! let data = read_csv(path, &CsvOptions::new().missing(Missing::Nan))?;
//! let (train_idx, test_idx) = train_test_split(data.len(), 0.2, true, seed)?;
//! let (mut train, mut test) = (data.select(&train_idx)?, data.select(&test_idx)?);
//! let mut imputer = Imputer::new(Impute::Median);
//! imputer.fit_slice(train.features().as_f32()?, &train.sample_shape())?; // training values only
//! imputer.transform_slice(train.features_mut().as_f32_mut()?)?;
//! imputer.transform_slice(test.features_mut().as_f32_mut()?)?; // filled with the training medians
//! ```
//!
//! As for the scalers, statistics are per feature (each position of the
//! sample shape) over the `N` samples, in `f64`, here over the values that
//! are not NaN; the median of an even count is the mean of the middle two
//! (NumPy's). A feature with no value in the training data has no mean or
//! median: fitting is then an error naming it. Only NaN is missing: an
//! infinite value is an error. [`Imputer::save`] writes the fill values as
//! JSON (`{"kind": "imputer", "strategy": "median", "shape": [4], "fill":
//! [...]}`), atomically, and [`Imputer::load`] reads them back exactly.

use std::path::Path;

use lam_core::checkpoint::write_atomic;
use lam_core::{Error, Result, Tensor};
use serde_json::{json, Value};

use super::scale_file::{check_lens, dims, floats, format_error, read_json};

/// What a missing value is replaced with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Impute {
    /// The feature's mean over the training data.
    Mean,
    /// The feature's median over the training data.
    Median,
    /// This value (finite), for every feature.
    Constant(f32),
}

/// Replaces NaN with per-feature values fitted on the training split.
#[derive(Debug, Clone, PartialEq)]
pub struct Imputer {
    strategy: Impute,
    fitted: Option<Fitted>,
}

#[derive(Debug, Clone, PartialEq)]
struct Fitted {
    shape: Vec<usize>,
    fill: Vec<f32>,
}

impl Imputer {
    /// An unfitted imputer.
    pub fn new(strategy: Impute) -> Imputer {
        Imputer {
            strategy,
            fitted: None,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Impute {
        self.strategy
    }

    /// The value each feature's missing values become, once fitted.
    pub fn fill_values(&self) -> Option<&[f32]> {
        self.fitted.as_ref().map(|f| &f.fill[..])
    }

    /// Fits on host data holding `len / prod(sample_shape)` samples.
    pub fn fit_slice(&mut self, data: &[f32], sample_shape: &[usize]) -> Result<()> {
        const OP: &str = "Imputer::fit";
        let per = crate::data::numel(OP, sample_shape)?;
        if per == 0 || data.is_empty() || !data.len().is_multiple_of(per) {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} values are not a non-empty set of samples of shape {sample_shape:?}",
                    data.len()
                ),
            ));
        }
        if let Some(i) = data.iter().position(|v| v.is_infinite()) {
            return Err(Error::invalid(
                OP,
                format!("value {i} is {}: only NaN counts as missing", data[i]),
            ));
        }
        let fill = (0..per)
            .map(|f| self.fill_for(f, data.iter().skip(f).step_by(per)))
            .collect::<Result<_>>()?;
        self.fitted = Some(Fitted {
            shape: sample_shape.to_vec(),
            fill,
        });
        Ok(())
    }

    /// Fits on `x: [N, ...]` (read back to the host).
    pub fn fit(&mut self, x: &Tensor) -> Result<()> {
        if x.rank() == 0 {
            return Err(Error::shape(
                "Imputer::fit",
                "data of shape [N, ...]",
                x.dims(),
            ));
        }
        self.fit_slice(&x.to_vec()?, &x.dims()[1..])
    }

    /// Replaces every NaN of host data (whole samples) in place.
    pub fn transform_slice(&self, data: &mut [f32]) -> Result<()> {
        let fitted = self.fitted()?;
        let per = fitted.fill.len();
        if !data.len().is_multiple_of(per) {
            return Err(Error::invalid(
                "Imputer::transform_slice",
                format!(
                    "{} values are not whole samples of {per} features",
                    data.len()
                ),
            ));
        }
        for row in data.chunks_mut(per) {
            for (v, &fill) in row.iter_mut().zip(&fitted.fill) {
                if v.is_nan() {
                    *v = fill;
                }
            }
        }
        Ok(())
    }

    /// `x: [N, ...sample_shape]` with every NaN replaced, on `x`'s device.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let fitted = self.fitted()?;
        if x.rank() == 0 || x.dims()[1..] != *fitted.shape {
            return Err(Error::shape(
                "Imputer::transform",
                format!("data of shape [N, {:?}]", fitted.shape),
                x.dims(),
            ));
        }
        let fill = Tensor::from_slice(&fitted.fill, &fitted.shape, &x.device())?;
        Tensor::where_cond(&x.is_nan()?, &fill, x)
    }

    /// Writes the fill values to `path` as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let f = self.fitted()?;
        let (strategy, constant) = match self.strategy {
            Impute::Mean => ("mean", None),
            Impute::Median => ("median", None),
            Impute::Constant(c) => ("constant", Some(c)),
        };
        let v = json!({"kind": "imputer", "strategy": strategy, "constant": constant,
                       "shape": f.shape, "fill": f.fill});
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| Error::invalid("Imputer::save", e.to_string()))?;
        write_atomic(path, (text + "\n").as_bytes())
    }

    /// Reads an imputer saved by [`Imputer::save`].
    pub fn load(path: &Path) -> Result<Imputer> {
        let v = read_json(path, "imputer")?;
        let strategy = match v.get("strategy").and_then(Value::as_str) {
            Some("mean") => Impute::Mean,
            Some("median") => Impute::Median,
            Some("constant") => match v.get("constant").and_then(Value::as_f64) {
                Some(c) => Impute::Constant(c as f32),
                None => return Err(format_error(path, "missing or non-numeric `constant`")),
            },
            other => return Err(format_error(path, format!("unknown strategy {other:?}"))),
        };
        let (shape, fill) = (dims(&v, path)?, floats(&v, "fill", path)?);
        check_lens(&shape, &[&fill], path)?;
        if let Some(i) = fill.iter().position(|v| !v.is_finite()) {
            return Err(format_error(path, format!("fill value {i} is not finite")));
        }
        Ok(Imputer {
            strategy,
            fitted: Some(Fitted { shape, fill }),
        })
    }

    fn fitted(&self) -> Result<&Fitted> {
        self.fitted.as_ref().ok_or_else(|| {
            Error::invalid(
                "Imputer",
                "the imputer is not fitted: call fit on the training data first",
            )
        })
    }

    /// The fill value of feature `f`, from its values (NaN where missing).
    fn fill_for<'a>(&self, f: usize, column: impl Iterator<Item = &'a f32>) -> Result<f32> {
        const OP: &str = "Imputer::fit";
        let name = match self.strategy {
            Impute::Constant(c) if c.is_finite() => return Ok(c),
            Impute::Constant(c) => {
                return Err(Error::invalid(
                    OP,
                    format!("the constant must be finite, found {c}"),
                ))
            }
            Impute::Mean => "mean",
            Impute::Median => "median",
        };
        let mut present: Vec<f64> = column.filter(|v| !v.is_nan()).map(|&v| v as f64).collect();
        if present.is_empty() {
            return Err(Error::invalid(
                OP,
                format!(
                    "feature {f} has no value in the training data, so no {name} to fill with \
                     (Impute::Constant needs none)"
                ),
            ));
        }
        let n = present.len();
        let value = if self.strategy == Impute::Mean {
            present.iter().sum::<f64>() / n as f64
        } else {
            present.sort_by(f64::total_cmp);
            match n % 2 {
                1 => present[n / 2],
                _ => (present[n / 2 - 1] + present[n / 2]) / 2.0,
            }
        };
        Ok(value as f32)
    }
}
