//! 2-d convolution and its gradient (Backend `fused_conv2d`,
//! `fused_conv2d_grad`) composed from this backend's own kernels: `unfold`,
//! one batched `matmul` reading the columns by strides, and a broadcast
//! bias add; the gradient from `matmul`, `fold` and `reduce`. The same
//! kernels lam-core would compose, without the tape ops between them.
//!
//! Grouped convolutions and empty batches are declined (`None`): lam-core
//! then composes them from the same primitives, per group.

use lam_core::backend::{BinaryOp, ReduceOp, View, WindowGeometry};
use lam_core::{Backend, Layout, Result, Storage};

/// `input [N, C, H, W]` ⋆ `weight [O, C, kh, kw]` (+ `bias [O]`) →
/// contiguous `[N, O, out_h, out_w]`, for one group.
pub(crate) fn conv2d(
    b: &dyn Backend,
    input: View,
    weight: View,
    bias: Option<View>,
    g: &WindowGeometry,
    groups: usize,
) -> Result<Option<Storage>> {
    let Some([o, k, l]) = sizes("fused_conv2d", weight.1, g, groups)? else {
        return Ok(None);
    };
    let (ws, wl) = contiguous(b, weight)?;
    let cols = b.unfold(input, g, 0.0)?; // [C·kh·kw, N, L]
                                         // The weight [O, K] broadcast over the batch, times the columns read
                                         // as [N, K, L].
    let lhs = strided(&[g.n, o, k], &[0, k, 1], wl.offset);
    let rhs = strided(&[g.n, k, l], &[l, g.n * l, 1], 0);
    let y = b.matmul((&ws, &lhs), (&cols, &rhs))?;
    let Some((bs, bl)) = bias else {
        return Ok(Some(y));
    };
    bl.expect_shape("fused_conv2d", "a bias", &[o])?;
    let bias = strided(&[g.n, o, l], &[0, bl.strides[0], 0], bl.offset);
    let shape = Layout::contiguous(&[g.n, o, l]);
    b.binary(BinaryOp::Add, (&y, &shape), (bs, &bias)).map(Some)
}

/// The gradients of [`conv2d`]'s input, weight and bias from the output's
/// gradient, each where `needs` asks.
pub(crate) fn conv2d_grad(
    b: &dyn Backend,
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
        let dcols = b.matmul((&ws, &wt), (&gs, &dy))?;
        let taps = g.taps();
        let cols = strided(&g.cols_shape(), &[taps * l, l, k * l, 1], 0);
        Some(b.fold((&dcols, &cols), g)?)
    } else {
        None
    };
    let dw = if need_dw {
        // Σₙ dy[n] cols[n]ᵀ, the columns [K, N, L] read as [N, L, K].
        let cols = b.unfold(input, g, 0.0)?;
        let cols_t = strided(&[g.n, l, k], &[l, 1, g.n * l], 0);
        let per_image = b.matmul((&gs, &dy), (&cols, &cols_t))?;
        let per_image_l = Layout::contiguous(&[g.n, o, k]);
        Some(b.reduce(ReduceOp::Sum, (&per_image, &per_image_l), &[0])?)
    } else {
        None
    };
    let db = if need_db {
        Some(b.reduce(ReduceOp::Sum, (&gs, &dy), &[0, 2])?)
    } else {
        None
    };
    Ok(Some([dx, dw, db]))
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
