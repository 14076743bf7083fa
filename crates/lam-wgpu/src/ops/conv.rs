//! 2-d convolution and its gradient (Backend `fused_conv2d`,
//! `fused_conv2d_grad`) composed from this backend's own kernels: `unfold`,
//! one batched `matmul` reading the columns by strides, and a broadcast
//! bias add; the gradient from `matmul`, `fold` and `reduce`. The same
//! kernels lam-core would compose, without the tape ops between them.
//!
//! Autocast's convolution (`fused_conv2d_f16`, `fused_conv2d_f16_grad`)
//! is the same composition on an `F16` image and weight: [`unfold_half`]
//! builds `F16` columns and the matmul kernels read the halves (their
//! `HALF` constant; `A_HALF` or `B_HALF` against an `F32` output
//! gradient), widening each exactly and accumulating in f32. A kernel is
//! chosen from the product's sizes and strides, never its dtypes, so the
//! same kernel sums the same products in the same order as it would on
//! `F32` copies of the halves: the output and the gradients are bit for
//! bit those of the `f32` composition of the copies, without the copies,
//! and with columns of half the bytes. Without a bias the product kernels
//! write the `F16` output themselves (`HALF_OUT`, the cast kernel's
//! rounding), with no `f32` sums in memory.
//!
//! Grouped convolutions and empty batches are declined (`None`): lam-core
//! then composes them from the same primitives, per group.

use lam_core::backend::{BinaryOp, ReduceOp, View, WindowGeometry};
use lam_core::{Backend, DType, Error, Layout, Result, Storage};

use super::matmul::{matmul_f16, matmul_widening};
use super::window::unfold_half;
use crate::backend::WgpuBackend;

/// `input [N, C, H, W]` ⋆ `weight [O, C, kh, kw]` (+ `bias [O]`) →
/// contiguous `F32` `[N, O, out_h, out_w]`, for one group.
pub(crate) fn conv2d(
    b: &WgpuBackend,
    input: View,
    weight: View,
    bias: Option<View>,
    g: &WindowGeometry,
    groups: usize,
) -> Result<Option<Storage>> {
    expect_dtype("fused_conv2d", [&input, &weight], DType::F32)?;
    forward(b, input, weight, bias, g, groups)
}

/// [`conv2d`] of an `F16` image and weight with an `F32` bias, as a
/// contiguous `F16` output: the f32 sums of the exact products, plus the
/// bias, rounded once by the cast kernel, or without a bias by the product
/// kernels as they write the sums (the cast kernel's rounding).
pub(crate) fn conv2d_f16(
    b: &WgpuBackend,
    input: View,
    weight: View,
    bias: Option<View>,
    g: &WindowGeometry,
    groups: usize,
) -> Result<Option<Storage>> {
    const OP: &str = "fused_conv2d_f16";
    expect_dtype(OP, [&input, &weight], DType::F16)?;
    let Some(bias) = bias else {
        return Ok(sums(b, input, weight, g, groups, DType::F16)?.map(|(y, _)| y));
    };
    expect_dtype(OP, [&bias], DType::F32)?;
    let Some(y) = forward(b, input, weight, Some(bias), g, groups)? else {
        return Ok(None);
    };
    let shape = Layout::contiguous(&[g.n, weight.1.shape[0], g.positions()]);
    b.cast((&y, &shape), DType::F16).map(Some)
}

/// The gradients of [`conv2d`]'s input, weight and bias from the output's
/// gradient, each where `needs` asks.
pub(crate) fn conv2d_grad(
    b: &WgpuBackend,
    grad: View,
    input: View,
    weight: View,
    g: &WindowGeometry,
    groups: usize,
    needs: [bool; 3],
) -> Result<Option<[Option<Storage>; 3]>> {
    expect_dtype("fused_conv2d_grad", [&grad, &input, &weight], DType::F32)?;
    backward(b, grad, input, weight, g, groups, needs)
}

