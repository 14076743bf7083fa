//! Data movement over strided views (copy.wgsl, and copy_half.wgsl for
//! `F16`, two halves per word): zeros, uploads, readback, copy and cast.
//! Views are read in place through their strides; outputs are contiguous,
//! except `copy`'s destination, which is a view too.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{BackendStorage, DType, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{CAST, CAST_FROM_HALF, CAST_TO_HALF, COPY, COPY_HALF, FILL};
use crate::params::{elementwise, to_u32, EwParams};
use crate::storage::GpuStorage;

/// A buffer of `len` zeros.
pub(crate) fn zeros(gpu: &Arc<Gpu>, len: usize, dtype: DType) -> Result<Storage> {
    Ok(zeroed(gpu, "zeros", len, dtype)?.into_storage())
}

/// A buffer of `len` elements as the pool gives it (stale data, or zeros
/// when new), for an output the caller writes entirely: no clearing kernel.
pub(crate) fn empty(gpu: &Arc<Gpu>, len: usize, dtype: DType) -> Result<Storage> {
    Ok(output(gpu, "empty", len, dtype)?.into_storage())
}

/// A zeroed buffer of `len` elements. Pooled buffers hold stale data, so a
/// kernel clears them (recorded in order, inside the open compute pass).
pub(crate) fn zeroed(
    gpu: &Arc<Gpu>,
    op: &'static str,
    len: usize,
    dtype: DType,
) -> Result<GpuStorage> {
    let out = output(gpu, op, len, dtype)?;
    // Words, not elements: an F16 buffer holds two per word.
    let words = (len * dtype.size()).div_ceil(4);
    let p = EwParams {
        numel: to_u32(op, words)?,
        word: 0,
        ..EwParams::default()
    };
    gpu.dispatch(
        FILL,
        &[],
        bytemuck::bytes_of(&p),
        &[out.buffer()],
        grid_for(op, words)?,
    )?;
    Ok(out)
}

/// A buffer holding `data` (4-byte elements of `dtype`).
pub(crate) fn upload(gpu: &Arc<Gpu>, data: &[u8], dtype: DType) -> Result<Storage> {
    Ok(GpuStorage::upload(gpu, "from_data", data, dtype)?.into_storage())
}

/// The bytes of a view of `dtype`, row-major.
pub(crate) fn read(gpu: &Arc<Gpu>, src: View, dtype: DType) -> Result<Vec<u8>> {
    let (s, l) = input(gpu, "read", src, Some(dtype))?;
    let n = l.numel() as u64;
    if n == 0 {
        return Ok(Vec::new());
    }
    if l.is_contiguous() {
        return gpu.read_back(s.buffer(), l.offset as u64 * 4, n * 4);
    }
    let dense = contiguous(gpu, s, l)?;
    gpu.read_back(dense.buffer(), 0, n * 4)
}

/// `dst = src` elementwise, both views of the same shape and dtype.
pub(crate) fn copy(gpu: &Arc<Gpu>, src: View, dst: View) -> Result<()> {
    let (s, sl) = input(gpu, "copy", src, None)?;
    let (d, dl) = input(gpu, "copy", dst, Some(s.dtype()))?;
    if sl.numel() == 0 {
        return Ok(());
    }
    if std::ptr::eq(s, d) {
        // A buffer cannot be bound for reading and writing in one dispatch
        // (and overlapping views would race): go through a temporary.
        let tmp = contiguous(gpu, s, sl)?;
        return copy_views(gpu, &tmp, &Layout::contiguous(&sl.shape), d, dl);
    }
    copy_views(gpu, s, sl, d, dl)
}

/// Converts between F32, I32 and F16 (float to int truncates toward zero;
/// to F16 rounds to nearest even; int to F16 goes through f32).
pub(crate) fn cast(gpu: &Arc<Gpu>, src: View, to: DType) -> Result<Storage> {
    let (s, l) = input(gpu, "cast", src, None)?;
    if s.dtype() == to {
        return Ok(contiguous(gpu, s, l)?.into_storage());
    }
    let n = l.numel();
    let out = output(gpu, "cast", n, to)?;
    let p = elementwise("cast", &l.shape, &[l])?;
    let int = |is: bool| if is { 1.0 } else { 0.0 };
    if to == DType::F16 {
        to_half(gpu, s, &p, &out)?;
        return Ok(out.into_storage());
    }
    if s.dtype() == DType::F16 {
        gpu.dispatch(
            CAST_FROM_HALF,
            &[("TO_INT", int(to == DType::I32))],
            bytemuck::bytes_of(&p),
            &[s.buffer(), out.buffer()],
            grid_for("cast", n)?,
        )?;
        return Ok(out.into_storage());
    }
    let to_int = if to == DType::I32 { 1.0 } else { 0.0 };
    gpu.dispatch(
        CAST,
        &[("TO_INT", to_int)],
        bytemuck::bytes_of(&p),
        &[s.buffer(), out.buffer()],
        grid_for("cast", n)?,
    )?;
    Ok(out.into_storage())
}

/// The cast to F16 of the view `p` describes in `src` into `dst`, one
/// thread per output word (two halves).
fn to_half(gpu: &Arc<Gpu>, src: &GpuStorage, p: &EwParams, dst: &GpuStorage) -> Result<()> {
    let from_int = if src.dtype() == DType::I32 { 1.0 } else { 0.0 };
    gpu.dispatch(
        CAST_TO_HALF,
        &[("FROM_INT", from_int)],
        bytemuck::bytes_of(p),
        &[src.buffer(), dst.buffer()],
        grid_for("cast", (p.numel as usize).div_ceil(2))?,
    )
}

/// A contiguous copy of a view (same dtype).
pub(crate) fn contiguous(gpu: &Arc<Gpu>, s: &GpuStorage, l: &Layout) -> Result<GpuStorage> {
    let out = output(gpu, "contiguous", l.numel(), s.dtype())?;
    copy_views(gpu, s, l, &out, &Layout::contiguous(&l.shape))?;
    Ok(out)
}

/// One `copy_view` dispatch: the dst view of `d` gets the src view of `s`.
fn copy_views(
    gpu: &Arc<Gpu>,
    s: &GpuStorage,
    sl: &Layout,
    d: &GpuStorage,
    dl: &Layout,
) -> Result<()> {
    let n = sl.numel();
    if n == 0 {
        return Ok(());
    }
    let p = elementwise("copy", &sl.shape, &[sl, dl])?;
    gpu.dispatch(
        if s.dtype() == DType::F16 {
            COPY_HALF
        } else {
            COPY
        },
        &[],
        bytemuck::bytes_of(&p),
        &[s.buffer(), d.buffer()],
        grid_for("copy", n)?,
    )
}
