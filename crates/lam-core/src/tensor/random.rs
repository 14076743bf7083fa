//! Random tensors. Constructors without an explicit seed draw one from the
//! global generator ([`crate::manual_seed`]); the `_seeded` form takes it
//! directly. Either way the numbers are a pure function of (seed, element
//! index), identical on every backend (Backend `fill_random`).

use crate::backend::Distribution;
use crate::{rng, DType, Device, Error, Layout, Result, Tensor};

impl Tensor {
    /// Uniform in `[0, 1)`.
    pub fn rand(shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::uniform(shape, 0.0, 1.0, device)
    }

    /// Standard normal.
    pub fn randn(shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::normal(shape, 0.0, 1.0, device)
    }

    /// Uniform in `[low, high)`.
    pub fn uniform(shape: &[usize], low: f32, high: f32, device: &Device) -> Result<Tensor> {
        Tensor::random_seeded(
            shape,
            Distribution::Uniform { low, high },
            rng::next_seed(),
            device,
        )
    }

    /// Normal with `mean` and `std`.
    pub fn normal(shape: &[usize], mean: f32, std: f32, device: &Device) -> Result<Tensor> {
        Tensor::random_seeded(
            shape,
            Distribution::Normal { mean, std },
            rng::next_seed(),
            device,
        )
    }

    /// Random numbers from `dist` fixed entirely by `seed`.
    pub fn random_seeded(
        shape: &[usize],
        dist: Distribution,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        let ok = match dist {
            Distribution::Uniform { low, high } => {
                low.is_finite() && high.is_finite() && low <= high
            }
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
        let s = device.backend().fill_random(n, dist, seed)?;
        Ok(Tensor::from_storage(s, Layout::contiguous(shape), device))
    }

    /// Uniform integers in `[low, high)` as an `I32` tensor.
    pub fn randint(low: i32, high: i32, shape: &[usize], device: &Device) -> Result<Tensor> {
        if high <= low {
            return Err(Error::invalid(
                "randint",
                format!("empty range {low}..{high}"),
            ));
        }
        let span = (high - low) as f32;
        // floor(u * span) < span because u < 1 with 24-bit resolution.
        let u = Tensor::uniform(shape, 0.0, 1.0, device)?;
        let t = u.mul_scalar(span)?.floor_to_i32()?.add_scalar_i32(low)?;
        Ok(t.with_int_range(Some((low, high - 1))))
    }

    /// `1.0` with probability `p`, else `0.0`.
    pub fn bernoulli(shape: &[usize], p: f32, device: &Device) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "bernoulli",
                format!("p must be in [0, 1], found {p}"),
            ));
        }
        Tensor::rand(shape, device)?.lt_scalar(p)
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
