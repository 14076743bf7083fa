//! Sequence-layer conformance: `RNN`, `LSTM`, `GRU`, `MultiheadAttention`
//! and `TransformerEncoderLayer`, on every backend.
//!
//! - Known values: `fixtures/sequence/*.json`, written by PyTorch in float64
//!   by `fixtures/make_sequence_fixtures.py`. One driver builds the layer a
//!   case names, loads PyTorch's `state_dict` into it *by name*, runs the
//!   forward pass with the case's inputs (initial states, masks), and
//!   compares every result, every input gradient and every parameter
//!   gradient.
//! - Gradient checks: the cell functions with respect to every argument,
//!   and each layer with respect to its input, its initial state and a
//!   parameter (central differences, tiny shapes).
//! - Structure and behaviour: parameter names, shapes and initialisation;
//!   state shapes; `batch_first` and unbatched equivalence; dropout between
//!   layers in training mode only; masks; a small GRU that learns.
//! - Bad input: each mistake gives an error naming it, never a panic.
//! - Fused gates: `lstm_gates` and `gru_gates` against the formulas in f64
//!   and finite differences, and the layers (one tape op per sequence)
//!   against the step-by-step cell functions.
//!
//! Shapes are tiny because the GPU runs are on software rasterisers.

mod common;

#[path = "nn_sequence/bad_input.rs"]
mod bad_input;
#[path = "nn_sequence/behaviour.rs"]
mod behaviour;
#[path = "nn_sequence/fused_gates.rs"]
mod fused_gates;
#[path = "nn_sequence/gradients.rs"]
mod gradients;
#[path = "nn_sequence/known_values.rs"]
mod known_values;

use lam::nn::Module;
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

fn rnd(shape: &[usize], salt: u32, dev: &Device) -> Tensor {
    t(&vals(shape.iter().product(), salt), shape, dev)
}

fn check(f: impl Fn(&[Tensor]) -> lam::Result<Tensor>, inputs: &[Tensor]) -> lam::Result<()> {
    gradcheck(f, inputs, GradCheck::default())
}

/// The parameter `name` of `m`.
fn param(m: &dyn Module, name: &str) -> Tensor {
    m.named_parameters()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// Gradient check of `f` (which reads the module's parameters) with respect
/// to the module parameter `name`, perturbing it in place with `set_data`:
/// `gradcheck` for parameters a layer owns.
fn param_check(m: &dyn Module, name: &str, f: impl Fn() -> lam::Result<Tensor>) -> lam::Result<()> {
    let tol = GradCheck::default();
    let p = param(m, name);
    m.zero_grad();
    let out = f()?;
    let weights: Vec<f32> = (0..out.numel())
        .map(|i| 0.5 + lam::rng::uniform01(777, i as u32))
        .collect();
    let w = Tensor::from_vec(weights, out.dims(), &out.device())?;
    out.mul(&w)?.sum_all()?.backward()?;
    let analytic = p
        .grad()
        .ok_or_else(|| Error::invalid("param_check", format!("{name} received no gradient")))?
        .to_vec()?;
    let base = p.to_vec()?;
    let scalar = || -> lam::Result<f64> { no_grad(|| Ok(f()?.mul(&w)?.sum_all()?.item()? as f64)) };
    let set = |v: Vec<f32>| p.set_data(&Tensor::from_vec(v, p.dims(), &p.device())?);
    for i in 0..base.len() {
        let mut v = base.clone();
        v[i] += tol.eps;
        set(v.clone())?;
        let plus = scalar()?;
        v[i] -= 2.0 * tol.eps;
        set(v)?;
        let minus = scalar()?;
        set(base.clone())?;
        let numeric = (plus - minus) / (2.0 * tol.eps as f64);
        let a = analytic[i] as f64;
        let allowed = tol.atol as f64 + tol.rtol as f64 * a.abs().max(numeric.abs());
        if (a - numeric).abs() > allowed || !a.is_finite() {
            return Err(Error::Autograd(format!(
                "param_check: {name} element {i}: analytic {a:.6} vs numeric {numeric:.6}"
            )));
        }
    }
    m.zero_grad();
    Ok(())
}

/// Sets every parameter of `m` to deterministic values in about
/// `[-scale, scale)` (LayerNorm scales around 1), so a test does not depend
/// on the global generator, which tests running in parallel share.
fn fill_params(m: &dyn Module, salt: u32, scale: f32) -> lam::Result<()> {
    for (k, (name, p)) in m.named_parameters().into_iter().enumerate() {
        let v: Vec<f32> = vals(p.numel(), salt * 100 + k as u32)
            .into_iter()
            .map(|x| {
                if name.contains("norm") && name.ends_with("weight") {
                    1.0 + 0.5 * x
                } else {
                    scale * x
                }
            })
            .collect();
        p.set_data(&Tensor::from_vec(v, p.dims(), &p.device())?)?;
    }
    Ok(())
}

/// Copies every state_dict entry of `from` into `to` (same architecture).
fn copy_state(from: &dyn Module, to: &dyn Module) -> lam::Result<()> {
    for ((n1, a), (n2, b)) in from.state_dict().iter().zip(to.state_dict()) {
        assert_eq!(n1, &n2, "state_dict order");
        b.set_data(a)?;
    }
    Ok(())
}
