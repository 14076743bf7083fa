//! Regression losses of `d = input - target`, elementwise then reduced:
//!
//! ```text
//! mse        d²
//! l1         |d|
//! smooth_l1  0.5 d² / β          if |d| < β, else |d| - 0.5 β       (β = 0: l1)
//! huber      0.5 d²              if |d| < δ, else δ (|d| - 0.5 δ)
//! ```

use crate::{no_grad, Error, Result, Tensor};

use super::{check_same_shape, reduce, Loss, Reduction};

/// Mean squared error (`F.mse_loss`).
pub fn mse_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    MseLoss::new().forward(input, target)
}

/// Mean absolute error (`F.l1_loss`).
pub fn l1_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    L1Loss::new().forward(input, target)
}

/// Mean smooth-L1 loss with threshold `beta` (`F.smooth_l1_loss`; PyTorch's default β is 1).
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, beta: f32) -> Result<Tensor> {
    SmoothL1Loss::new().beta(beta).forward(input, target)
}

/// Mean Huber loss with threshold `delta` (`F.huber_loss`; PyTorch's default δ is 1).
pub fn huber_loss(input: &Tensor, target: &Tensor, delta: f32) -> Result<Tensor> {
    HuberLoss::new().delta(delta).forward(input, target)
}

/// Squared error (`torch.nn.MSELoss`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MseLoss {
    reduction: Reduction,
}

impl MseLoss {
    /// Mean reduction.
    pub fn new() -> Self {
        Self::default()
    }

    /// How per-element losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of `input` against a `target` of the same shape.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        check_same_shape("mse_loss", input, target)?;
        reduce(input.sub(target)?.square()?, self.reduction)
    }
}

/// Absolute error (`torch.nn.L1Loss`).
#[derive(Debug, Clone, Copy, Default)]
pub struct L1Loss {
    reduction: Reduction,
}

impl L1Loss {
    /// Mean reduction.
    pub fn new() -> Self {
        Self::default()
    }

    /// How per-element losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of `input` against a `target` of the same shape.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        check_same_shape("l1_loss", input, target)?;
        reduce(input.sub(target)?.abs()?, self.reduction)
    }
}

/// Smooth L1 (`torch.nn.SmoothL1Loss`): quadratic below `beta`, linear above.
#[derive(Debug, Clone, Copy)]
pub struct SmoothL1Loss {
    beta: f32,
    reduction: Reduction,
}

impl SmoothL1Loss {
    /// β = 1, mean reduction.
    pub fn new() -> Self {
        SmoothL1Loss {
            beta: 1.0,
            reduction: Reduction::Mean,
        }
    }

    /// The threshold β ≥ 0 (0 gives the L1 loss).
    pub fn beta(mut self, beta: f32) -> Self {
        self.beta = beta;
        self
    }

    /// How per-element losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of `input` against a `target` of the same shape.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "smooth_l1_loss";
        check_same_shape(OP, input, target)?;
        let beta = self.beta;
        if !(beta >= 0.0 && beta.is_finite()) {
            return Err(Error::invalid(
                OP,
                format!("beta must be finite and >= 0, found {beta}"),
            ));
        }
        let d = input.sub(target)?;
        let losses = if beta == 0.0 {
            d.abs()?
        } else {
            piecewise(&d, beta, 1.0 / beta, 1.0)?
        };
        reduce(losses, self.reduction)
    }
}

impl Default for SmoothL1Loss {
    fn default() -> Self {
        Self::new()
    }
}

/// Huber (`torch.nn.HuberLoss`): quadratic below `delta`, linear above.
#[derive(Debug, Clone, Copy)]
pub struct HuberLoss {
    delta: f32,
    reduction: Reduction,
}

impl HuberLoss {
    /// δ = 1, mean reduction.
    pub fn new() -> Self {
        HuberLoss {
            delta: 1.0,
            reduction: Reduction::Mean,
        }
    }

    /// The threshold δ > 0.
    pub fn delta(mut self, delta: f32) -> Self {
        self.delta = delta;
        self
    }

    /// How per-element losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of `input` against a `target` of the same shape.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "huber_loss";
        check_same_shape(OP, input, target)?;
        let delta = self.delta;
        if !(delta > 0.0 && delta.is_finite()) {
            return Err(Error::invalid(
                OP,
                format!("delta must be finite and > 0, found {delta}"),
            ));
        }
        let d = input.sub(target)?;
        reduce(piecewise(&d, delta, 1.0, delta)?, self.reduction)
    }
}

impl Default for HuberLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl Loss for MseLoss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        MseLoss::forward(self, input, target)
    }
}

impl Loss for L1Loss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        L1Loss::forward(self, input, target)
    }
}

impl Loss for SmoothL1Loss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        SmoothL1Loss::forward(self, input, target)
    }
}

impl Loss for HuberLoss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        HuberLoss::forward(self, input, target)
    }
}

/// `quad_scale * 0.5 d²` where `|d| < t`, else `lin_scale * (|d| - 0.5 t)`:
/// smooth L1 and Huber differ only in the two scales. The gradient is
/// PyTorch's closed form, `quad_scale * clamp(d, -t, t)`, rather than the
/// two branches' own gradients: the unused branch's would be `0 · ∞` (NaN)
/// at an infinite `d`.
fn piecewise(d: &Tensor, t: f32, quad_scale: f32, lin_scale: f32) -> Result<Tensor> {
    let value = no_grad(|| -> Result<Tensor> {
        let a = d.abs()?;
        let inside = a.lt_scalar(t)?;
        let quad = d.square()?.mul_scalar(0.5 * quad_scale)?;
        let lin = a.sub_scalar(0.5 * t)?.mul_scalar(lin_scale)?;
        Tensor::where_cond(&inside, &quad, &lin)
    })?;
    let dd = d.detach();
    Ok(Tensor::from_op(
        "huber",
        value.storage(),
        value.layout().clone(),
        &[d],
        move |g| {
            Ok(vec![Some(
                g.mul(&dd.clamp(-t, t)?.mul_scalar(quad_scale)?)?,
            )])
        },
    ))
}
