//! unfold (im2col), fold (col2im), max_pool and max_pool_grad over
//! `[N, C, H, W]` images (window.wgsl). Each takes its inputs as strided
//! 4-d views, so a transposed or sliced image, or a permuted gradient, needs
//! no copy first. fold and max_pool_grad are gathers (one invocation per
//! pixel over the taps that read it), so they are deterministic and need no
//! atomics or sorting.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use lam_core::backend::{View, WindowGeometry};
use lam_core::{DType, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{Kernel, FOLD, MAX_POOL, MAX_POOL_GRAD, UNFOLD};
use crate::params::to_u32;

/// window.wgsl's `Params`: the geometry, the input view (offset and four
/// strides), the padding value's bits (unfold, max_pool) and the taps view
/// (max_pool_grad).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct WindowParams {
    pub numel: u32,
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub ph: u32,
    pub pw: u32,
    pub dh: u32,
    pub dw: u32,
    pub oh: u32,
    pub ow: u32,
    pub offset: u32,
    pub strides: [u32; 4],
    pub pad_bits: u32,
    pub t_offset: u32,
    pub t_strides: [u32; 4],
    pub pad: [u32; 2],
}

/// Contiguous cols `[C, K, N, L]` of `src: [N, C, H, W]`, `pad_value` outside the image.
pub(crate) fn unfold(
    gpu: &Arc<Gpu>,
    src: View,
    g: &WindowGeometry,
    pad_value: f32,
) -> Result<Storage> {
    let (s, l) = input(gpu, "unfold", src, Some(DType::F32))?;
    l.expect_shape("unfold", "input", &g.image_shape())?;
    let numel = g.cols_shape().iter().product();
    let p = WindowParams {
        pad_bits: pad_value.to_bits(),
        ..params("unfold", g, l, numel)?
    };
    run(gpu, UNFOLD, &p, s.buffer(), numel)
}

/// Contiguous `[N, C, H, W]` summing the taps of `cols: [C, K, N, L]`.
pub(crate) fn fold(gpu: &Arc<Gpu>, cols: View, g: &WindowGeometry) -> Result<Storage> {
    let (s, l) = input(gpu, "fold", cols, Some(DType::F32))?;
    l.expect_shape("fold", "columns", &g.cols_shape())?;
    let numel = g.image_shape().iter().product();
    let p = params("fold", g, l, numel)?;
    run(gpu, FOLD, &p, s.buffer(), numel)
}

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

fn strides4(op: &'static str, l: &Layout) -> Result<[u32; 4]> {
    Ok([
        to_u32(op, l.strides[0])?,
        to_u32(op, l.strides[1])?,
        to_u32(op, l.strides[2])?,
        to_u32(op, l.strides[3])?,
    ])
}

fn params(op: &'static str, g: &WindowGeometry, l: &Layout, numel: usize) -> Result<WindowParams> {
    let u = |v: usize| to_u32(op, v);
    Ok(WindowParams {
        numel: u(numel)?,
        n: u(g.n)?,
        c: u(g.c)?,
        h: u(g.h)?,
        w: u(g.w)?,
        kh: u(g.kernel[0])?,
        kw: u(g.kernel[1])?,
        sh: u(g.stride[0])?,
        sw: u(g.stride[1])?,
        ph: u(g.padding[0])?,
        pw: u(g.padding[1])?,
        dh: u(g.dilation[0])?,
        dw: u(g.dilation[1])?,
        oh: u(g.out[0])?,
        ow: u(g.out[1])?,
        offset: u(l.offset)?,
        strides: strides4(op, l)?,
        ..WindowParams::default()
    })
}

fn run(
    gpu: &Arc<Gpu>,
    kernel: Kernel,
    p: &WindowParams,
    src: &wgpu::Buffer,
    numel: usize,
) -> Result<Storage> {
    let out = output(gpu, kernel.entry, numel, DType::F32)?;
    gpu.dispatch(
        kernel,
        &[],
        bytemuck::bytes_of(p),
        &[src, out.buffer()],
        grid_for(kernel.entry, numel)?,
    )?;
    Ok(out.into_storage())
}

#[cfg(test)]
mod tests {
    #[test]
    fn params_are_a_16_byte_multiple() {
        assert_eq!(std::mem::size_of::<super::WindowParams>() % 16, 0);
        assert_eq!(std::mem::size_of::<super::WindowParams>(), 112);
    }
}
