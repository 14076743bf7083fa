//! Layer normalization as one tape op, for [`super::functional::layer_norm`]
//! and [`super::LayerNorm`] (which validate the arguments): the rows of the
//! input (`[rows, cols]`, `cols` the normalized elements) normalized by the
//! backend's fused kernel (Backend `fused_layer_norm`: mean, variance,
//! normalization and the affine map in one pass per row), with one gradient
//! rule (`fused_layer_norm_grad`: the input's gradient in one pass per row,
//! the weight's and the bias's as column sums). A backend that declines
//! either gets the same formulas from tensor ops, untaped, so the unfused
//! test devices check both halves on every backend.

use crate::{no_grad, Layout, Result, Tensor};

/// `(x − mean) · rstd ⊙ weight + bias` over the last `cols` elements of
/// `input` (whose trailing dims the caller checked), `weight` and `bias`
/// of `cols` elements.
pub(super) fn layer_norm(
    input: &Tensor,
    cols: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    let rows = input.numel() / cols;
    let x = input.reshape_exact(&[rows, cols])?;
    let w = weight.map(|w| w.reshape_exact(&[cols])).transpose()?;
    let b = bias.map(|b| b.reshape_exact(&[cols])).transpose()?;
    let (y, mean, rstd) = forward(&x, w.as_ref(), b.as_ref(), eps)?;
    let (x_saved, w_saved) = (x.detach(), w.as_ref().map(Tensor::detach));
    let mut inputs = vec![&x];
    inputs.extend(w.iter().chain(&b));
    let has_bias = b.is_some();
    let out = Tensor::from_op(
        "layer_norm",
        y.storage(),
        y.layout().clone(),
        &inputs,
        move |g| {
            let (dx, dw, db) = backward(g, &x_saved, &mean, &rstd, w_saved.as_ref())?;
            let mut grads = vec![Some(dx)];
            if w_saved.is_some() {
                grads.push(Some(dw));
            }
            if has_bias {
                grads.push(Some(db));
            }
            Ok(grads)
        },
    );
    out.reshape_exact(input.dims())
}

/// `(y, mean, rstd)` of the rows of `x` (`[rows, cols]`), untaped: the
/// backend's kernel, or the same formulas from tensor ops.
fn forward(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, cols) = (x.dims()[0], x.dims()[1]);
    let xs = x.storage();
    let (ws, bs) = (weight.map(Tensor::storage), bias.map(Tensor::storage));
    let fused = x.backend().fused_layer_norm(
        (&xs, x.layout()),
        ws.as_ref().zip(weight).map(|(s, t)| (s, t.layout())),
        bs.as_ref().zip(bias).map(|(s, t)| (s, t.layout())),
        eps,
    )?;
    let dev = x.device();
    if let Some((y, mean, rstd)) = fused {
        return Ok((
            Tensor::from_storage(y, Layout::contiguous(&[rows, cols]), &dev),
            Tensor::from_storage(mean, Layout::contiguous(&[rows]), &dev),
            Tensor::from_storage(rstd, Layout::contiguous(&[rows]), &dev),
        ));
    }
    no_grad(|| {
        let (var, mean) = x.var_mean(&[1], true, false)?;
        let rstd = var.add_scalar(eps)?.sqrt()?.recip()?;
        let mut y = x.sub(&mean)?.mul(&rstd)?;
        if let Some(w) = weight {
            y = y.mul(w)?;
        }
        if let Some(b) = bias {
            y = y.add(b)?;
        }
        Ok((
            y,
            mean.reshape_exact(&[rows])?,
            rstd.reshape_exact(&[rows])?,
        ))
    })
}

/// The gradients of the input, the weight and the bias from the output's
/// gradient `g`, untaped: the backend's kernel, or the same formulas from
/// tensor ops.
fn backward(
    g: &Tensor,
    x: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    weight: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, cols) = (x.dims()[0], x.dims()[1]);
    let s = [g, x, mean, rstd].map(Tensor::storage);
    let ws = weight.map(Tensor::storage);
    let fused = x.backend().fused_layer_norm_grad(
        (&s[0], g.layout()),
        (&s[1], x.layout()),
        (&s[2], mean.layout()),
        (&s[3], rstd.layout()),
        ws.as_ref().zip(weight).map(|(s, t)| (s, t.layout())),
    )?;
    let dev = x.device();
    if let Some((dx, dw, db)) = fused {
        return Ok((
            Tensor::from_storage(dx, Layout::contiguous(&[rows, cols]), &dev),
            Tensor::from_storage(dw, Layout::contiguous(&[cols]), &dev),
            Tensor::from_storage(db, Layout::contiguous(&[cols]), &dev),
        ));
    }
    no_grad(|| {
        let (mean, rstd) = (
            mean.reshape_exact(&[rows, 1])?,
            rstd.reshape_exact(&[rows, 1])?,
        );
        let x_hat = x.sub(&mean)?.mul(&rstd)?;
        let gy = match weight {
            Some(w) => g.mul(w)?,
            None => g.clone(),
        };
        let mean_gy = gy.mean(&[1], true)?;
        let mean_dot = gy.mul(&x_hat)?.mean(&[1], true)?;
        let dx = gy.sub(&mean_gy)?.sub(&x_hat.mul(&mean_dot)?)?.mul(&rstd)?;
        let dw = g.mul(&x_hat)?.sum(&[0], false)?;
        Ok((dx, dw, g.sum(&[0], false)?))
    })
}
