//! Random tensors. Each constructor has two forms, as PyTorch's
//! `torch.randn(shape)` and `torch.randn(shape, generator=g)`:
//! `Tensor::randn(shape, dev)` draws its seed from the current generator
//! ([`rng::current`]: a [`rng::with_generator`] scope's, else the default
//! one behind [`crate::manual_seed`]), and `Tensor::randn_with(shape, dev,
//! &g)` from `g`. [`Tensor::random_seeded`] takes the seed itself. Either
//! way the numbers are a pure function of (seed, element index), identical
//! on every backend (Backend `fill_random`), and a call that returns an
//! error draws nothing.

use crate::backend::Distribution;
use crate::rng::{self, Generator};
use crate::{DType, Device, Error, Layout, Result, Tensor};

impl Tensor {
    /// Uniform in `[0, 1)`.
    pub fn rand(shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::rand_with(shape, device, &rng::current())
    }

    /// Uniform in `[0, 1)`, drawn from `generator`.
    pub fn rand_with(shape: &[usize], device: &Device, generator: &Generator) -> Result<Tensor> {
        Tensor::uniform_with(shape, 0.0, 1.0, device, generator)
    }

    /// Standard normal.
    pub fn randn(shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::randn_with(shape, device, &rng::current())
    }

    /// Standard normal, drawn from `generator`.
    pub fn randn_with(shape: &[usize], device: &Device, generator: &Generator) -> Result<Tensor> {
        Tensor::normal_with(shape, 0.0, 1.0, device, generator)
    }

    /// Uniform in `[low, high)`.
    pub fn uniform(shape: &[usize], low: f32, high: f32, device: &Device) -> Result<Tensor> {
        Tensor::uniform_with(shape, low, high, device, &rng::current())
    }

    /// Uniform in `[low, high)`, drawn from `generator`.
    pub fn uniform_with(
        shape: &[usize],
        low: f32,
        high: f32,
        device: &Device,
        generator: &Generator,
    ) -> Result<Tensor> {
        random(shape, Distribution::Uniform { low, high }, device, || {
            generator.next_seed()
        })
    }

    /// Normal with `mean` and `std`.
    pub fn normal(shape: &[usize], mean: f32, std: f32, device: &Device) -> Result<Tensor> {
        Tensor::normal_with(shape, mean, std, device, &rng::current())
    }

    /// Normal with `mean` and `std`, drawn from `generator`.
    pub fn normal_with(
        shape: &[usize],
        mean: f32,
        std: f32,
        device: &Device,
        generator: &Generator,
    ) -> Result<Tensor> {
        random(shape, Distribution::Normal { mean, std }, device, || {
            generator.next_seed()
        })
    }

    /// Random numbers from `dist` fixed entirely by `seed`.
    pub fn random_seeded(
        shape: &[usize],
        dist: Distribution,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        random(shape, dist, device, || seed)
    }

    /// Uniform integers in `[low, high)` as an `I32` tensor.
    pub fn randint(low: i32, high: i32, shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::randint_with(low, high, shape, device, &rng::current())
    }

    /// Uniform integers in `[low, high)` as an `I32` tensor, drawn from `generator`.
    pub fn randint_with(
        low: i32,
        high: i32,
        shape: &[usize],
        device: &Device,
        generator: &Generator,
    ) -> Result<Tensor> {
        if high <= low {
            return Err(Error::invalid(
                "randint",
                format!("empty range {low}..{high}"),
            ));
        }
        let span = (high - low) as f32;
        // floor(u * span) < span because u < 1 with 24-bit resolution.
        let u = Tensor::rand_with(shape, device, generator)?;
        let t = u.mul_scalar(span)?.floor_to_i32()?.add_scalar_i32(low)?;
        Ok(t.with_int_range(Some((low, high - 1))))
    }

    /// `1.0` with probability `p`, else `0.0`.
    pub fn bernoulli(shape: &[usize], p: f32, device: &Device) -> Result<Tensor> {
        Tensor::bernoulli_with(shape, p, device, &rng::current())
    }

    /// `1.0` with probability `p`, else `0.0`, drawn from `generator`.
    pub fn bernoulli_with(
        shape: &[usize],
        p: f32,
        device: &Device,
        generator: &Generator,
    ) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "bernoulli",
                format!("p must be in [0, 1], found {p}"),
            ));
        }
        Tensor::rand_with(shape, device, generator)?.lt_scalar(p)
    }

    fn floor_to_i32(&self) -> Result<Tensor> {
        // Non-negative inputs only (randint): truncation is floor there.
        self.to_dtype(DType::I32)
    }

    fn add_scalar_i32(&self, c: i32) -> Result<Tensor> {
        if c == 0 {
            return Ok(self.clone());
        }
        self.to_dtype(DType::F32)?
            .add_scalar(c as f32)?
            .to_dtype(DType::I32)
    }
}

/// A tensor of `dist` numbers from the seed `seed()` gives, called only
/// once the arguments are known to be valid.
fn random(
    shape: &[usize],
    dist: Distribution,
    device: &Device,
    seed: impl FnOnce() -> u64,
) -> Result<Tensor> {
    let ok = match dist {
        Distribution::Uniform { low, high } => low.is_finite() && high.is_finite() && low <= high,
        Distribution::Normal { mean, std } => mean.is_finite() && std.is_finite() && std >= 0.0,
    };
    if !ok {
        return Err(Error::invalid(
            "random",
            format!("invalid distribution {dist:?}"),
        ));
    }
    let n = crate::layout::checked_numel("random", shape)?;
    if n > u32::MAX as usize / 2 {
        return Err(Error::invalid(
            "random",
            format!("{n} elements exceed the generator's 2^31 range"),
        ));
    }
    let s = device.backend().fill_random(n, dist, seed())?;
    Ok(Tensor::from_storage(s, Layout::contiguous(shape), device))
}