/// The gradients of [`conv2d_f16`] (as `F32`) from an `F16` or `F32`
/// output gradient: the products read each operand in its own dtype.
pub(crate) fn conv2d_f16_grad(
    b: &WgpuBackend,
    grad: View,
    input: View,
    weight: View,
    g: &WindowGeometry,
    groups: usize,
    needs: [bool; 3],
) -> Result<Option<[Option<Storage>; 3]>> {
    const OP: &str = "fused_conv2d_f16_grad";
    expect_dtype(OP, [&input, &weight], DType::F16)?;
    if grad.0.dtype() != DType::F32 {
        expect_dtype(OP, [&grad], DType::F16)?;
    }
    backward(b, grad, input, weight, g, groups, needs)
}

/// The convolution's f32 sums plus the bias, as `F32`, of an image and a
/// weight both `F32` or both `F16`.
fn forward(
    b: &WgpuBackend,
    input: View,
    weight: View,
    bias: Option<View>,
    g: &WindowGeometry,
    groups: usize,
) -> Result<Option<Storage>> {
    let Some((y, [o, l])) = sums(b, input, weight, g, groups, DType::F32)? else {
        return Ok(None);
    };
    let Some((bs, bl)) = bias else {
        return Ok(Some(y));
    };
    bl.expect_shape("fused_conv2d", "a bias", &[o])?;
    let bias = strided(&[g.n, o, l], &[0, bl.strides[0], 0], bl.offset);
    let shape = Layout::contiguous(&[g.n, o, l]);
    b.binary(BinaryOp::Add, (&y, &shape), (bs, &bias)).map(Some)
}

/// The weight times the columns, a contiguous `[N, O, L]` of `out`
/// (`F16` only for `F16` operands), and `[O, L]`; `None` where
/// [`sizes`] declines.
fn sums(
    b: &WgpuBackend,
    input: View,
    weight: View,
    g: &WindowGeometry,
    groups: usize,
    out: DType,
) -> Result<Option<(Storage, [usize; 2])>> {
    let Some([o, k, l]) = sizes("fused_conv2d", weight.1, g, groups)? else {
        return Ok(None);
    };
    let (ws, wl) = contiguous(b, weight)?;
    // The weight [O, K] broadcast over the batch, times the columns
    // [C·kh·kw, N, L] read as [N, K, L].
    let cols = columns(b, input, g)?;
    let lhs = strided(&[g.n, o, k], &[0, k, 1], wl.offset);
    let rhs = strided(&[g.n, k, l], &[l, g.n * l, 1], 0);
    let (lhs, rhs) = ((&ws, &lhs), (&cols, &rhs));
    let y = match out {
        DType::F16 => matmul_f16(b.gpu(), lhs, rhs, DType::F16)?,
        _ => matmul_widening(b.gpu(), lhs, rhs)?,
    };
    Ok(Some((y, [o, l])))
}

