//! The convolution tape op, for `conv.rs` (which validates the arguments):
//! the backend's fused kernel (Backend `fused_conv2d`, which may build each
//! image's columns in cache instead of the whole batch's in memory), with
//! one gradient rule (`fused_conv2d_grad`: the input's, the weight's and
//! the bias's gradients, each only when needed). Only the input is kept for
//! the gradient, not its columns.
//!
//! Under autocast the same op runs on halves: `fused_conv2d_f16` and
//! `fused_conv2d_f16_grad` read the `F16` image and weight themselves
//! (lam-wgpu), and a backend that declines them (the CPU) runs the `f32`
//! kernels above on exact `F32` copies of the halves, with the same numbers.
//!
//! A backend that declines the `f32` kernels gets them from `unfold` and
//! `matmul` (`fold` and `reduce` for the gradient), untaped: the reference
//! the fused kernels are tested against, which the unfused test devices run
//! on every backend.

use super::conv::composed_conv2d;
use super::window::{fold_op, unfold_op, Window};
use crate::backend::WindowGeometry;
use crate::{no_grad, DType, Layout, Result, Storage, Tensor};

/// `x [N, C, H, W]` ⋆ `weight [O, C/groups, kh, kw]` (+ `bias [O]`) over
/// `window` (whose geometry over `x` is `g`), as one tape op; `None` when a
/// tensor is not `F32` outside autocast (the caller then composes the
/// taped ops, which convert).
///
/// Under autocast to `F16` the image and the weight are rounded to `F16`,
/// as a product's operands are, and the output is `F16`, as PyTorch's
/// autocast convolution: the sums of the exact products in `f32`, the bias
/// added in `f32`, the output rounded once. The backend's
/// `fused_conv2d_f16` reads the halves themselves; a backend that declines
/// it runs its `f32` kernels on exact `F32` copies of them, with the same
/// numbers. The rule keeps the halves (half the bytes of the image) and
/// computes the gradients from them (`fused_conv2d_f16_grad`, or the `f32`
/// kernels on copies).
pub(super) fn fused_conv2d(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    g: WindowGeometry,
    groups: usize,
) -> Result<Option<Tensor>> {
    let inputs: Vec<&Tensor> = [Some(x), Some(weight), bias]
        .into_iter()
        .flatten()
        .collect();
    let half = crate::amp::autocast_dtype(&x.device())
        .filter(|_| inputs.iter().all(|t| t.dtype().is_float()));
    if half.is_none() && inputs.iter().any(|t| t.dtype() != DType::F32) {
        return Ok(None);
    }
    let dev = x.device();
    for t in &inputs[1..] {
        dev.check_same(&t.device(), op)?;
    }
    // What the rule keeps: the operands as the product reads them.
    let kept = |t: &Tensor| match half {
        Some(h) => no_grad(|| t.to_dtype(h)),
        None => Ok(t.detach()),
    };
    let (x_saved, w_saved) = (kept(x)?, kept(weight)?);
    let bias32 = bias.map(|b| no_grad(|| b.float32(op))).transpose()?;
    let shape = [g.n, weight.dims()[0], g.out[0], g.out[1]];
    let (y, layout) = match half {
        Some(h) => {
            let y = forward_f16(&x_saved, &w_saved, bias32.as_ref(), g, groups)?;
            let y = match y {
                Some(y) => y,
                None => {
                    let (y, l) =
                        forward(op, &x_saved, &w_saved, bias32.as_ref(), window, g, groups)?;
                    x.backend().cast((&y, &l), h)?
                }
            };
            (y, Layout::contiguous(&shape))
        }
        None => forward(op, &x_saved, &w_saved, bias32.as_ref(), window, g, groups)?,
    };
    let needs = [
        x.requires_grad(),
        weight.requires_grad(),
        bias.is_some_and(Tensor::requires_grad),
    ];
    let has_bias = bias.is_some();
    Ok(Some(Tensor::from_op(
        "conv2d",
        y,
        layout,
        &inputs,
        move |grad| {
            let fused = match half {
                Some(_) => backward_f16(grad, &x_saved, &w_saved, g, groups, needs)?,
                None => None,
            };
            let [dx, dw, db] = match fused {
                Some(grads) => grads,
                None => {
                    let (x, w) = (x_saved.float32(op)?, w_saved.float32(op)?);
                    backward(&grad.float32(op)?, &x, &w, g, groups, needs)?
                }
            };
            let mut grads = vec![dx, dw];
            if has_bias {
                grads.push(db);
            }
            Ok(grads)
        },
    )))
}

/// The `f32` convolution of `x` and `weight` (`F32`, or `F16` read as exact
/// `F32` copies) plus the bias, untaped: the backend's `fused_conv2d`, or
/// [`composed_conv2d`] on the copies.
fn forward(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    g: WindowGeometry,
    groups: usize,
) -> Result<(Storage, Layout)> {
    let [x, w] = no_grad(|| -> Result<[Tensor; 2]> { Ok([x.float32(op)?, weight.float32(op)?]) })?;
    let (xs, ws) = (x.storage(), w.storage());
    let bs = bias.map(Tensor::storage);
    let fused = x.backend().fused_conv2d(
        (&xs, x.layout()),
        (&ws, w.layout()),
        bs.as_ref().zip(bias).map(|(s, t)| (s, t.layout())),
        &g,
        groups,
    )?;
    if let Some(y) = fused {
        let shape = [g.n, weight.dims()[0], g.out[0], g.out[1]];
        return Ok((y, Layout::contiguous(&shape)));
    }
    // In `f32` like the kernels, under autocast too (whose products would
    // round once more).
    let _amp = crate::amp::suspended();
    let y = no_grad(|| composed_conv2d(op, &x, &w, bias, window, groups))?;
    Ok((y.storage(), y.layout().clone()))
}

