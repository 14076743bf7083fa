//! Elementwise math over strided views (elementwise.wgsl): unary, binary
//! and select.
//!
//! Every input view is read in place through its strides, so transposed,
//! narrowed and broadcast views cost nothing extra; outputs are contiguous.

use std::sync::Arc;

use lam_core::backend::{BinaryOp, UnaryOp, View};
use lam_core::{BackendStorage, DType, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{binary_code, unary_code, BINARY, SELECT, UNARY};
use crate::params::{elementwise, EwParams};

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
