//! unfold (im2col) and fold (col2im) over `[N, C, H, W]` images
//! (window.wgsl). Each takes its input as a strided 4-d view, so a
//! transposed or sliced image needs no copy first. fold is a gather (one
//! invocation per pixel over the taps that read it), so it is deterministic
//! and needs no atomics or sorting.

use std::sync::Arc;

use lam_core::backend::{View, WindowGeometry};
use lam_core::{DType, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{Kernel, FOLD, UNFOLD};
use crate::params::{to_u32, WindowParams};

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

pub(crate) fn strides4(op: &'static str, l: &Layout) -> Result<[u32; 4]> {
    Ok([
        to_u32(op, l.strides[0])?,
        to_u32(op, l.strides[1])?,
        to_u32(op, l.strides[2])?,
        to_u32(op, l.strides[3])?,
    ])
}

pub(crate) fn params(
    op: &'static str,
    g: &WindowGeometry,
    l: &Layout,
    numel: usize,
) -> Result<WindowParams> {
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
