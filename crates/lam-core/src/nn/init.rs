//! Parameter initialisation, as `torch.nn.init`.
//!
//! Two forms of each scheme: one that makes a fresh tensor
//! (`xavier_uniform(shape, gain, device)`, what layer constructors use) and
//! one that overwrites an existing parameter in place, keeping its identity
//! (`xavier_uniform_(&layer.weight, gain)`, what users re-initialising a
//! model call). Random draws come from the current generator
//! ([`crate::rng::current`]: the default one behind [`crate::manual_seed`],
//! or the one a [`crate::rng::with_generator`] scope names — how a model is
//! built reproducibly on a thread of its own), so a seed fixes every
//! layer's initial weights on every backend — though not PyTorch's numbers,
//! whose generator differs.
//!
//! Fans follow `torch.nn.init._calculate_fan_in_and_fan_out`: for a weight of
//! shape `[out, in, k...]`, `fan_in = in · Πk` and `fan_out = out · Πk`.
//! [`calculate_gain`] is `torch.nn.init.calculate_gain`.

use crate::{no_grad, Device, Error, Result, Tensor};

/// The non-linearity a layer's output feeds, for [`calculate_gain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nonlinearity {
    /// Identity (also PyTorch's `conv1d`, `conv2d`, ... names): gain 1.
    Linear,
    /// Gain 1.
    Sigmoid,
    /// Gain 5/3.
    Tanh,
    /// Gain √2.
    Relu,
    /// Gain √(2 / (1 + slope²)); PyTorch's default slope is 0.01.
    LeakyRelu(f32),
    /// Gain 3/4.
    Selu,
}

/// Which fan [`kaiming_uniform`] and [`kaiming_normal`] preserve the variance of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the variance of activations in the forward pass (PyTorch's default).
    FanIn,
    /// Preserve the variance of gradients in the backward pass.
    FanOut,
}

/// The recommended gain for a non-linearity (`torch.nn.init.calculate_gain`).
pub fn calculate_gain(nonlinearity: Nonlinearity) -> f32 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f32.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight of `shape` (rank ≥ 2): `[out, in, k...]`.
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::RankMismatch {
            op: "init fans",
            expected: "at least 2 ([out, in, ...])".into(),
            found: shape.len(),
            shape: shape.to_vec(),
        });
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

/// PyTorch's default for `Linear` and `Conv*` weights and biases:
/// `U(-1/√fan_in, 1/√fan_in)`. (For weights this is exactly
/// `kaiming_uniform` with `LeakyRelu(√5)`, the form PyTorch writes it in.)
pub fn default_uniform(shape: &[usize], fan_in: usize, device: &Device) -> Result<Tensor> {
    if fan_in == 0 {
        return Err(Error::invalid(
            "init",
            format!("fan_in is 0 for a parameter of shape {shape:?}"),
        ));
    }
    let bound = 1.0 / (fan_in as f32).sqrt();
    Tensor::uniform(shape, -bound, bound, device)
}

/// Glorot uniform: `U(-a, a)` with `a = gain · √(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(shape: &[usize], gain: f32, device: &Device) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(shape)?;
    let std = gain * (2.0 / nonzero(fan_in + fan_out, shape)? as f32).sqrt();
    let bound = 3f32.sqrt() * std;
    Tensor::uniform(shape, -bound, bound, device)
}

/// Glorot normal: `N(0, std²)` with `std = gain · √(2 / (fan_in + fan_out))`.
pub fn xavier_normal(shape: &[usize], gain: f32, device: &Device) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(shape)?;
    let std = gain * (2.0 / nonzero(fan_in + fan_out, shape)? as f32).sqrt();
    Tensor::normal(shape, 0.0, std, device)
}

/// He uniform: `U(-b, b)` with `b = gain · √(3 / fan)`, the gain from
/// `nonlinearity` (PyTorch's defaults: `FanIn`, `LeakyRelu(0.0)`).
pub fn kaiming_uniform(
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    device: &Device,
) -> Result<Tensor> {
    let std = kaiming_std(shape, mode, nonlinearity)?;
    let bound = 3f32.sqrt() * std;
    Tensor::uniform(shape, -bound, bound, device)
}

/// He normal: `N(0, std²)` with `std = gain / √fan`.
pub fn kaiming_normal(
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    device: &Device,
) -> Result<Tensor> {
    let std = kaiming_std(shape, mode, nonlinearity)?;
    Tensor::normal(shape, 0.0, std, device)
}

/// Overwrites `param` with [`xavier_uniform`] values (`nn.init.xavier_uniform_`).
pub fn xavier_uniform_(param: &Tensor, gain: f32) -> Result<()> {
    refill(param, |s, d| xavier_uniform(s, gain, d))
}

/// Overwrites `param` with [`xavier_normal`] values (`nn.init.xavier_normal_`).
pub fn xavier_normal_(param: &Tensor, gain: f32) -> Result<()> {
    refill(param, |s, d| xavier_normal(s, gain, d))
}

/// Overwrites `param` with [`kaiming_uniform`] values (`nn.init.kaiming_uniform_`).
pub fn kaiming_uniform_(param: &Tensor, mode: FanMode, nonlinearity: Nonlinearity) -> Result<()> {
    refill(param, |s, d| kaiming_uniform(s, mode, nonlinearity, d))
}

/// Overwrites `param` with [`kaiming_normal`] values (`nn.init.kaiming_normal_`).
pub fn kaiming_normal_(param: &Tensor, mode: FanMode, nonlinearity: Nonlinearity) -> Result<()> {
    refill(param, |s, d| kaiming_normal(s, mode, nonlinearity, d))
}

/// Overwrites `param` with `U(low, high)` values (`nn.init.uniform_`).
pub fn uniform_(param: &Tensor, low: f32, high: f32) -> Result<()> {
    refill(param, |s, d| Tensor::uniform(s, low, high, d))
}

/// Overwrites `param` with `N(mean, std²)` values (`nn.init.normal_`).
pub fn normal_(param: &Tensor, mean: f32, std: f32) -> Result<()> {
    refill(param, |s, d| Tensor::normal(s, mean, std, d))
}

/// Overwrites every element of `param` with `value` (`nn.init.constant_`).
pub fn constant_(param: &Tensor, value: f32) -> Result<()> {
    refill(param, |s, d| Tensor::full(s, value, d))
}

/// The standard deviation of the Kaiming schemes: `gain / √fan`.
fn kaiming_std(shape: &[usize], mode: FanMode, nonlinearity: Nonlinearity) -> Result<f32> {
    let (fan_in, fan_out) = fans(shape)?;
    let fan = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    Ok(calculate_gain(nonlinearity) / (nonzero(fan, shape)? as f32).sqrt())
}

fn nonzero(fan: usize, shape: &[usize]) -> Result<usize> {
    if fan == 0 {
        return Err(Error::invalid(
            "init",
            format!("a fan of 0 for a parameter of shape {shape:?}"),
        ));
    }
    Ok(fan)
}

/// Replaces `param`'s data with `make(shape, device)`, off the tape.
fn refill(param: &Tensor, make: impl FnOnce(&[usize], &Device) -> Result<Tensor>) -> Result<()> {
    no_grad(|| param.set_data(&make(param.dims(), &param.device())?))
}
