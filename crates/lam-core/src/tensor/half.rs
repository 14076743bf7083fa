//! The dtype an elementwise op gives `F16` operands, and how it reads them.
//!
//! As PyTorch's ops on half tensors do, an elementwise op whose float
//! operands are all `F16` computes in `f32` and rounds its result to `F16`
//! once, so that a mixed-precision step keeps its activations — and what
//! their gradient rules save — in half the bytes. The ops PyTorch's
//! autocast runs in `float32` because an `F16` result would lose range or
//! precision (`exp`, `log`, reciprocals, powers, softplus) return `F32`, as
//! do the comparisons (masks) and any op mixing `F16` with `F32`, which
//! promotes.
//!
//! The op runs as one pass where the backend reads and writes halves
//! itself (`fused_unary_f16`, `fused_binary_f16`: the GPU kernels); else an
//! `F16` operand is read through an untaped `F32` copy ([`f32_view`]) and
//! the result rounded by one cast ([`round_to_half`]), the same numbers.
//! Either way the op records the `F16` operands themselves, so its rule
//! saves them, not copies.

use crate::backend::{BinaryOp, UnaryOp};
use crate::{DType, Layout, Result, Storage, Tensor};

/// Whether `op` on an `F16` input returns `F16` (else `F32`).
pub(super) fn unary_keeps_half(op: UnaryOp) -> bool {
    !matches!(
        op,
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Recip | UnaryOp::Softplus | UnaryOp::PowScalar(_)
    )
}

/// Whether `op` on two `F16` operands returns `F16` (else `F32`).
pub(super) fn binary_keeps_half(op: BinaryOp) -> bool {
    !matches!(
        op,
        BinaryOp::Pow
            | BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
    )
}

/// `op` over `t` (`F16` or `F32`) as a contiguous buffer of dtype `to`.
pub(super) fn unary(t: &Tensor, op: UnaryOp, to: DType) -> Result<Storage> {
    let s = t.storage();
    if t.dtype() == DType::F16 || to == DType::F16 {
        if let Some(out) = t.backend().fused_unary_f16(op, (&s, t.layout()), to)? {
            return Ok(out);
        }
    }
    let (s, view) = f32_view(t)?;
    let out = t.backend().unary(op, (&s, &view))?;
    if to == DType::F16 {
        return round_to_half(t, out, t.dims());
    }
    Ok(out)
}

/// `op` over `a` and `b` (each `F16` or `F32`) broadcast to `shape`, as a
/// contiguous buffer of dtype `to`.
pub(super) fn binary(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    to: DType,
) -> Result<Storage> {
    let backend = a.backend();
    if [a.dtype(), b.dtype(), to].contains(&DType::F16) {
        let (sa, sb) = (a.storage(), b.storage());
        let (la, lb) = (
            a.layout().broadcast_to(shape)?,
            b.layout().broadcast_to(shape)?,
        );
        if let Some(out) = backend.fused_binary_f16(op, (&sa, &la), (&sb, &lb), to)? {
            return Ok(out);
        }
    }
    let ((sa, va), (sb, vb)) = (f32_view(a)?, f32_view(b)?);
    let (la, lb) = (va.broadcast_to(shape)?, vb.broadcast_to(shape)?);
    let out = backend.binary(op, (&sa, &la), (&sb, &lb))?;
    if to == DType::F16 {
        return round_to_half(a, out, shape);
    }
    Ok(out)
}

/// `t`'s values as an `F32` view: its own storage and layout, or for an
/// `F16` tensor a contiguous `F32` copy (untaped: the op that reads it
/// records `t` itself).
fn f32_view(t: &Tensor) -> Result<(Storage, Layout)> {
    let s = t.storage();
    if t.dtype() != DType::F16 {
        return Ok((s, t.layout().clone()));
    }
    let copy = t.backend().cast((&s, t.layout()), DType::F32)?;
    Ok((copy, Layout::contiguous(t.dims())))
}

/// `out`, a contiguous `F32` result of shape `dims`, rounded to `F16` once.
fn round_to_half(t: &Tensor, out: Storage, dims: &[usize]) -> Result<Storage> {
    t.backend()
        .cast((&out, &Layout::contiguous(dims)), DType::F16)
}
