//! Reading `fixtures/random/`: the flat `f32` and `i32` arrays of
//! `data.safetensors` and the per-family case lists `<family>.json` (written
//! by `fixtures/make_random_cases.py`). A case names an array as
//! `{"f": [offset, shape]}` (float32) or `{"i": [offset, shape]}` (int32).
//!
//! The safetensors file is parsed here by hand (an 8-byte header length, a
//! JSON header, raw little-endian data) so the oracle's data does not pass
//! through lam's own checkpoint loader.
//!
//! The committed files are built into the test binary. `LAM_DIFF_DIR`
//! names another directory of them to read at run time instead: cases the
//! script wrote with another seed (`make_random_cases.py --seed N --out
//! DIR`), a deeper search than the committed ones.

use std::sync::OnceLock;

use lam::prelude::*;
use serde_json::Value;

const DATA: &[u8] = include_bytes!("../../fixtures/random/data.safetensors");

const FAMILIES: [(&str, &str); 12] = [
    ("unary", include_str!("../../fixtures/random/unary.json")),
    ("binary", include_str!("../../fixtures/random/binary.json")),
    ("reduce", include_str!("../../fixtures/random/reduce.json")),
    (
        "softmax",
        include_str!("../../fixtures/random/softmax.json"),
    ),
    ("matmul", include_str!("../../fixtures/random/matmul.json")),
    ("view", include_str!("../../fixtures/random/view.json")),
    (
        "creation",
        include_str!("../../fixtures/random/creation.json"),
    ),
    ("index", include_str!("../../fixtures/random/index.json")),
    ("layers", include_str!("../../fixtures/random/layers.json")),
    (
        "sequence",
        include_str!("../../fixtures/random/sequence.json"),
    ),
    ("loss", include_str!("../../fixtures/random/loss.json")),
    ("optim", include_str!("../../fixtures/random/optim.json")),
];

/// Every stored array.
pub struct Data {
    f32: Vec<f32>,
    i32: Vec<i32>,
}

/// One stored array, by element type.
#[derive(Clone, Debug)]
pub enum Array {
    F(Vec<f32>, Vec<usize>),
    I(Vec<i32>, Vec<usize>),
}

impl Array {
    pub fn shape(&self) -> &[usize] {
        match self {
            Array::F(_, s) | Array::I(_, s) => s,
        }
    }

    /// The values as floats (int32 values are exact up to 2^24).
    pub fn floats(&self) -> Vec<f32> {
        match self {
            Array::F(v, _) => v.clone(),
            Array::I(v, _) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The array as a tensor on `dev` (`F32` or `I32`).
    pub fn tensor(&self, dev: &Device) -> lam::Result<Tensor> {
        match self {
            Array::F(v, s) => Tensor::from_slice(v, s, dev),
            Array::I(v, s) => Tensor::from_vec_i32(v.clone(), s, dev),
        }
    }
}

/// The parsed data file (once per test binary).
pub fn data() -> &'static Data {
    static DATA_ONCE: OnceLock<Data> = OnceLock::new();
    DATA_ONCE.get_or_init(|| match other_dir() {
        Some(dir) => parse_safetensors(&read(&dir.join("data.safetensors"))),
        None => parse_safetensors(DATA),
    })
}

/// The directory `LAM_DIFF_DIR` names, if set.
fn other_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("LAM_DIFF_DIR").map(Into::into)
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("LAM_DIFF_DIR: {}: {e}", path.display()))
}

/// The cases of `family`.
pub fn cases(family: &str) -> Vec<Value> {
    let text = FAMILIES
        .iter()
        .find(|(name, _)| *name == family)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no fixture family {family}"));
    let other = other_dir().map(|dir| read(&dir.join(format!("{family}.json"))));
    let text = match &other {
        Some(bytes) => std::str::from_utf8(bytes).expect("fixture is UTF-8"),
        None => text,
    };
    let doc: Value = serde_json::from_str(text).expect("fixture is valid JSON");
    doc["cases"].as_array().expect("a cases list").clone()
}

/// The array a case entry refers to.
pub fn array(entry: &Value) -> Array {
    let data = data();
    let (key, r) = if let Some(r) = entry.get("f") {
        ("f", r)
    } else if let Some(r) = entry.get("i") {
        ("i", r)
    } else {
        panic!("not an array reference: {entry}")
    };
    let off = r[0].as_u64().expect("offset") as usize;
    let shape: Vec<usize> = r[1]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let n: usize = shape.iter().product();
    match key {
        "f" => Array::F(data.f32[off..off + n].to_vec(), shape),
        _ => Array::I(data.i32[off..off + n].to_vec(), shape),
    }
}

fn parse_safetensors(bytes: &[u8]) -> Data {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header JSON");
    let body = &bytes[8 + n..];
    let span = |name: &str| {
        let o = &header[name]["data_offsets"];
        let (a, b) = (o[0].as_u64().expect("start"), o[1].as_u64().expect("end"));
        &body[a as usize..b as usize]
    };
    let words = |s: &[u8]| -> Vec<[u8; 4]> {
        s.chunks_exact(4)
            .map(|c| c.try_into().expect("4 bytes"))
            .collect()
    };
    Data {
        f32: words(span("f32"))
            .into_iter()
            .map(f32::from_le_bytes)
            .collect(),
        i32: words(span("i32"))
            .into_iter()
            .map(i32::from_le_bytes)
            .collect(),
    }
}

/// Typed access to a case's `args` object.
pub struct Args<'a>(pub &'a Value);

impl Args<'_> {
    fn get(&self, key: &str) -> &Value {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("missing argument {key} in {}", self.0))
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_null())
    }

    pub fn f32(&self, key: &str) -> f32 {
        float(self.get(key))
    }

    pub fn bool(&self, key: &str) -> bool {
        self.get(key).as_bool().expect("bool")
    }

    pub fn usize(&self, key: &str) -> usize {
        self.get(key).as_u64().expect("usize") as usize
    }

    pub fn isize(&self, key: &str) -> isize {
        self.get(key).as_i64().expect("isize") as isize
    }

    pub fn i32(&self, key: &str) -> i32 {
        self.get(key).as_i64().expect("i32") as i32
    }

    pub fn str(&self, key: &str) -> &str {
        self.get(key).as_str().expect("string")
    }

    pub fn usizes(&self, key: &str) -> Vec<usize> {
        list(self.get(key), |v| v.as_u64().expect("usize") as usize)
    }

    pub fn isizes(&self, key: &str) -> Vec<isize> {
        list(self.get(key), |v| v.as_i64().expect("isize") as isize)
    }

    pub fn opt_usize(&self, key: &str) -> Option<usize> {
        self.0.get(key).and_then(|v| v.as_u64()).map(|v| v as usize)
    }
}

/// A float argument; non-finite values are stored as "nan", "inf", "-inf".
pub fn float(v: &Value) -> f32 {
    match v {
        Value::String(s) => match s.as_str() {
            "nan" => f32::NAN,
            "inf" => f32::INFINITY,
            "-inf" => f32::NEG_INFINITY,
            other => panic!("not a float: {other}"),
        },
        v => v.as_f64().expect("float") as f32,
    }
}

pub fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array().expect("list").iter().map(f).collect()
}
