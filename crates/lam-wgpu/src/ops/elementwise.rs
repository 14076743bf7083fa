//! Elementwise math over strided views (elementwise.wgsl): unary, binary
//! and select.
//!
//! Every input view is read in place through its strides, so transposed,
//! narrowed and broadcast views cost nothing extra; outputs are contiguous.
//! Unary and binary ops read `F16` inputs and write `F16` outputs in the
//! same pass (`fused_unary_f16`, `fused_binary_f16`): halves widened
//! exactly, the `f32` op, the result rounded once.

use std::sync::Arc;

use lam_core::backend::{BinaryOp, UnaryOp, View};
use lam_core::{BackendStorage, DType, Error, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{binary_code, unary_code, BINARY, SELECT, UNARY};
use crate::params::{elementwise, EwParams};
use crate::storage::GpuStorage;

/// `op` applied to every element of an F32 view.
pub(crate) fn unary(gpu: &Arc<Gpu>, op: UnaryOp, src: View) -> Result<Storage> {
    unary_as(gpu, "unary", op, src, false, DType::F32)
}

/// `op` applied to every element of an F16 or F32 view, the result `to`
/// (F16 rounded once, or F32).
pub(crate) fn unary_f16(gpu: &Arc<Gpu>, op: UnaryOp, src: View, to: DType) -> Result<Storage> {
    unary_as(gpu, "fused_unary_f16", op, src, true, to)
}

/// `op` applied elementwise to two F32 views of the same shape.
pub(crate) fn binary(gpu: &Arc<Gpu>, op: BinaryOp, lhs: View, rhs: View) -> Result<Storage> {
    binary_as(gpu, "binary", op, [lhs, rhs], false, DType::F32)
}

/// `op` applied elementwise to two F16 or F32 views of the same shape, the
/// result `to` (F16 rounded once, or F32).
pub(crate) fn binary_f16(
    gpu: &Arc<Gpu>,
    op: BinaryOp,
    lhs: View,
    rhs: View,
    to: DType,
) -> Result<Storage> {
    binary_as(gpu, "fused_binary_f16", op, [lhs, rhs], true, to)
}

fn unary_as(
    gpu: &Arc<Gpu>,
    name: &'static str,
    op: UnaryOp,
    src: View,
    halves: bool,
    to: DType,
) -> Result<Storage> {
    let (s, l) = float_input(gpu, name, src, halves)?;
    let n = l.numel();
    let out = float_output(gpu, name, n, halves, to)?;
    let (code, alpha, beta) = unary_code(op);
    let p = EwParams {
        alpha,
        beta,
        ..elementwise(name, &l.shape, &[l])?
    };
    gpu.dispatch(
        UNARY,
        &[
            ("OP", f64::from(code)),
            ("HALF0", flag(s.dtype() == DType::F16)),
            ("HALF_OUT", flag(to == DType::F16)),
        ],
        bytemuck::bytes_of(&p),
        &[s.buffer(), out.buffer()],
        grid_for(name, threads(n, to))?,
    )?;
    Ok(out.into_storage())
}

fn binary_as(
    gpu: &Arc<Gpu>,
    name: &'static str,
    op: BinaryOp,
    [lhs, rhs]: [View; 2],
    halves: bool,
    to: DType,
) -> Result<Storage> {
    let (a, la) = float_input(gpu, name, lhs, halves)?;
    let (b, lb) = float_input(gpu, name, rhs, halves)?;
    let n = la.numel();
    let out = float_output(gpu, name, n, halves, to)?;
    let p = elementwise(name, &la.shape, &[la, lb])?;
    gpu.dispatch(
        BINARY,
        &[
            ("OP", f64::from(binary_code(op))),
            ("HALF0", flag(a.dtype() == DType::F16)),
            ("HALF1", flag(b.dtype() == DType::F16)),
            ("HALF_OUT", flag(to == DType::F16)),
        ],
        bytemuck::bytes_of(&p),
        &[a.buffer(), b.buffer(), out.buffer()],
        grid_for(name, threads(n, to))?,
    )?;
    Ok(out.into_storage())
}

/// An input view of F32, or of F16 too where `halves` allows it.
fn float_input<'a>(
    gpu: &Arc<Gpu>,
    name: &'static str,
    view: View<'a>,
    halves: bool,
) -> Result<(&'a GpuStorage, &'a Layout)> {
    let want = if halves && view.0.dtype() == DType::F16 {
        DType::F16
    } else {
        DType::F32
    };
    input(gpu, name, view, Some(want))
}

/// The contiguous output, F32 or (where `halves` allows it) F16.
fn float_output(
    gpu: &Arc<Gpu>,
    name: &'static str,
    n: usize,
    halves: bool,
    to: DType,
) -> Result<GpuStorage> {
    if to != DType::F32 && !(halves && to == DType::F16) {
        return Err(Error::DTypeMismatch {
            op: name,
            expected: DType::F32,
            found: to,
        });
    }
    output(gpu, name, n, to)
}

/// Threads for `n` outputs: one each, or one per word of two halves.
fn threads(n: usize, to: DType) -> usize {
    if to == DType::F16 {
        n.div_ceil(2)
    } else {
        n
    }
}

/// A boolean pipeline constant.
fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
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
