//! max_pool and max_pool_grad over `[N, C, H, W]` images (max_pool.wgsl):
//! each window's maximum and winning tap in one pass, and the gradient as a
//! gather (one invocation per pixel over the windows whose winning tap
//! reads it), deterministic without atomics. Inputs are strided 4-d views,
//! so a transposed image or a permuted gradient needs no copy first.

use std::sync::Arc;

use lam_core::backend::{View, WindowGeometry};
use lam_core::{DType, Result, Storage};

use super::window::{params, strides4};
use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{MAX_POOL, MAX_POOL_GRAD};
use crate::params::{to_u32, WindowParams};

/// (`[N, C, OH, OW]` maxima, `I32` winning taps) of `src: [N, C, H, W]`.
pub(crate) fn max_pool(
    gpu: &Arc<Gpu>,
    src: View,
    g: &WindowGeometry,
) -> Result<(Storage, Storage)> {
    let (s, l) = input(gpu, "max_pool", src, Some(DType::F32))?;
    l.expect_shape("max_pool", "input", &g.image_shape())?;
    let numel = g.out_shape().iter().product();
    let p = WindowParams {
        pad_bits: f32::NEG_INFINITY.to_bits(),
        ..params("max_pool", g, l, numel)?
    };
    let values = output(gpu, "max_pool", numel, DType::F32)?;
    let taps = output(gpu, "max_pool", numel, DType::I32)?;
    gpu.dispatch(
        MAX_POOL,
        &[],
        bytemuck::bytes_of(&p),
        &[s.buffer(), values.buffer(), taps.buffer()],
        grid_for("max_pool", numel)?,
    )?;
    Ok((values.into_storage(), taps.into_storage()))
}

/// `[N, C, H, W]`: each window's `grad` added into the pixel its tap reads.
pub(crate) fn max_pool_grad(
    gpu: &Arc<Gpu>,
    grad: View,
    taps: View,
    g: &WindowGeometry,
) -> Result<Storage> {
    const OP: &str = "max_pool_grad";
    let (s, l) = input(gpu, OP, grad, Some(DType::F32))?;
    let (t, tl) = input(gpu, OP, taps, Some(DType::I32))?;
    l.expect_shape(OP, "gradient", &g.out_shape())?;
    tl.expect_shape(OP, "taps", &g.out_shape())?;
    let numel = g.image_shape().iter().product();
    let p = WindowParams {
        t_offset: to_u32(OP, tl.offset)?,
        t_strides: strides4(OP, tl)?,
        ..params(OP, g, l, numel)?
    };
    let out = output(gpu, OP, numel, DType::F32)?;
    gpu.dispatch(
        MAX_POOL_GRAD,
        &[],
        bytemuck::bytes_of(&p),
        &[s.buffer(), out.buffer(), t.buffer()],
        grid_for(OP, numel)?,
    )?;
    Ok(out.into_storage())
}
