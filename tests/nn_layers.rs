//! Layer conformance: every layer and activation of `lam::nn`, on every
//! backend.
//!
//! - Known values: `fixtures/nn/*.json`, written by PyTorch in float64 by
//!   `fixtures/make_nn_fixtures.py`. One generic driver builds the layer a
//!   case names, loads PyTorch's `state_dict` into it *by name* (so names,
//!   shapes and buffers must be PyTorch's), runs forward and backward, and
//!   compares the output, the input gradient, every parameter gradient and
//!   every buffer after the step.
//! - Gradient checks of every layer's functional form with respect to the
//!   input and each parameter (central differences, small shapes).
//! - Structure: parameter names, shapes, counts and default initialisation.
//! - Train/eval behaviour of Dropout and BatchNorm.
//! - Bad input: each mistake gives an error naming it, never a panic.
//! - Learning: a small CNN built from these layers learns a toy task.
//! - Windows: unfold, fold and max pooling against naive loops, fold as
//!   unfold's adjoint, and their gradient checks.
//! - Layer norm and batch norm (one fused op each) against their formulas
//!   and gradients in f64.
//! - Convolution (one fused op) against its definition in f64 and the
//!   composed path's gradients.
//!
//! Layout: `known_values` (the fixture driver), `gradients`, `structure`,
//! `behaviour` (train/eval, learning), `bad_input`, `windows`,
//! `layer_norm`, `batch_norm` and `conv`, under `tests/nn_layers/`.

mod common;

#[path = "nn_layers/bad_input.rs"]
mod bad_input;
#[path = "nn_layers/batch_norm.rs"]
mod batch_norm;
#[path = "nn_layers/behaviour.rs"]
mod behaviour;
#[path = "nn_layers/conv.rs"]
mod conv;
#[path = "nn_layers/gradients.rs"]
mod gradients;
#[path = "nn_layers/known_values.rs"]
mod known_values;
#[path = "nn_layers/layer_norm.rs"]
mod layer_norm;
#[path = "nn_layers/structure.rs"]
mod structure;
#[path = "nn_layers/windows.rs"]
mod windows;

use lam::prelude::*;
use lam::testing::{gradcheck, GradCheck};

fn t(data: &[f32], shape: &[usize], dev: &Device) -> Tensor {
    Tensor::from_slice(data, shape, dev).expect("valid test tensor")
}

/// Deterministic values in about [-1, 1) (no generator: tests run in parallel).
fn vals(n: usize, salt: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| 2.0 * lam::rng::uniform01(salt as u64, i) - 1.0)
        .collect()
}

/// Like `vals` but at least 0.1 away from zero (away from activation kinks).
fn vals_off_zero(n: usize, salt: u32) -> Vec<f32> {
    vals(n, salt)
        .into_iter()
        .map(|v| {
            if v.abs() < 0.1 {
                v.signum() * 0.1 + v
            } else {
                v
            }
        })
        .collect()
}

/// Distinct values 0.1 apart in shuffled order (no ties for max pooling).
fn distinct(n: usize, salt: u64) -> Vec<f32> {
    let perm = lam::rng::Generator::new(salt).permutation(n);
    perm.into_iter()
        .map(|p| (p as f32 - n as f32 / 2.0) * 0.1)
        .collect()
}

fn rnd(shape: &[usize], salt: u32, dev: &Device) -> Tensor {
    t(&vals(shape.iter().product(), salt), shape, dev)
}

fn check(f: impl Fn(&[Tensor]) -> lam::Result<Tensor>, inputs: &[Tensor]) -> lam::Result<()> {
    gradcheck(f, inputs, GradCheck::default())
}
