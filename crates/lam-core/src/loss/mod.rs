//! Loss functions, with PyTorch's semantics (`torch.nn.functional` and the
//! `torch.nn.*Loss` modules), written once over the op set so they run and
//! differentiate on every backend.
//!
//! Each loss comes in two forms:
//! - a function with PyTorch's defaults and mean reduction:
//!   `loss::cross_entropy(&logits, &labels)?`, `loss::mse_loss(&y, &t)?`;
//! - a configurable struct: `CrossEntropyLoss::new().label_smoothing(0.1)
//!   .reduction(Reduction::Sum).forward(&logits, &labels)?`, also usable
//!   through the [`Loss`] trait.
//!
//! | loss | input / target |
//! | --- | --- |
//! | [`CrossEntropyLoss`] | logits `[N, C, ...]` / `I32` classes `[N, ...]` or `F32` probabilities `[N, C, ...]` |
//! | [`NllLoss`] | log-probabilities `[N, C, ...]` / `I32` classes `[N, ...]` |
//! | [`MseLoss`], [`L1Loss`], [`SmoothL1Loss`], [`HuberLoss`] | any shape / the same shape |
//! | [`BceLoss`] | probabilities / targets in `[0, 1]`, same shape |
//! | [`BceWithLogitsLoss`] | logits / targets in `[0, 1]`, same shape |
//!
//! Unlike PyTorch, a target whose shape differs from the input's is an error
//! rather than a broadcast with a warning (it is almost always a bug), and an
//! empty input is an error rather than a NaN.

mod binary;
mod classification;
mod regression;

pub use binary::{
    binary_cross_entropy, binary_cross_entropy_with_logits, BceLoss, BceWithLogitsLoss,
};
pub use classification::{cross_entropy, nll_loss, CrossEntropyLoss, NllLoss};
pub use regression::{
    huber_loss, l1_loss, mse_loss, smooth_l1_loss, HuberLoss, L1Loss, MseLoss, SmoothL1Loss,
};

use crate::{Error, Result, Tensor};

/// How per-element losses are combined (PyTorch's `reduction=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reduction {
    /// The mean over elements (for weighted class losses: `Σ w l / Σ w`).
    #[default]
    Mean,
    /// The sum over elements.
    Sum,
    /// No reduction: one loss per element (per sample for class losses).
    None,
}

/// A configured loss: `loss.forward(&input, &target)`.
pub trait Loss {
    /// The loss of `input` against `target`.
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor>;
}

/// Applies `reduction` to per-element losses.
fn reduce(losses: Tensor, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::Mean => losses.mean_all(),
        Reduction::Sum => losses.sum_all(),
        Reduction::None => Ok(losses),
    }
}

/// An error unless `input` and `target` are non-empty float tensors (`F32`,
/// or `F16`, which the loss's ops compute in `f32`) of one shape on one device.
fn check_same_shape(op: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    input.check_float(op)?;
    target.check_float(op)?;
    input.device().check_same(&target.device(), op)?;
    if input.dims() != target.dims() {
        return Err(Error::shape(
            op,
            format!("a target of the input's shape {:?}", input.dims()),
            target.dims(),
        ));
    }
    if input.numel() == 0 {
        return Err(Error::Empty { op });
    }
    Ok(())
}

/// An error unless the optional per-element `weight` is an `F32` tensor on
/// `input`'s device that broadcasts to `input`'s shape.
fn check_broadcast_weight(
    op: &'static str,
    name: &str,
    weight: Option<&Tensor>,
    input: &Tensor,
) -> Result<()> {
    let Some(w) = weight else { return Ok(()) };
    w.check_float(op)?;
    input.device().check_same(&w.device(), op)?;
    let fits = crate::layout::broadcast_shapes(op, w.dims(), input.dims())
        .ok()
        .as_deref()
        == Some(input.dims());
    if !fits {
        return Err(Error::shape(
            op,
            format!(
                "a {name} that broadcasts to the input's shape {:?}",
                input.dims()
            ),
            w.dims(),
        ));
    }
    Ok(())
}