/// The backend's `fused_conv2d_f16` of the halves `x` and `weight`: the
/// `F16` output's contiguous storage, or `None` where it declines.
fn forward_f16(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: WindowGeometry,
    groups: usize,
) -> Result<Option<Storage>> {
    let (xs, ws) = (x.storage(), weight.storage());
    let bs = bias.map(Tensor::storage);
    x.backend().fused_conv2d_f16(
        (&xs, x.layout()),
        (&ws, weight.layout()),
        bs.as_ref().zip(bias).map(|(s, t)| (s, t.layout())),
        &g,
        groups,
    )
}

/// The gradients from the kept halves and the output's gradient (`F16` or
/// `F32`) by the backend's `fused_conv2d_f16_grad`, or `None` where it
/// declines.
fn backward_f16(
    grad: &Tensor,
    x: &Tensor,
    weight: &Tensor,
    g: WindowGeometry,
    groups: usize,
    needs: [bool; 3],
) -> Result<Option<[Option<Tensor>; 3]>> {
    let s = [grad, x, weight].map(Tensor::storage);
    let fused = x.backend().fused_conv2d_f16_grad(
        (&s[0], grad.layout()),
        (&s[1], x.layout()),
        (&s[2], weight.layout()),
        &g,
        groups,
        needs,
    )?;
    Ok(fused.map(|grads| wrap_grads(grads, x, weight, g)))
}

/// The gradients of the input, the weight and the bias (where `needs`
/// says) from the output's gradient, untaped: the backend's kernel, or
/// [`composed_grad`].
fn backward(
    grad: &Tensor,
    x: &Tensor,
    weight: &Tensor,
    g: WindowGeometry,
    groups: usize,
    needs: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let s = [grad, x, weight].map(Tensor::storage);
    let fused = x.backend().fused_conv2d_grad(
        (&s[0], grad.layout()),
        (&s[1], x.layout()),
        (&s[2], weight.layout()),
        &g,
        groups,
        needs,
    )?;
    match fused {
        Some(grads) => Ok(wrap_grads(grads, x, weight, g)),
        None => no_grad(|| composed_grad(grad, x, weight, g, groups, needs)),
    }
}

/// A gradient kernel's contiguous buffers as tensors of the image's, the
/// weight's and the bias's shapes.
fn wrap_grads(
    [dx, dw, db]: [Option<Storage>; 3],
    x: &Tensor,
    weight: &Tensor,
    g: WindowGeometry,
) -> [Option<Tensor>; 3] {
    let dev = x.device();
    let wrap = |s: Option<Storage>, shape: &[usize]| {
        s.map(|s| Tensor::from_storage(s, Layout::contiguous(shape), &dev))
    };
    [
        wrap(dx, &g.image_shape()),
        wrap(dw, weight.dims()),
        wrap(db, &weight.dims()[..1]),
    ]
}

/// The same gradients from `unfold`, `matmul`, `fold` and `reduce`, as the
/// taped composition would compute them.
pub(super) fn composed_grad(
    grad: &Tensor,
    x: &Tensor,
    weight: &Tensor,
    g: WindowGeometry,
    groups: usize,
    [need_dx, need_dw, need_db]: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let o = weight.dims()[0];
    let (og, k, l) = (o / groups, weight.dims()[1] * g.taps(), g.positions());
    // dy [N, G, O/G, L]; the weight [G, O/G, K].
    let dy = grad.contiguous()?.reshape_exact(&[g.n, groups, og, l])?;
    let w = weight.contiguous()?.reshape_exact(&[groups, og, k])?;
    let dx = if need_dx {
        // cols' gradient [N, G, K, L] = wᵀ dy, viewed as [C, kh·kw, N, L].
        let dcols = w.transpose(1, 2)?.matmul(&dy)?;
        let dcols = dcols
            .permute(&[1, 2, 0, 3])?
            .reshape_exact(&g.cols_shape())?;
        Some(fold_op(&dcols, g)?)
    } else {
        None
    };
    let dw = if need_dw {
        // Σₙ dy[n] colsᵀ[n]: cols [C, kh·kw, N, L] viewed as [N, G, L, K].
        let cols = unfold_op(x, g, 0.0)?
            .reshape_exact(&[groups, k, g.n, l])?
            .permute(&[2, 0, 3, 1])?;
        let dw = dy.matmul(&cols)?.sum(&[0], false)?;
        Some(dw.reshape_exact(weight.dims())?)
    } else {
        None
    };
    let db = if need_db {
        Some(grad.sum(&[0, 2, 3], false)?)
    } else {
        None
    };
    Ok([dx, dw, db])
}
