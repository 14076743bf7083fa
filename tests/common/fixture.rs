//! Reading the JSON fixtures that PyTorch wrote (see `fixtures/README.md`):
//! a file is `{"cases": [...]}`, a tensor is `{"shape": [...], "data": [...]}`.
//! Shared by every suite that checks values against a fixture, which differ
//! only in how a case builds and runs what it tests.
//!
//! Every reader of cases takes the least number of cases the file must
//! hold, so a fixture that lost its cases fails the test instead of
//! passing with nothing checked.

use lam::nn::Module;
use lam::prelude::*;
use serde_json::Value;

/// f32 computation against float64 references.
pub const ATOL: f32 = 2e-4;
pub const RTOL: f32 = 1e-3;

/// The document `fixtures/{path}`, read when the test runs.
pub fn read(path: &str) -> Value {
    let full = format!("{}/../../fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| {
        panic!("{full}: {e} (fixtures/README.md names the script that makes it)")
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: invalid JSON: {e}"))
}

/// The cases of `fixtures/{path}`: at least `min` of them.
pub fn file_cases(path: &str, min: usize) -> Vec<Value> {
    case_list(&read(path), path, min)
}

/// Runs `run_case` on every case of `fixtures/{path}` (at least `min`),
/// reporting all failing cases at once.
pub fn run_file(
    path: &str,
    min: usize,
    dev: &Device,
    run_case: impl Fn(&Value, &Device) -> lam::Result<()>,
) -> lam::Result<()> {
    run_cases(&file_cases(path, min), dev, run_case)
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

/// A fixture tensor's shape.
pub fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .expect("a fixture tensor has a shape")
        .iter()
        .map(|d| d.as_u64().expect("a dim is a whole number") as usize)
        .collect()
}

/// A fixture tensor's values as `f32`.
pub fn floats(v: &Value) -> Vec<f32> {
    values(v)
        .iter()
        .map(|x| x.as_f64().expect("a value is a number") as f32)
        .collect()
}

/// A fixture tensor as `dtype`.
pub fn tensor(v: &Value, dtype: DType, dev: &Device) -> lam::Result<Tensor> {
    match dtype {
        DType::F32 => Tensor::from_vec(floats(v), &shape(v), dev),
        DType::I32 => Tensor::from_vec_i32(
            values(v)
                .iter()
                .map(|x| x.as_i64().expect("an integer value") as i32)
                .collect(),
            &shape(v),
            dev,
        ),
        DType::F16 => Tensor::from_vec(floats(v), &shape(v), dev)?.to_dtype(DType::F16),
    }
}

/// An error naming `what` unless `actual` matches the fixture tensor's shape
/// and values within [`ATOL`]/[`RTOL`].
pub fn expect_close(what: &str, actual: &Tensor, expected: &Value) -> lam::Result<()> {
    expect_close_within(what, actual, expected, ATOL, RTOL)
}

/// [`expect_close`] within `atol`/`rtol`.
pub fn expect_close_within(
    what: &str,
    actual: &Tensor,
    expected: &Value,
    atol: f32,
    rtol: f32,
) -> lam::Result<()> {
    let want = shape(expected);
    if actual.dims() != want {
        return Err(Error::invalid(
            "fixture",
            format!("{what}: shape {:?}, expected {want:?}", actual.dims()),
        ));
    }
    close(what, &actual.to_vec()?, &floats(expected), atol, rtol)
}

/// An error naming `what`, with both sides, unless `actual` and `expected`
/// agree within `atol`/`rtol`.
pub fn close(
    what: &str,
    actual: &[f32],
    expected: &[f32],
    atol: f32,
    rtol: f32,
) -> lam::Result<()> {
    lam::testing::assert_close(actual, expected, atol, rtol).map_err(|e| {
        Error::invalid(
            "fixture",
            format!("{what}: {e}\nactual:   {actual:?}\nexpected: {expected:?}"),
        )
    })
}

/// A case's options (a fixture object such as `case["config"]`), each read
/// with the default PyTorch uses when the case leaves it out.
pub struct Options<'a>(pub &'a Value);

impl Options<'_> {
    pub fn usize(&self, key: &str, default: usize) -> usize {
        self.0
            .get(key)
            .and_then(Value::as_u64)
            .map_or(default, |v| v as usize)
    }

    pub fn bool(&self, key: &str, default: bool) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(default)
    }

    pub fn f32(&self, key: &str, default: f32) -> f32 {
        self.0
            .get(key)
            .and_then(Value::as_f64)
            .map_or(default, |v| v as f32)
    }
}

/// Loads PyTorch's `state_dict` (a fixture object of tensors by name) into
/// `module`: an error unless both have exactly the same names.
pub fn load_state(module: &dyn Module, state: &Value, dev: &Device) -> lam::Result<()> {
    let ours = module.state_dict();
    let mut our_names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    let mut their_names: Vec<&str> = state
        .as_object()
        .expect("state")
        .keys()
        .map(|k| k.as_str())
        .collect();
    our_names.sort_unstable();
    their_names.sort_unstable();
    if our_names != their_names {
        return Err(Error::invalid(
            "fixture",
            format!("state_dict names {our_names:?}, PyTorch has {their_names:?}"),
        ));
    }
    for (name, t) in &ours {
        t.set_data(&tensor(&state[name], t.dtype(), dev)?)
            .map_err(|e| Error::invalid("fixture", format!("loading {name}: {e}")))?;
    }
    Ok(())
}

/// An error unless every parameter of `module` received the gradient that
/// `grads` (a fixture object of tensors by name) holds.
pub fn expect_param_grads(module: &dyn Module, grads: &Value) -> lam::Result<()> {
    for (name, p) in module.named_parameters() {
        let g = p
            .grad()
            .ok_or_else(|| Error::invalid("fixture", format!("{name} received no gradient")))?;
        expect_close(&format!("gradient of {name}"), &g, &grads[&name])?;
    }
    Ok(())
}

fn values(v: &Value) -> &Vec<Value> {
    v["data"].as_array().expect("a fixture tensor has data")
}

/// `doc`'s cases, asserting there are at least `min`.
fn case_list(doc: &Value, file: &str, min: usize) -> Vec<Value> {
    let cases = doc["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("fixture {file} has no cases list"));
    assert!(
        cases.len() >= min,
        "fixture {file} has {} cases, expected at least {min}",
        cases.len()
    );
    cases.clone()
}
