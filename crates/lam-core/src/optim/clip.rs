//! Gradient clipping, as `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.
//! Both replace the gradients through `set_grad`, on the device, without
//! reading anything back (the total norm is returned as a tensor).

use crate::{Error, NoGradGuard, Result, Tensor};

/// Scales every gradient by `min(1, max_norm / (total + 1e-6))`, where
/// `total` is the `norm_type`-norm of all gradients together (the norm of the
/// per-parameter norms; `f32::INFINITY` for the max-norm), and returns
/// `total` as a 0-d tensor. Parameters without a gradient are skipped; with
/// none at all the total is 0.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f32, norm_type: f32) -> Result<Tensor> {
    const OP: &str = "clip_grad_norm";
    if norm_type.is_nan() || norm_type <= 0.0 {
        return Err(Error::invalid(
            OP,
            format!("norm_type must be > 0 or infinity, found {norm_type}"),
        ));
    }
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::invalid(
            OP,
            format!("max_norm must be >= 0, found {max_norm}"),
        ));
    }
    let _no_grad = NoGradGuard::new();
    let grads: Vec<(&Tensor, Tensor)> = params
        .iter()
        .filter_map(|p| p.grad().map(|g| (p, g)))
        .collect();
    let Some((first, _)) = grads.first() else {
        return match params.first() {
            Some(p) => Tensor::scalar(0.0, &p.device()),
            None => Err(Error::invalid(OP, "got an empty parameter list")),
        };
    };
    let dev = first.device();
    let norms = grads
        .iter()
        .map(|(_, g)| {
            g.device().check_same(&dev, OP)?;
            vector_norm(g, norm_type)
        })
        .collect::<Result<Vec<_>>>()?;
    let total = vector_norm(&Tensor::stack(&norms, 0)?, norm_type)?;
    let coef = total
        .add_scalar(1e-6)?
        .recip()?
        .mul_scalar(max_norm)?
        .clamp(f32::NEG_INFINITY, 1.0)?;
    for (p, g) in &grads {
        p.set_grad(Some(g.mul(&coef)?))?;
    }
    Ok(total)
}

/// Clamps every gradient element to `[-clip_value, clip_value]`.
pub fn clip_grad_value(params: &[Tensor], clip_value: f32) -> Result<()> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return Err(Error::invalid(
            "clip_grad_value",
            format!("clip_value must be >= 0, found {clip_value}"),
        ));
    }
    let _no_grad = NoGradGuard::new();
    for p in params {
        if let Some(g) = p.grad() {
            p.set_grad(Some(g.clamp(-clip_value, clip_value)?))?;
        }
    }
    Ok(())
}

/// `(Σ |x|^p)^(1/p)` over all elements, or `max |x|` for `p = ∞`, as a 0-d tensor.
fn vector_norm(x: &Tensor, p: f32) -> Result<Tensor> {
    if p == 2.0 {
        return x.square()?.sum_all()?.sqrt();
    }
    let a = x.abs()?;
    if p == f32::INFINITY {
        a.max_all()
    } else if p == 1.0 {
        a.sum_all()
    } else {
        a.pow_scalar(p)?.sum_all()?.pow_scalar(1.0 / p)
    }
}
