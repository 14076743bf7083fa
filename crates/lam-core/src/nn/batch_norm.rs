//! Batch normalization in training mode as one tape op, for
//! [`super::functional::batch_norm`] (which validates the arguments and
//! keeps the running statistics): the input viewed as `[N, C, L]` (`L` the
//! spatial dims flattened), each channel normalized by its own mean and
//! biased variance by the backend's fused kernel (Backend
//! `fused_batch_norm`: the statistics, the normalization and the affine map
//! in a few passes), with one gradient rule (`fused_batch_norm_grad`):
//!
//! ```text
//! y       = (x − mean) · invstd · weight + bias        invstd = 1 / √(var + eps)
//! dx      = weight·invstd · (g − Σg/m − x̂ · Σ(g·x̂)/m)   x̂ = (x − mean) · invstd
//! dweight = Σ g·x̂        dbias = Σ g                    (sums over m = N·L values)
//! ```
//!
//! A backend that declines either gets the same formulas from tensor ops,
//! untaped, so the unfused test devices check both halves on every backend.
//!
//! An `F16` input (a convolution's output under autocast) gives an `F16`
//! output, as PyTorch's batch norm on half tensors: the statistics and the
//! normalization are computed in `f32` from an exact copy, the output
//! rounded once, and the rule keeps the halves (half the bytes), copied to
//! `f32` again when it runs.
//! Higher-order gradients do not pass through the statistics (the saved
//! tensors are constants of the backward), as before the fused op.

use crate::{no_grad, DType, Layout, Result, Tensor};

/// `(x − mean) · invstd · weight + bias` per channel of `input` (`[N, C,
/// *]`, at least two values per channel, checked by the caller), with
/// `weight` and `bias` of `C` elements. `update` receives the batch mean
/// and biased variance (`[C]`) for the running statistics.
pub(super) fn batch_norm_train(
    input: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
    update: impl FnOnce(&Tensor, &Tensor) -> Result<()>,
) -> Result<Tensor> {
    let dims = input.dims();
    let (n, c) = (dims[0], dims[1]);
    let l = dims[2..].iter().product();
    let x = input.reshape_exact(&[n, c, l])?;
    let x32 = no_grad(|| x.float32("batch_norm"))?;
    let (mut y, stats) = forward(&x32, weight, bias, eps)?;
    if x.dtype() == DType::F16 {
        y = no_grad(|| y.to_dtype(DType::F16))?;
    }
    update(&stats.mean, &stats.var)?;
    let (x_saved, w_saved) = (x.detach(), weight.map(Tensor::detach));
    let mut inputs = vec![&x];
    inputs.extend(weight.iter().chain(&bias));
    let (has_weight, has_bias) = (weight.is_some(), bias.is_some());
    let (mean, invstd) = (stats.mean, stats.invstd);
    let out = Tensor::from_op(
        "batch_norm",
        y.storage(),
        y.layout().clone(),
        &inputs,
        move |g| {
            let (g, x) = (g.float32("batch_norm")?, x_saved.float32("batch_norm")?);
            let (dx, dw, db) = backward(&g, &x, &mean, &invstd, w_saved.as_ref())?;
            let mut grads = vec![Some(dx)];
            if has_weight {
                grads.push(Some(dw));
            }
            if has_bias {
                grads.push(Some(db));
            }
            Ok(grads)
        },
    );
    out.reshape_exact(dims)
}

/// A batch's per-channel statistics, `[C]` each.
struct Stats {
    mean: Tensor,
    var: Tensor,
    invstd: Tensor,
}

