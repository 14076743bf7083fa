//! Scaler files: the fitted statistics as a small JSON document, e.g.
//! `{"kind": "min_max", "feature_range": [0, 1], "shape": [64],
//! "data_min": [...], "data_max": [...]}` or `{"kind": "standard", "shape":
//! [64], "mean": [...], "std": [...]}`. Numbers are written from `f32` and
//! read back exactly. Anything missing or malformed is an
//! [`Error::Format`] naming the file.

use std::path::Path;

use lam_core::{Error, Result};
use serde_json::Value;

use super::scale::{MinMaxScaler, Scaler, Standardizer};

/// Reads a scaler of either kind saved by [`Scaler::save`].
pub fn load_scaler(path: &Path) -> Result<Box<dyn Scaler>> {
    let v = read_json(path, "")?;
    match v.get("kind").and_then(Value::as_str) {
        Some("min_max") => Ok(Box::new(MinMaxScaler::load(path)?)),
        Some("standard") => Ok(Box::new(Standardizer::load(path)?)),
        other => Err(format_error(path, format!("unknown scaler kind {other:?}"))),
    }
}

pub(crate) fn check_lens(shape: &[usize], vs: &[&Vec<f32>], path: &Path) -> Result<()> {
    let per = crate::data::numel("load scaler", shape)
        .map_err(|_| format_error(path, format!("shape {shape:?} is too large")))?;
    if vs.iter().any(|v| v.len() != per) {
        return Err(format_error(
            path,
            format!("statistics do not match the feature shape {shape:?}"),
        ));
    }
    Ok(())
}

pub(crate) fn read_json(path: &Path, kind: &str) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    // Bad bytes are a malformed file (a Format error), not a failed read.
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format_error(path, format!("invalid JSON: {e}")))?;
    let found = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && found != kind {
        return Err(format_error(
            path,
            format!("expected a {kind:?} scaler, found kind {found:?}"),
        ));
    }
    Ok(v)
}

pub(crate) fn floats(v: &Value, key: &str, path: &Path) -> Result<Vec<f32>> {
    v.get(key)
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| format_error(path, format!("missing or non-numeric `{key}`")))
}

pub(crate) fn dims(v: &Value, path: &Path) -> Result<Vec<usize>> {
    v.get("shape")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_u64().map(|d| d as usize))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| format_error(path, "missing or invalid `shape`"))
}

pub(crate) fn format_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}
