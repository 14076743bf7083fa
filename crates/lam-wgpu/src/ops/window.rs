//! unfold (im2col) and fold (col2im) over `[N, C, H, W]` images
//! (window.wgsl), and [`unfold_half`], the columns of an `F16` image as
//! `F16` for autocast's convolution (`conv.rs`). Each takes its input as a
//! strided 4-d view, so a transposed or sliced image needs no copy first. fold is a gather (one
//! invocation per pixel over the taps that read it), so it is deterministic
//! and needs no atomics or sorting.

use std::sync::Arc;

use lam_core::backend::{View, WindowGeometry};
use lam_core::{DType, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{Kernel, FOLD, UNFOLD, UNFOLD_HALF};
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
    run(gpu, UNFOLD, &p, s.buffer(), numel, DType::F32)
}

/// [`unfold`] of an `F16` image view into contiguous `F16` cols
/// `[C, K, N, L]`, zero outside the image: each column element the half
/// the image holds there, bit for bit (half the bytes of [`unfold`]'s
/// columns of the image cast to `F32`, and no such cast).
pub(crate) fn unfold_half(gpu: &Arc<Gpu>, src: View, g: &WindowGeometry) -> Result<Storage> {
    let (s, l) = input(gpu, "unfold", src, Some(DType::F16))?;
    l.expect_shape("unfold", "input", &g.image_shape())?;
    let numel = g.cols_shape().iter().product();
    // pad_bits 0: the half +0.
    let p = params("unfold", g, l, numel)?;
    run(gpu, UNFOLD_HALF, &p, s.buffer(), numel, DType::F16)
}

/// Contiguous `[N, C, H, W]` summing the taps of `cols: [C, K, N, L]`.
pub(crate) fn fold(gpu: &Arc<Gpu>, cols: View, g: &WindowGeometry) -> Result<Storage> {
    let (s, l) = input(gpu, "fold", cols, Some(DType::F32))?;
    l.expect_shape("fold", "columns", &g.cols_shape())?;
    let numel = g.image_shape().iter().product();
    let p = params("fold", g, l, numel)?;
    run(gpu, FOLD, &p, s.buffer(), numel, DType::F32)
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

/// Runs `kernel` into a new contiguous buffer of `numel` elements of
/// `dtype`: one thread per element, or per word (two halves) for `F16`.
fn run(
    gpu: &Arc<Gpu>,
    kernel: Kernel,
    p: &WindowParams,
    src: &wgpu::Buffer,
    numel: usize,
    dtype: DType,
) -> Result<Storage> {
    let out = output(gpu, kernel.entry, numel, dtype)?;
    let threads = match dtype {
        DType::F16 => numel.div_ceil(2),
        _ => numel,
    };
    gpu.dispatch(
        kernel,
        &[],
        bytemuck::bytes_of(p),
        &[src, out.buffer()],
        grid_for(kernel.entry, threads)?,
    )?;
    Ok(out.into_storage())
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Device};

    use super::*;
    use crate::storage::GpuStorage;

    /// The device of a lam-wgpu `Device`.
    fn gpu_of(dev: &Device) -> Arc<Gpu> {
        let probe = dev.backend().zeros(1, DType::F32).expect("a buffer");
        let s = probe
            .as_any()
            .downcast_ref::<GpuStorage>()
            .expect("a GPU buffer");
        Arc::clone(s.gpu())
    }

    /// The f32 values of an `F16` or `F32` buffer's contiguous `[n]` prefix.
    fn wide(b: &dyn Backend, s: &Storage, n: usize) -> Vec<u32> {
        let l = Layout::contiguous(&[n]);
        let s = b.cast((s, &l), DType::F32).expect("a cast");
        let v = b.read_f32((&s, &l)).expect("a read");
        v.iter().map(|x| x.to_bits()).collect()
    }

    // unfold_half gives, bit for bit, unfold's f32 columns of the image
    // cast to F32, rounded back to F16 (an exact round trip): on strided
    // and offset views, with padding, stride, dilation and an odd count of
    // columns (the last word half used), for NaN, infinities, values past
    // f16's range and subnormals.
    #[test]
    fn half_columns_are_the_f32_columns_rounded() {
        let dims = [3, 3, 5, 7];
        let numel: usize = dims.iter().product();
        let special = [f32::NAN, f32::INFINITY, -1e5, 7e4, 3e-6, -0.0];
        let values: Vec<f32> = (0..numel + 5)
            .map(|i| match i % 17 {
                j if j < special.len() => special[j],
                _ => (i as f32 * 0.37).sin() * 4.0,
            })
            .collect();
        // Contiguous; from an odd offset; [N, C, W, H] transposed to
        // [N, C, H, W].
        let contiguous = Layout::contiguous(&dims);
        let offset = Layout {
            offset: 5,
            ..Layout::contiguous(&dims)
        };
        let transposed = Layout {
            shape: dims.to_vec(),
            strides: vec![105, 35, 1, 5],
            offset: 0,
        };
        // [kernel, stride, padding, dilation].
        let geometries = [
            [[3, 3], [1, 1], [1, 1], [1, 1]],
            [[2, 3], [2, 1], [0, 2], [1, 2]],
            [[1, 1], [2, 2], [0, 0], [1, 1]],
        ];
        for dev in crate::gpu_devices_for_tests() {
            let b = dev.backend();
            let gpu = gpu_of(&dev);
            let f32s = b.from_f32(&values).expect("an upload");
            let all = Layout::contiguous(&[values.len()]);
            let halves = b.cast((&f32s, &all), DType::F16).expect("a cast");
            let widened = b.cast((&halves, &all), DType::F32).expect("a cast");
            for layout in [&contiguous, &offset, &transposed] {
                for [kernel, stride, padding, dilation] in geometries {
                    let out = |a: usize| {
                        (dims[2 + a] + 2 * padding[a] - dilation[a] * (kernel[a] - 1) - 1)
                            / stride[a]
                            + 1
                    };
                    let g = WindowGeometry {
                        n: dims[0],
                        c: dims[1],
                        h: dims[2],
                        w: dims[3],
                        kernel,
                        stride,
                        padding,
                        dilation,
                        out: [out(0), out(1)],
                    };
                    let n: usize = g.cols_shape().iter().product();
                    let got = unfold_half(&gpu, (&halves, layout), &g).expect("unfold_half");
                    assert_eq!((got.dtype(), got.len()), (DType::F16, n));
                    let cols = b.unfold((&widened, layout), &g, 0.0).expect("unfold");
                    let want = b.cast((&cols, &Layout::contiguous(&[n])), DType::F16);
                    let want = want.expect("a cast");
                    let case = format!("{layout:?} {g:?} on {}", dev.name());
                    assert_eq!(wide(b, &got, n), wide(b, &want, n), "{case}");
                }
            }
        }
    }
}
