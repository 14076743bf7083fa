//! Feature scaling fitted on the training split: [`MinMaxScaler`] and
//! [`Standardizer`] (scikit-learn's `MinMaxScaler` and `StandardScaler`).
//!
//! Statistics are per feature: for data `[N, ...]` every position of the
//! sample shape has its own, computed in `f64` over the `N` samples. A
//! constant feature gets a scale of 1 (as scikit-learn's
//! `_handle_zeros_in_scale`), so nothing divides by zero. Both reduce to
//! `y = x · scale + offset`, applied with tensor ops on the data's device
//! ([`Scaler::transform`]) or in place on host data
//! ([`Scaler::transform_slice`]).
//!
//! `save` writes the fitted statistics as a small JSON file next to the
//! model (the format is in `scale_file`); `MinMaxScaler::load`,
//! `Standardizer::load` and [`super::load_scaler`] read them back.

use std::path::Path;

use lam_core::{Error, Result, Tensor};
use serde_json::{json, Value};

use super::scale_file::{check_lens, dims, floats, format_error, read_json};

/// A fitted per-feature affine map `y = x · scale + offset`.
///
/// Required: `fit_slice`, `params` and `to_json`; the rest have defaults.
pub trait Scaler: Send + Sync {
    /// Fits on host data holding `len / prod(sample_shape)` samples.
    fn fit_slice(&mut self, data: &[f32], sample_shape: &[usize]) -> Result<()>;

    /// `(sample_shape, scale, offset)`, or an error before `fit`.
    fn params(&self) -> Result<(&[usize], &[f32], &[f32])>;

    /// The fitted statistics as JSON.
    fn to_json(&self) -> Result<Value>;

    /// Fits on `x: [N, ...]` (read back to the host).
    fn fit(&mut self, x: &Tensor) -> Result<()> {
        if x.rank() == 0 {
            return Err(Error::shape(
                "Scaler::fit",
                "data of shape [N, ...]",
                x.dims(),
            ));
        }
        self.fit_slice(&x.to_vec()?, &x.dims()[1..])
    }

    /// `x · scale + offset` for `x: [N, ...sample_shape]`, on `x`'s device.
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let (shape, scale, offset) = self.params()?;
        check_shape(x, shape)?;
        let dev = x.device();
        x.mul(&Tensor::from_slice(scale, shape, &dev)?)?
            .add(&Tensor::from_slice(offset, shape, &dev)?)
    }

    /// `(y − offset) / scale`: back to the original units.
    fn inverse_transform(&self, y: &Tensor) -> Result<Tensor> {
        let (shape, scale, offset) = self.params()?;
        check_shape(y, shape)?;
        let dev = y.device();
        y.sub(&Tensor::from_slice(offset, shape, &dev)?)?
            .div(&Tensor::from_slice(scale, shape, &dev)?)
    }

    /// Fits on `x`, then transforms it.
    fn fit_transform(&mut self, x: &Tensor) -> Result<Tensor> {
        self.fit(x)?;
        self.transform(x)
    }

    /// Transforms host data of whole samples in place.
    fn transform_slice(&self, data: &mut [f32]) -> Result<()> {
        let (_, scale, offset) = self.params()?;
        if !data.len().is_multiple_of(scale.len().max(1)) {
            return Err(Error::invalid(
                "Scaler::transform_slice",
                format!(
                    "{} values are not whole samples of {} features",
                    data.len(),
                    scale.len()
                ),
            ));
        }
        for row in data.chunks_mut(scale.len().max(1)) {
            for ((v, s), o) in row.iter_mut().zip(scale).zip(offset) {
                *v = *v * s + o;
            }
        }
        Ok(())
    }

    /// Writes the fitted statistics to `path` as JSON.
    fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json()?)
            .map_err(|e| Error::invalid("Scaler::save", e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }
}

/// Maps each feature's training range onto `[low, high]` (default `[0, 1]`).
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxScaler {
    range: (f32, f32),
    fitted: Option<Fitted>,
}

/// Subtracts each feature's mean and divides by its (population) standard deviation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Standardizer {
    fitted: Option<Fitted>,
}

