//! Constructors: from host data, constant fills, ranges and the identity
//! (random tensors are in `random.rs`). Shapes are checked: an element count
//! that overflows is an error, never a wrapped size.

use crate::backend::UnaryOp;
use crate::{DType, Device, Error, Layout, Result, Tensor};

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
        Ok(Tensor::from_storage(s, Layout::contiguous(shape), device).with_attained_range(range))
    }

    /// An `F16` tensor holding `data` with `shape` (uploaded as `f32`, in
    /// which every half is exact, and cast on the device).
    pub fn from_f16(data: &[half::f16], shape: &[usize], device: &Device) -> Result<Tensor> {
        check_len("from_f16", data.len(), shape)?;
        let wide: Vec<f32> = data.iter().map(|h| h.to_f32()).collect();
        let s = device.backend().from_f32(&wide)?;
        let layout = Layout::contiguous(shape);
        let half = device.backend().cast((&s, &layout), DType::F16)?;
        Ok(Tensor::from_storage(half, layout, device))
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
            // 0 + (-0) is +0: a value the device fill below cannot make.
            return Tensor::zeros(shape, device)?.neg();
        }
        if value.is_subnormal() {
            // A device may flush subnormal sums to zero (WGSL allows it, and
            // lavapipe from Mesa 26 does): the exact bits go up from the host.
            let numel = crate::layout::checked_numel("full", shape)?;
            return Tensor::from_vec(vec![value; numel], shape, device);
        }
        // Filled on the device (zeros, then + value) rather than uploaded:
        // no host vector to build, and on a GPU no staging copy, for a
        // training loop's constants (the seed of `backward()`).
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