/// The gradients from `input` and `weight` both `F32` or both `F16`, and
/// `grad` of either dtype.
fn backward(
    b: &WgpuBackend,
    grad: View,
    input: View,
    weight: View,
    g: &WindowGeometry,
    groups: usize,
    [need_dx, need_dw, need_db]: [bool; 3],
) -> Result<Option<[Option<Storage>; 3]>> {
    const OP: &str = "fused_conv2d_grad";
    let Some([o, k, l]) = sizes(OP, weight.1, g, groups)? else {
        return Ok(None);
    };
    grad.1
        .expect_shape(OP, "grad", &[g.n, o, g.out[0], g.out[1]])?;
    let (gs, gl) = contiguous(b, grad)?;
    let dy = strided(&[g.n, o, l], &[o * l, l, 1], gl.offset);
    let (ws, wl) = contiguous(b, weight)?;
    let dx = if need_dx {
        // The columns' gradient [N, K, L] = wᵀ dy, read by fold as
        // [C, kh·kw, N, L].
        let wt = strided(&[g.n, k, o], &[0, 1, k], wl.offset);
        let dcols = matmul_widening(b.gpu(), (&ws, &wt), (&gs, &dy))?;
        let taps = g.taps();
        let cols = strided(&g.cols_shape(), &[taps * l, l, k * l, 1], 0);
        Some(b.fold((&dcols, &cols), g)?)
    } else {
        None
    };
    let dw = if need_dw {
        // Σₙ dy[n] cols[n]ᵀ, the columns [K, N, L] read as [N, L, K].
        let cols = columns(b, input, g)?;
        let cols_t = strided(&[g.n, l, k], &[l, 1, g.n * l], 0);
        let per_image = matmul_widening(b.gpu(), (&gs, &dy), (&cols, &cols_t))?;
        let per_image_l = Layout::contiguous(&[g.n, o, k]);
        Some(b.reduce(ReduceOp::Sum, (&per_image, &per_image_l), &[0])?)
    } else {
        None
    };
    let db = if need_db {
        // The sum kernel reads f32: halves are widened first (the
        // gradient's size, not the columns').
        let (gs, dy) = match gs.dtype() {
            DType::F16 => {
                let wide = b.cast((&gs, &gl), DType::F32)?;
                (wide, Layout { offset: 0, ..dy })
            }
            _ => (gs, dy),
        };
        Some(b.reduce(ReduceOp::Sum, (&gs, &dy), &[0, 2])?)
    } else {
        None
    };
    Ok(Some([dx, dw, db]))
}

/// The columns `[C·kh·kw, N, L]` of `input` (zero outside the image), of
/// its dtype.
fn columns(b: &WgpuBackend, input: View, g: &WindowGeometry) -> Result<Storage> {
    match input.0.dtype() {
        DType::F16 => unfold_half(b.gpu(), input, g),
        _ => b.unfold(input, g, 0.0),
    }
}

/// `[O, K, L]` of a one-group convolution with a non-empty batch and
/// columns; `None` for those this module declines.
fn sizes(
    op: &'static str,
    weight: &Layout,
    g: &WindowGeometry,
    groups: usize,
) -> Result<Option<[usize; 3]>> {
    weight.expect_rank(op, "weight [O, C/groups, kh, kw]", 4)?;
    let o = weight.shape[0];
    let (k, l) = (g.c * g.taps(), g.positions());
    if groups != 1 || g.n * o * k * l == 0 {
        return Ok(None);
    }
    weight.expect_shape(op, "weight", &[o, g.c, g.kernel[0], g.kernel[1]])?;
    Ok(Some([o, k, l]))
}

/// An error naming `op` unless every view is of `dtype`.
fn expect_dtype<const N: usize>(op: &'static str, views: [&View; N], dtype: DType) -> Result<()> {
    match views.iter().find(|v| v.0.dtype() != dtype) {
        Some(v) => Err(Error::DTypeMismatch {
            op,
            expected: dtype,
            found: v.0.dtype(),
        }),
        None => Ok(()),
    }
}

/// A layout of `shape` with `strides` from `offset`.
fn strided(shape: &[usize], strides: &[usize], offset: usize) -> Layout {
    Layout {
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        offset,
    }
}

/// The view itself if contiguous, else a contiguous copy (a weight or a
/// gradient whose dims the strided layouts above could not merge).
fn contiguous(b: &dyn Backend, (s, l): View) -> Result<(Storage, Layout)> {
    if l.is_contiguous() {
        let layout = Layout {
            offset: l.offset,
            ..Layout::contiguous(&l.shape)
        };
        return Ok((s.clone(), layout));
    }
    // A cast to the view's own dtype: one copy kernel, no fill first.
    let out = b.cast((s, l), s.dtype())?;
    Ok((out, Layout::contiguous(&l.shape)))
}