#[derive(Debug, Clone, PartialEq)]
struct Fitted {
    shape: Vec<usize>,
    // min/max for MinMaxScaler, mean/std for Standardizer.
    a: Vec<f32>,
    b: Vec<f32>,
    scale: Vec<f32>,
    offset: Vec<f32>,
}

impl MinMaxScaler {
    /// Onto `[0, 1]`.
    pub fn new() -> MinMaxScaler {
        MinMaxScaler {
            range: (0.0, 1.0),
            fitted: None,
        }
    }

    /// Onto `[-1, 1]`.
    pub fn symmetric() -> MinMaxScaler {
        MinMaxScaler {
            range: (-1.0, 1.0),
            fitted: None,
        }
    }

    /// Onto `[low, high]` (`low < high`, both finite).
    pub fn with_range(low: f32, high: f32) -> Result<MinMaxScaler> {
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(Error::invalid(
                "MinMaxScaler",
                format!("need low < high, found [{low}, {high}]"),
            ));
        }
        Ok(MinMaxScaler {
            range: (low, high),
            fitted: None,
        })
    }

    /// Per-feature `(data_min, data_max)` seen by `fit`.
    pub fn data_range(&self) -> Option<(&[f32], &[f32])> {
        self.fitted.as_ref().map(|f| (&f.a[..], &f.b[..]))
    }

    /// Reads a scaler saved by [`Scaler::save`].
    pub fn load(path: &Path) -> Result<MinMaxScaler> {
        let v = read_json(path, "min_max")?;
        let range = floats(&v, "feature_range", path)?;
        let mut s = match range[..] {
            [lo, hi] => MinMaxScaler::with_range(lo, hi)?,
            _ => return Err(format_error(path, "feature_range must hold two numbers")),
        };
        let (shape, min, max) = (
            dims(&v, path)?,
            floats(&v, "data_min", path)?,
            floats(&v, "data_max", path)?,
        );
        s.fitted = Some(s.fitted_from(shape, min, max, path)?);
        Ok(s)
    }

    fn fitted_from(
        &self,
        shape: Vec<usize>,
        min: Vec<f32>,
        max: Vec<f32>,
        path: &Path,
    ) -> Result<Fitted> {
        check_lens(&shape, &[&min, &max], path)?;
        let (lo, hi) = self.range;
        let scale: Vec<f32> = min
            .iter()
            .zip(&max)
            .map(|(&a, &b)| {
                let span = (b as f64 - a as f64).abs();
                ((hi - lo) as f64 / if span == 0.0 { 1.0 } else { span }) as f32
            })
            .collect();
        let offset = min
            .iter()
            .zip(&scale)
            .map(|(&a, &s)| (lo as f64 - a as f64 * s as f64) as f32)
            .collect();
        Ok(Fitted {
            shape,
            a: min,
            b: max,
            scale,
            offset,
        })
    }
}

impl Default for MinMaxScaler {
    fn default() -> Self {
        MinMaxScaler::new()
    }
}

impl Scaler for MinMaxScaler {
    fn fit_slice(&mut self, data: &[f32], sample_shape: &[usize]) -> Result<()> {
        let cols = columns("MinMaxScaler::fit", data, sample_shape)?;
        let min = cols
            .iter()
            .map(|c| c.iter().copied().fold(f32::INFINITY, f32::min))
            .collect();
        let max = cols
            .iter()
            .map(|c| c.iter().copied().fold(f32::NEG_INFINITY, f32::max))
            .collect();
        self.fitted =
            Some(self.fitted_from(sample_shape.to_vec(), min, max, Path::new("<fit>"))?);
        Ok(())
    }

    fn params(&self) -> Result<(&[usize], &[f32], &[f32])> {
        fitted_params(&self.fitted, "MinMaxScaler")
    }

    fn to_json(&self) -> Result<Value> {
        let f = self
            .fitted
            .as_ref()
            .ok_or_else(|| not_fitted("MinMaxScaler"))?;
        Ok(
            json!({"kind": "min_max", "feature_range": [self.range.0, self.range.1], "shape": f.shape,
                  "data_min": f.a, "data_max": f.b}),
        )
    }
}

