//! Elementwise ops and data movement over strided views (elementwise.wgsl):
//! zeros, uploads, readback, copy, cast, unary, binary and select.
//!
//! Every input view is read in place through its strides, so transposed,
//! narrowed and broadcast views cost nothing extra; outputs are contiguous.

use std::sync::Arc;

use lam_core::backend::{BinaryOp, UnaryOp, View};
use lam_core::{BackendStorage, DType, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{binary_code, unary_code, BINARY, CAST, COPY, FILL, SELECT, UNARY};
use crate::params::{elementwise, to_u32, EwParams};
use crate::storage::GpuStorage;

/// A buffer of `len` zeros.
pub(crate) fn zeros(gpu: &Arc<Gpu>, len: usize, dtype: DType) -> Result<Storage> {
    Ok(zeroed(gpu, "zeros", len, dtype)?.into_storage())
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
    let p = EwParams {
        numel: to_u32(op, len)?,
        word: 0,
        ..EwParams::default()
    };
    gpu.dispatch(
        FILL,
        &[],
        bytemuck::bytes_of(&p),
        &[out.buffer()],
        grid_for(op, len)?,
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

/// Converts between F32 and I32 (float to int truncates toward zero).
pub(crate) fn cast(gpu: &Arc<Gpu>, src: View, to: DType) -> Result<Storage> {
    let (s, l) = input(gpu, "cast", src, None)?;
    if s.dtype() == to {
        return Ok(contiguous(gpu, s, l)?.into_storage());
    }
    let n = l.numel();
    let out = output(gpu, "cast", n, to)?;
    let p = elementwise("cast", &l.shape, &[l])?;
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

/// `op` applied to every element of an F32 view.
pub(crate) fn unary(gpu: &Arc<Gpu>, op: UnaryOp, src: View) -> Result<Storage> {
    let (s, l) = input(gpu, "unary", src, Some(DType::F32))?;
    let n = l.numel();
    let out = output(gpu, "unary", n, DType::F32)?;
    let (code, alpha, beta) = unary_code(op);
    let p = EwParams {
        alpha,
        beta,
        ..elementwise("unary", &l.shape, &[l])?
    };
    gpu.dispatch(
        UNARY,
        &[("OP", f64::from(code))],
        bytemuck::bytes_of(&p),
        &[s.buffer(), out.buffer()],
        grid_for("unary", n)?,
    )?;
    Ok(out.into_storage())
}

/// `op` applied elementwise to two F32 views of the same shape.
pub(crate) fn binary(gpu: &Arc<Gpu>, op: BinaryOp, lhs: View, rhs: View) -> Result<Storage> {
    let (a, la) = input(gpu, "binary", lhs, Some(DType::F32))?;
    let (b, lb) = input(gpu, "binary", rhs, Some(DType::F32))?;
    let n = la.numel();
    let out = output(gpu, "binary", n, DType::F32)?;
    let p = elementwise("binary", &la.shape, &[la, lb])?;
    gpu.dispatch(
        BINARY,
        &[("OP", f64::from(binary_code(op)))],
        bytemuck::bytes_of(&p),
        &[a.buffer(), b.buffer(), out.buffer()],
        grid_for("binary", n)?,
    )?;
    Ok(out.into_storage())
}

/// `cond != 0 ? a : b`; the condition may be F32 or I32, a and b any dtype.
pub(crate) fn select(gpu: &Arc<Gpu>, cond: View, a: View, b: View) -> Result<Storage> {
    let (c, lc) = input(gpu, "select", cond, None)?;
    let (x, lx) = input(gpu, "select", a, None)?;
    let (y, ly) = input(gpu, "select", b, Some(x.dtype()))?;
    let n = lc.numel();
    let out = output(gpu, "select", n, x.dtype())?;
    let p = EwParams {
        word: u32::from(c.dtype() == DType::I32),
        ..elementwise("select", &lc.shape, &[lc, lx, ly])?
    };
    gpu.dispatch(
        SELECT,
        &[],
        bytemuck::bytes_of(&p),
        &[c.buffer(), x.buffer(), y.buffer(), out.buffer()],
        grid_for("select", n)?,
    )?;
    Ok(out.into_storage())
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
        COPY,
        &[],
        bytemuck::bytes_of(&p),
        &[s.buffer(), d.buffer()],
        grid_for("copy", n)?,
    )
}
