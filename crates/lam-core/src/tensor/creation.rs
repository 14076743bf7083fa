//! Constructors: from host data, constant fills, ranges, identity, and seeded
//! random tensors. Random constructors without an explicit seed draw one from
//! the global generator ([`crate::manual_seed`]); the `_seeded` forms take it
//! directly. Either way the numbers are identical on every backend.

use crate::backend::{Distribution, UnaryOp};
use crate::{rng, DType, Device, Error, Layout, Result, Tensor};

impl Tensor {
    /// A tensor holding `data` with `shape` (row-major).
    pub fn from_vec(data: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::from_slice(&data, shape, device)
    }

    /// A tensor holding a copy of `data` with `shape` (row-major).
    pub fn from_slice(data: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
        check_len("from_slice", data.len(), shape)?;
        let s = device.backend().from_f32(data)?;
        Ok(Tensor::from_storage(s, Layout::contiguous(shape), device))
    }

    /// An `I32` tensor (labels, indices) holding `data` with `shape`.
    pub fn from_vec_i32(data: Vec<i32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        check_len("from_vec_i32", data.len(), shape)?;
        let s = device.backend().from_i32(&data)?;
        let range = data
            .iter()
            .min()
            .zip(data.iter().max())
            .map(|(&lo, &hi)| (lo, hi));
        Ok(Tensor::from_storage(s, Layout::contiguous(shape), device).with_int_range(range))
    }

    /// A 0-d tensor holding `value`.
    pub fn scalar(value: f32, device: &Device) -> Result<Tensor> {
        Tensor::from_slice(&[value], &[], device)
    }

    /// All zeros.
    pub fn zeros(shape: &[usize], device: &Device) -> Result<Tensor> {
        let s = device.backend().zeros(numel("zeros", shape)?, DType::F32)?;
        Ok(Tensor::from_storage(s, Layout::contiguous(shape), device))
    }

    /// All ones.
    pub fn ones(shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::full(shape, 1.0, device)
    }

    /// Every element `value`.
    pub fn full(shape: &[usize], value: f32, device: &Device) -> Result<Tensor> {
        if value.to_bits() == (-0.0f32).to_bits() {
            // 0 + (-0) is +0: the one value the device fill below cannot make.
            return Tensor::zeros(shape, device)?.neg();
        }
        // Filled on the device (zeros, then + value) rather than uploaded:
        // a GPU upload needs a new buffer each time, while these two ops
        // take pooled ones, so a training loop's constants (the seed of
        // `backward()`) allocate nothing once it is warm.
        let zeros = Tensor::zeros(shape, device)?;
        if value == 0.0 {
            return Ok(zeros);
        }
        let s = device.backend().unary(
            UnaryOp::AddScalar(value),
            (&zeros.storage(), zeros.layout()),
        )?;
        Ok(Tensor::from_storage(s, Layout::contiguous(shape), device))
    }

    /// Zeros with `other`'s shape and device.
    pub fn zeros_like(other: &Tensor) -> Result<Tensor> {
        Tensor::zeros(other.dims(), &other.device())
    }

    /// Ones with `other`'s shape and device.
    pub fn ones_like(other: &Tensor) -> Result<Tensor> {
        Tensor::ones(other.dims(), &other.device())
    }

    /// `start, start + step, ...` up to (excluding) `end`, like `torch.arange`.
    pub fn arange(start: f32, end: f32, step: f32, device: &Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid(
                "arange",
                format!("need finite bounds and a non-zero step, found {start}..{end} step {step}"),
            ));
        }
        if (end - start) * step < 0.0 {
            return Err(Error::invalid(
                "arange",
                format!("step {step} points away from {end} (from {start})"),
            ));
        }
        // In f64, so the count of a wide range is not an f32 rounding away.
        let count = ((f64::from(end) - f64::from(start)) / f64::from(step))
            .ceil()
            .max(0.0);
        if count > crate::layout::MAX_NUMEL as f64 {
            return Err(Error::invalid(
                "arange",
                format!("{start}..{end} step {step} has {count:e} elements, more than memory can address"),
            ));
        }
        let n = count as usize;
        let mut data = Vec::new();
        data.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
            op: "arange",
            bytes: n as u64 * 4,
        })?;
        data.extend((0..n).map(|i| start + i as f32 * step));
        Tensor::from_vec(data, &[n], device)
    }

    /// The `n × n` identity matrix, made on the device: zeros, then ones
    /// copied onto the diagonal (a strided view of stride `n + 1`), so no
    /// `n²` host buffer is built or uploaded.
    pub fn eye(n: usize, device: &Device) -> Result<Tensor> {
        let out = Tensor::zeros(&[n, n], device)?;
        if n == 0 {
            return Ok(out);
        }
        let ones = Tensor::ones(&[n], device)?;
        let diagonal = Layout {
            shape: vec![n],
            strides: vec![n + 1],
            offset: 0,
        };
        device.backend().copy(
            (&ones.storage(), ones.layout()),
            (&out.storage(), &diagonal),
        )?;
        Ok(out)
    }

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
        let n = numel("random", shape)?;
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

    /// This tensor converted to `dtype` (float to int truncates toward zero).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let s = self.storage();
        let out = self.backend().cast((&s, self.layout()), dtype)?;
        Ok(Tensor::constant(
            out,
            Layout::contiguous(self.dims()),
            &self.device(),
        ))
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

fn numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    crate::layout::checked_numel(op, shape)
}

fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let expected = numel(op, shape)?;
    if len != expected {
        return Err(Error::LengthMismatch {
            op,
            len,
            shape: shape.to_vec(),
            expected,
        });
    }
    Ok(())
}