impl Standardizer {
    /// An unfitted standardizer.
    pub fn new() -> Standardizer {
        Standardizer::default()
    }

    /// Per-feature `(mean, std)` seen by `fit`.
    pub fn stats(&self) -> Option<(&[f32], &[f32])> {
        self.fitted.as_ref().map(|f| (&f.a[..], &f.b[..]))
    }

    /// Reads a standardizer saved by [`Scaler::save`].
    pub fn load(path: &Path) -> Result<Standardizer> {
        let v = read_json(path, "standard")?;
        let (shape, mean, std) = (
            dims(&v, path)?,
            floats(&v, "mean", path)?,
            floats(&v, "std", path)?,
        );
        Ok(Standardizer {
            fitted: Some(Standardizer::fitted_from(shape, mean, std, path)?),
        })
    }

    fn fitted_from(
        shape: Vec<usize>,
        mean: Vec<f32>,
        std: Vec<f32>,
        path: &Path,
    ) -> Result<Fitted> {
        check_lens(&shape, &[&mean, &std], path)?;
        let scale: Vec<f32> = std
            .iter()
            .map(|&s| if s == 0.0 { 1.0 } else { 1.0 / s })
            .collect();
        let offset = mean.iter().zip(&scale).map(|(&m, &s)| -m * s).collect();
        Ok(Fitted {
            shape,
            a: mean,
            b: std,
            scale,
            offset,
        })
    }
}

impl Scaler for Standardizer {
    fn fit_slice(&mut self, data: &[f32], sample_shape: &[usize]) -> Result<()> {
        let cols = columns("Standardizer::fit", data, sample_shape)?;
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for c in &cols {
            let m = c.iter().map(|&v| v as f64).sum::<f64>() / c.len() as f64;
            let var = c.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / c.len() as f64;
            mean.push(m as f32);
            std.push(var.sqrt() as f32);
        }
        self.fitted = Some(Standardizer::fitted_from(
            sample_shape.to_vec(),
            mean,
            std,
            Path::new("<fit>"),
        )?);
        Ok(())
    }

    fn params(&self) -> Result<(&[usize], &[f32], &[f32])> {
        fitted_params(&self.fitted, "Standardizer")
    }

    fn to_json(&self) -> Result<Value> {
        let f = self
            .fitted
            .as_ref()
            .ok_or_else(|| not_fitted("Standardizer"))?;
        Ok(json!({"kind": "standard", "shape": f.shape, "mean": f.a, "std": f.b}))
    }
}

/// The values of each feature: `columns[f][n]`. Needs at least one sample.
fn columns(op: &'static str, data: &[f32], sample_shape: &[usize]) -> Result<Vec<Vec<f32>>> {
    let per = crate::data::numel(op, sample_shape)?;
    if per == 0 || data.is_empty() || !data.len().is_multiple_of(per) {
        return Err(Error::invalid(
            op,
            format!(
                "{} values are not a non-empty set of samples of shape {sample_shape:?}",
                data.len()
            ),
        ));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            op,
            format!("value {i} is not finite ({})", data[i]),
        ));
    }
    let mut cols = vec![Vec::with_capacity(data.len() / per); per];
    for row in data.chunks(per) {
        for (c, &v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
    }
    Ok(cols)
}

fn fitted_params<'a>(
    f: &'a Option<Fitted>,
    name: &str,
) -> Result<(&'a [usize], &'a [f32], &'a [f32])> {
    let f = f.as_ref().ok_or_else(|| not_fitted(name))?;
    Ok((&f.shape, &f.scale, &f.offset))
}

fn not_fitted(name: &str) -> Error {
    Error::invalid(
        "Scaler",
        format!("{name} is not fitted: call fit on the training data first"),
    )
}

fn check_shape(x: &Tensor, shape: &[usize]) -> Result<()> {
    if x.rank() == 0 || x.dims()[1..] != *shape {
        return Err(Error::shape(
            "Scaler::transform",
            format!("data of shape [N, {shape:?}]"),
            x.dims(),
        ));
    }
    Ok(())
}
