//! Reading the JSON fixtures that PyTorch wrote (see `fixtures/README.md`):
//! a file is `{"cases": [...]}`, a tensor is `{"shape": [...], "data": [...]}`.
//! Shared by the layer test suites, which differ only in how a case builds
//! and runs its layer.

use lam::prelude::*;
use serde_json::Value;

/// f32 computation against float64 references.
pub const ATOL: f32 = 2e-4;
pub const RTOL: f32 = 1e-3;

/// The cases of fixture `file` among the embedded `(name, json)` files.
pub fn cases(fixtures: &[(&str, &str)], file: &str) -> Vec<Value> {
    let text = fixtures
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, text)| *text)
        .expect("known fixture file");
    let doc: Value = serde_json::from_str(text).expect("fixture is valid JSON");
    doc["cases"]
        .as_array()
        .expect("fixture has a cases list")
        .clone()
}

/// Runs `run_case` on every case, reporting all failing cases at once.
pub fn run_cases(
    cases: &[Value],
    dev: &Device,
    run_case: impl Fn(&Value, &Device) -> lam::Result<()>,
) -> lam::Result<()> {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            run_case(case, dev)
                .err()
                .map(|e| format!("{}: {e}", case["name"]))
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid("fixture", failures.join("\n")))
    }
}

/// A fixture tensor as `dtype`.
pub fn tensor(v: &Value, dtype: DType, dev: &Device) -> lam::Result<Tensor> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().unwrap_or(0) as usize)
        .collect();
    let data = v["data"].as_array().expect("data");
    match dtype {
        DType::F32 => Tensor::from_vec(
            data.iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                .collect(),
            &shape,
            dev,
        ),
        DType::I32 => Tensor::from_vec_i32(
            data.iter()
                .map(|x| x.as_i64().unwrap_or(-1) as i32)
                .collect(),
            &shape,
            dev,
        ),
    }
}

/// An error naming `what` unless `actual` matches the fixture tensor's shape
/// and values within [`ATOL`]/[`RTOL`].
pub fn expect_close(what: &str, actual: &Tensor, expected: &Value) -> lam::Result<()> {
    let want = tensor(expected, DType::F32, &actual.device())?;
    if actual.dims() != want.dims() {
        return Err(Error::invalid(
            "fixture",
            format!(
                "{what}: shape {:?}, expected {:?}",
                actual.dims(),
                want.dims()
            ),
        ));
    }
    lam::testing::assert_close(&actual.to_vec()?, &want.to_vec()?, ATOL, RTOL)
        .map_err(|e| Error::invalid("fixture", format!("{what}: {e}")))
}
