//! The convolution tape op, for `conv.rs` (which validates the arguments):
//! the backend's fused kernel (Backend `fused_conv2d`, which may build each
//! image's columns in cache instead of the whole batch's in memory), with
//! one gradient rule (`fused_conv2d_grad`: the input's, the weight's and
//! the bias's gradients, each only when needed). Only the input is kept for
//! the gradient, not its columns.
//!
//! A backend that declines either half gets it from `unfold` and `matmul`
//! (`fold` and `reduce` for the gradient), untaped: the reference the
//! fused kernels are tested against, which the unfused test devices run
//! on every backend.

use super::conv::composed_conv2d;
use super::window::{fold_op, unfold_op, Window};
use crate::backend::WindowGeometry;
use crate::{no_grad, DType, Layout, Result, Tensor};

/// `x [N, C, H, W]` ⋆ `weight [O, C/groups, kh, kw]` (+ `bias [O]`) over
/// `window` (whose geometry over `x` is `g`), as one tape op; `None` when a
/// tensor is not `F32` outside autocast (the caller then composes the
/// taped ops, which convert).
///
/// Under autocast to `F16` the image and the weight are rounded to `F16`,
/// as a product's operands are, and the output is `F16`, as PyTorch's
/// autocast convolution: the backend's `f32` kernels run on exact `F32`
/// copies of the halves, the bias is added in `f32` and the output rounded
/// once. The rule keeps the halves (half the bytes of the image) and
/// computes the gradients in `f32` from copies of them.
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
    let [x32, w32] =
        no_grad(|| -> Result<[Tensor; 2]> { Ok([x_saved.float32(op)?, w_saved.float32(op)?]) })?;
    let bias32 = bias.map(|b| no_grad(|| b.float32(op))).transpose()?;
    let bias32 = bias32.as_ref();
    let (xs, ws) = (x32.storage(), w32.storage());
    let bs = bias32.map(Tensor::storage);
    let fused = x.backend().fused_conv2d(
        (&xs, x32.layout()),
        (&ws, w32.layout()),
        bs.as_ref().zip(bias32).map(|(s, t)| (s, t.layout())),
        &g,
        groups,
    )?;
    let shape = [g.n, weight.dims()[0], g.out[0], g.out[1]];
    let (mut y, mut layout) = match fused {
        Some(y) => (y, Layout::contiguous(&shape)),
        None => {
            // In `f32` like the kernels, under autocast too (whose products
            // would round once more).
            let _amp = crate::amp::suspended();
            let y = no_grad(|| composed_conv2d(op, &x32, &w32, bias32, window, groups))?;
            (y.storage(), y.layout().clone())
        }
    };
    if let Some(h) = half {
        y = x.backend().cast((&y, &layout), h)?;
        layout = Layout::contiguous(&shape);
    }
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
            let (x, w) = (x_saved.float32(op)?, w_saved.float32(op)?);
            let grad = grad.float32(op)?;
            let [dx, dw, db] = backward(&grad, &x, &w, g, groups, needs)?;
            let mut grads = vec![dx, dw];
            if has_bias {
                grads.push(db);
            }
            Ok(grads)
        },
    )))
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
    let Some([dx, dw, db]) = fused else {
        return no_grad(|| composed_grad(grad, x, weight, g, groups, needs));
    };
    let dev = x.device();
    let wrap = |s: Option<_>, shape: &[usize]| {
        s.map(|s| Tensor::from_storage(s, Layout::contiguous(shape), &dev))
    };
    Ok([
        wrap(dx, &g.image_shape()),
        wrap(dw, weight.dims()),
        wrap(db, &weight.dims()[..1]),
    ])
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
