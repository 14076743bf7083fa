//! Test support shared by every lam crate's test suite: gradient checking by
//! central finite differences (as PyTorch's `gradcheck`), float comparison
//! with absolute plus relative tolerance, and devices that force every code
//! path ([`Unfused`], [`Declining`], [`Recorder`]).
//!
//! It is public so users can gradient-check their own layers too.

mod devices;

pub use devices::{CallCounts, DeclineFused, DeclineNamed, Declining, Recorder, Unfused};

use crate::{no_grad, Error, Result, Tensor};

/// Tolerances for [`gradcheck`].
#[derive(Debug, Clone, Copy)]
pub struct GradCheck {
    /// Finite-difference step.
    pub eps: f32,
    /// Allowed absolute error.
    pub atol: f32,
    /// Allowed error relative to the larger magnitude.
    pub rtol: f32,
}

impl Default for GradCheck {
    fn default() -> Self {
        // f32 central differences: truncation ~eps², rounding ~1e-7/eps.
        GradCheck {
            eps: 1e-2,
            atol: 2e-3,
            rtol: 2e-2,
        }
    }
}

/// Compares the gradients of `f` at `inputs` computed by backpropagation
/// with central finite differences, and returns an error describing the
/// first disagreement. `f` may return any shape: it is reduced to a scalar by
/// a fixed random weighting so every output element is checked.
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    tol: GradCheck,
) -> Result<()> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.detach().requires_grad_())
        .collect::<Result<_>>()?;
    let out = f(&leaves)?;
    // A fixed weighting in (0.5, 1.5) makes the scalar depend on every output element.
    let weights: Vec<f32> = (0..out.numel())
        .map(|i| 0.5 + crate::rng::uniform01(12_345, i as u32))
        .collect();
    let w = Tensor::from_vec(weights, out.dims(), &out.device())?;
    let scalar = |o: &Tensor| -> Result<f64> { Ok(o.mul(&w)?.sum_all()?.item()? as f64) };
    out.mul(&w)?.sum_all()?.backward()?;

    for (k, leaf) in leaves.iter().enumerate() {
        let analytic = match leaf.grad() {
            Some(g) => g.to_vec()?,
            None => vec![0.0; leaf.numel()],
        };
        let base = leaf.contiguous()?.to_vec()?;
        for i in 0..base.len() {
            let eval = |delta: f32| -> Result<f64> {
                let mut v = base.clone();
                v[i] += delta;
                let moved = Tensor::from_vec(v, leaf.dims(), &leaf.device())?;
                let args: Vec<Tensor> = leaves
                    .iter()
                    .enumerate()
                    .map(|(j, t)| if j == k { moved.clone() } else { t.detach() })
                    .collect();
                no_grad(|| scalar(&f(&args)?))
            };
            let numeric = (eval(tol.eps)? - eval(-tol.eps)?) / (2.0 * tol.eps as f64);
            let a = analytic[i] as f64;
            let allowed = tol.atol as f64 + tol.rtol as f64 * a.abs().max(numeric.abs());
            if (a - numeric).abs() > allowed || !a.is_finite() {
                return Err(Error::Autograd(format!(
                    "gradcheck: input {k} element {i} of {:?}: analytic {a:.6} vs numeric {numeric:.6}",
                    leaf.dims()
                )));
            }
        }
    }
    Ok(())
}

/// An error unless `actual` and `expected` agree elementwise within
/// `atol + rtol * |expected|`, naming the first element that does not.
pub fn assert_close(actual: &[f32], expected: &[f32], atol: f32, rtol: f32) -> Result<()> {
    if actual.len() != expected.len() {
        return Err(Error::invalid(
            "assert_close",
            format!("lengths differ: {} vs {}", actual.len(), expected.len()),
        ));
    }
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = (a - e).abs() <= atol + rtol * e.abs() || (a.is_nan() && e.is_nan()) || a == e;
        if !ok {
            return Err(Error::invalid(
                "assert_close",
                format!("element {i}: {a} vs expected {e} (atol {atol}, rtol {rtol})"),
            ));
        }
    }
    Ok(())
}