/// `(y, statistics)` of `x` (`[N, C, L]`), untaped: the backend's kernel,
/// or the same formulas from tensor ops.
fn forward(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, Stats)> {
    let c = x.dims()[1];
    let xs = x.storage();
    let (ws, bs) = (weight.map(Tensor::storage), bias.map(Tensor::storage));
    let fused = x.backend().fused_batch_norm(
        (&xs, x.layout()),
        ws.as_ref().zip(weight).map(|(s, t)| (s, t.layout())),
        bs.as_ref().zip(bias).map(|(s, t)| (s, t.layout())),
        eps,
    )?;
    let dev = x.device();
    if let Some((y, stats)) = fused {
        let stats = Tensor::from_storage(stats, Layout::contiguous(&[3, c]), &dev);
        let row = |r: usize| stats.narrow(0, r, 1)?.reshape_exact(&[c]);
        let stats = Stats {
            mean: row(0)?,
            var: row(1)?,
            invstd: row(2)?,
        };
        let y = Tensor::from_storage(y, Layout::contiguous(x.dims()), &dev);
        return Ok((y, stats));
    }
    no_grad(|| {
        let m = (x.numel() / c) as f32;
        // (`mean` is exact for a constant channel, which then normalises to 0.)
        let mean = x.mean(&[0, 2], true)?;
        let centered = x.sub(&mean)?;
        let var = centered.square()?.sum(&[0, 2], true)?.div_scalar(m)?;
        let invstd = var.add_scalar(eps)?.sqrt()?.recip()?;
        let mut y = centered.mul(&scale(&invstd, weight)?)?;
        if let Some(b) = bias {
            y = y.add(&b.reshape_exact(&[1, c, 1])?)?;
        }
        let flat = |t: &Tensor| t.reshape_exact(&[c]);
        let stats = Stats {
            mean: flat(&mean)?,
            var: flat(&var)?,
            invstd: flat(&invstd)?,
        };
        Ok((y, stats))
    })
}

/// The gradients of the input, the weight and the bias from the output's
/// gradient `g` (`[N, C, L]`), untaped: the backend's kernel, or the same
/// formulas from tensor ops.
fn backward(
    g: &Tensor,
    x: &Tensor,
    mean: &Tensor,
    invstd: &Tensor,
    weight: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let c = x.dims()[1];
    let s = [g, x, mean, invstd].map(Tensor::storage);
    let ws = weight.map(Tensor::storage);
    let fused = x.backend().fused_batch_norm_grad(
        (&s[0], g.layout()),
        (&s[1], x.layout()),
        (&s[2], mean.layout()),
        (&s[3], invstd.layout()),
        ws.as_ref().zip(weight).map(|(s, t)| (s, t.layout())),
    )?;
    let dev = x.device();
    if let Some((dx, dw, db)) = fused {
        return Ok((
            Tensor::from_storage(dx, Layout::contiguous(x.dims()), &dev),
            Tensor::from_storage(dw, Layout::contiguous(&[c]), &dev),
            Tensor::from_storage(db, Layout::contiguous(&[c]), &dev),
        ));
    }
    no_grad(|| {
        let m = (x.numel() / c) as f32;
        let per_channel = |t: &Tensor| t.reshape_exact(&[1, c, 1]);
        let (mean, invstd) = (per_channel(mean)?, per_channel(invstd)?);
        let centered = x.sub(&mean)?;
        let sum_g = g.sum(&[0, 2], true)?;
        let sum_g_centered = g.mul(&centered)?.sum(&[0, 2], true)?;
        // x̂·Σ(g·x̂)/m = centered · invstd² · Σ(g·centered) / m.
        let k = invstd.square()?.mul(&sum_g_centered)?.div_scalar(m)?;
        let dx = g
            .sub(&sum_g.div_scalar(m)?)?
            .sub(&centered.mul(&k)?)?
            .mul(&scale(&invstd, weight)?)?;
        let dw = sum_g_centered.mul(&invstd)?.reshape_exact(&[c])?;
        Ok((dx, dw, sum_g.reshape_exact(&[c])?))
    })
}

/// `invstd · weight` (`[1, C, 1]`), or `invstd` without a weight.
fn scale(invstd: &Tensor, weight: Option<&Tensor>) -> Result<Tensor> {
    let c = invstd.numel();
    match weight {
        Some(w) => invstd.mul(&w.reshape_exact(&[1, c, 1])?),
        None => Ok(invstd.clone()),
    }
}
