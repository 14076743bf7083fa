//! Helpers shared by lam-train's integration tests: the CPU device, scratch
//! directories, fixture files and a small model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use lam::nn::{Linear, Module};
use lam::prelude::*;
use serde_json::Value;

pub fn cpu() -> Device {
    Device::cpu()
}

/// The CPU, then the best GPU adapter when there is one (lavapipe in CI).
/// With `LAM_REQUIRE_GPU=1` a missing adapter fails the test; otherwise
/// the GPU half is skipped with a notice. `LAM_ADAPTER` picks the adapter.
pub fn devices() -> Vec<Device> {
    let mut out = vec![Device::cpu()];
    match Device::gpu() {
        Ok(d) => out.push(d),
        Err(e) if std::env::var("LAM_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("LAM_REQUIRE_GPU=1 but no GPU adapter works: {e}")
        }
        Err(e) => eprintln!("skipped the GPU: {e}; set LAM_REQUIRE_GPU=1 to make this fail"),
    }
    out
}

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lam-train-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture JSON file under `fixtures/`.
pub fn fixture(rel: &str) -> Value {
    let path = repo_root().join("fixtures").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| match x.as_str() {
            Some("inf") => f64::INFINITY,
            Some("-inf") => f64::NEG_INFINITY,
            _ => x.as_f64().expect("number"),
        })
        .collect()
}

pub fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

pub fn i32s(v: &Value) -> Vec<i32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("int") as i32)
        .collect()
}

pub fn assert_close(name: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * (1.0 + want.abs()),
        "{name}: got {got}, want {want}"
    );
}

pub fn assert_all_close(name: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if w.is_infinite() {
            assert_eq!(g, w, "{name}[{i}]");
        } else {
            assert_close(&format!("{name}[{i}]"), *g, *w, tol);
        }
    }
}

/// `in → hidden → classes` with ReLU.
#[derive(Module)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    pub fn new(inputs: usize, hidden: usize, classes: usize, dev: &Device) -> lam::Result<Mlp> {
        Ok(Mlp {
            fc1: Linear::new(inputs, hidden, dev)?,
            fc2: Linear::new(hidden, classes, dev)?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> lam::Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

/// Every parameter's bits, for exact comparisons.
pub fn weight_bits(m: &dyn Module) -> Vec<(String, Vec<u32>)> {
    m.state_dict()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.to_vec()
                    .expect("read")
                    .into_iter()
                    .map(f32::to_bits)
                    .collect(),
            )
        })
        .collect()
}

/// Three Gaussian blobs in 2-d: an easy, seeded classification problem.
pub fn blobs(n_per_class: usize, seed: u64) -> lam_train::data::TensorDataset {
    let g = lam::rng::Generator::new(seed);
    let centres = [(-2.0f32, 0.0f32), (2.0, 0.0), (0.0, 2.5)];
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (c, (cx, cy)) in centres.iter().enumerate() {
        for _ in 0..n_per_class {
            x.push(cx + (g.uniform() as f32 - 0.5) * 1.5);
            x.push(cy + (g.uniform() as f32 - 0.5) * 1.5);
            y.push(c as i32);
        }
    }
    lam_train::data::TensorDataset::from_classes(x, &[2], y).expect("blobs")
}
