//! What happens between a batch's backward pass and its optimizer step:
//! gradient clipping ([`GradClip`], set in [`super::TrainConfig::clip_grad`])
//! and then the [`super::Callback::on_before_step`] hooks, which see the
//! model and its gradients as a [`Step`] and may change them.
//!
//! Clipping is `lam_core::optim`'s [`clip_grad_norm`] / [`clip_grad_value`]
//! over the model's parameters, with PyTorch's semantics: the total norm
//! is the norm of all gradients together, the gradients are scaled by
//! `min(1, max_norm / (total + 1e-6))`, and a non-finite total is not an
//! error (`error_if_nonfinite=False`): an infinite one scales every
//! gradient by 0, a NaN one makes them NaN, and the trainer's NaN guard
//! then stops the run at the next loss it reads.

use lam_core::nn::Module;
use lam_core::optim::{clip_grad_norm, clip_grad_value};
use lam_core::{Error, Result, Tensor};

/// How the trainer clips gradients after each backward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GradClip {
    /// `torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)`:
    /// scale all gradients together so their total `norm_type`-norm is at
    /// most `max_norm` (`norm_type` 2 is the Euclidean norm,
    /// `f32::INFINITY` the largest magnitude).
    Norm {
        /// The largest total norm let through (≥ 0).
        max_norm: f32,
        /// Which norm (> 0, or infinity).
        norm_type: f32,
    },
    /// `torch.nn.utils.clip_grad_value_(params, clip_value)`: clamp every
    /// gradient element to `[-clip_value, clip_value]`.
    Value(f32),
}

impl GradClip {
    /// Clipping by the total Euclidean norm: `clip_grad_norm_(params, max_norm)`.
    pub fn norm(max_norm: f32) -> GradClip {
        GradClip::Norm {
            max_norm,
            norm_type: 2.0,
        }
    }

    /// Clipping each element: `clip_grad_value_(params, clip_value)`.
    pub fn value(clip_value: f32) -> GradClip {
        GradClip::Value(clip_value)
    }

    /// An error naming the bad setting, checked before training starts.
    pub(crate) fn check(self) -> Result<()> {
        let bad = |what: String| Err(Error::invalid("TrainConfig::clip_grad", what));
        match self {
            GradClip::Norm { max_norm, .. } if max_norm.is_nan() || max_norm < 0.0 => {
                bad(format!("max_norm must be >= 0, found {max_norm}"))
            }
            GradClip::Norm { norm_type, .. } if norm_type.is_nan() || norm_type <= 0.0 => bad(
                format!("norm_type must be > 0 or infinity, found {norm_type}"),
            ),
            GradClip::Value(v) if v.is_nan() || v < 0.0 => {
                bad(format!("clip_value must be >= 0, found {v}"))
            }
            _ => Ok(()),
        }
    }

    /// Clips the gradients of `params`; returns the total norm before
    /// clipping (a 0-d tensor on the device) when clipping by norm.
    pub(crate) fn apply(self, params: &[Tensor]) -> Result<Option<Tensor>> {
        match self {
            GradClip::Norm {
                max_norm,
                norm_type,
            } => clip_grad_norm(params, max_norm, norm_type).map(Some),
            GradClip::Value(v) => clip_grad_value(params, v).map(|()| None),
        }
    }
}

/// A training step between backward and the optimizer step, as the
/// [`super::Callback::on_before_step`] hooks see it. The gradients are the
/// parameters' own (`step.model.parameters()`, then `p.grad()`): a hook
/// that replaces them (`p.set_grad(..)`, or `lam_core::optim`'s clipping
/// functions) changes what the optimizer applies.
pub struct Step<'s> {
    /// The epoch, from 1.
    pub epoch: u64,
    /// The batch within the epoch, from 0.
    pub batch: usize,
    /// The model, its gradients filled by this batch's backward pass (and
    /// clipped when [`super::TrainConfig::clip_grad`] says so).
    pub model: &'s dyn Module,
    /// This batch's loss (0-d, on the device; reading it makes a GPU wait).
    pub loss: &'s Tensor,
    /// With [`GradClip::Norm`], the total norm of the gradients before
    /// clipping (what `clip_grad_norm_` returns; 0-d, on the device).
    pub grad_norm: Option<&'s Tensor>,
}
