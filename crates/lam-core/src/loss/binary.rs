//! Binary cross-entropy, on probabilities and (stably) on logits.
//!
//! ```text
//! bce              -w (y log x + (1 - y) log(1 - x)),  each log clamped at -100
//! bce_with_logits   w ((1 - y) x + (1 + (pw - 1) y) softplus(-x))
//! ```
//!
//! `softplus(-x) = -log σ(x)` never overflows, so the logits form is the one
//! to train with. BCE on probabilities has its own gradient rule, PyTorch's
//! `w (x - y) / max(x (1 - x), 1e-12)`, which stays finite at `x = 0` and
//! `x = 1` where the clamped logs alone would give `0 · ∞`.

use crate::{no_grad, Error, Result, Tensor};

use super::{check_broadcast_weight, check_same_shape, reduce, Loss, Reduction};

/// Mean binary cross-entropy of probabilities `input` against `target`
/// (`F.binary_cross_entropy`).
pub fn binary_cross_entropy(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    BceLoss::new().forward(input, target)
}

/// Mean binary cross-entropy of logits `input` against `target`
/// (`F.binary_cross_entropy_with_logits`).
pub fn binary_cross_entropy_with_logits(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    BceWithLogitsLoss::new().forward(input, target)
}

/// Binary cross-entropy of probabilities (`torch.nn.BCELoss`).
#[derive(Debug, Clone, Default)]
pub struct BceLoss {
    weight: Option<Tensor>,
    reduction: Reduction,
}

impl BceLoss {
    /// No weight, mean reduction.
    pub fn new() -> Self {
        Self::default()
    }

    /// A weight per element, broadcast to the input's shape.
    pub fn weight(mut self, weight: Tensor) -> Self {
        self.weight = Some(weight);
        self
    }

    /// How per-element losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of probabilities `input` against `target` of the same shape,
    /// both in `[0, 1]`: a value outside (or NaN) is an error, as in PyTorch.
    /// (Checking reads two numbers of each back, which on a GPU waits for
    /// the device; `BceWithLogitsLoss` needs no check and is the stabler loss
    /// to train with.)
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "binary_cross_entropy";
        check_same_shape(OP, input, target)?;
        check_broadcast_weight(OP, "weight", self.weight.as_ref(), input)?;
        check_unit_interval(OP, "input", input)?;
        check_unit_interval(OP, "target", target)?;
        reduce(
            bce_elementwise(input, target, self.weight.as_ref())?,
            self.reduction,
        )
    }
}

/// Binary cross-entropy of logits (`torch.nn.BCEWithLogitsLoss`).
#[derive(Debug, Clone, Default)]
pub struct BceWithLogitsLoss {
    weight: Option<Tensor>,
    pos_weight: Option<Tensor>,
    reduction: Reduction,
}

impl BceWithLogitsLoss {
    /// No weights, mean reduction.
    pub fn new() -> Self {
        Self::default()
    }

    /// A weight per element, broadcast to the input's shape.
    pub fn weight(mut self, weight: Tensor) -> Self {
        self.weight = Some(weight);
        self
    }

    /// A weight of the positive term per class (broadcast along the last dims, e.g. `[C]`).
    pub fn pos_weight(mut self, pos_weight: Tensor) -> Self {
        self.pos_weight = Some(pos_weight);
        self
    }

    /// How per-element losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of logits `input` against `target` of the same shape.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "binary_cross_entropy_with_logits";
        check_same_shape(OP, input, target)?;
        check_broadcast_weight(OP, "weight", self.weight.as_ref(), input)?;
        check_broadcast_weight(OP, "pos_weight", self.pos_weight.as_ref(), input)?;
        let neg_log_sigmoid = input.neg()?.softplus()?;
        let positive = match &self.pos_weight {
            // 1 + (pw - 1) y
            Some(pw) => neg_log_sigmoid.mul(&pw.sub_scalar(1.0)?.mul(target)?.add_scalar(1.0)?)?,
            None => neg_log_sigmoid,
        };
        let mut losses = target.neg()?.add_scalar(1.0)?.mul(input)?.add(&positive)?;
        if let Some(w) = &self.weight {
            losses = losses.mul(w)?;
        }
        reduce(losses, self.reduction)
    }
}

impl Loss for BceLoss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        BceLoss::forward(self, input, target)
    }
}

impl Loss for BceWithLogitsLoss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        BceWithLogitsLoss::forward(self, input, target)
    }
}

/// Per-element BCE with its own gradient rule (see the module doc). The
/// weight is a constant; gradients flow to `x` and, if it requires grad, `y`.
fn bce_elementwise(x: &Tensor, y: &Tensor, weight: Option<&Tensor>) -> Result<Tensor> {
    let (xd, yd, wd) = (x.detach(), y.detach(), weight.map(Tensor::detach));
    let (log_x, log_1mx) = no_grad(|| -> Result<(Tensor, Tensor)> {
        let log_x = xd.log()?.clamp(-100.0, f32::INFINITY)?;
        let log_1mx = xd
            .neg()?
            .add_scalar(1.0)?
            .log()?
            .clamp(-100.0, f32::INFINITY)?;
        Ok((log_x, log_1mx))
    })?;
    let out = no_grad(|| -> Result<Tensor> {
        // PyTorch's arrangement: (y - 1) log(1 - x) - y log x
        let mut l = yd.sub_scalar(1.0)?.mul(&log_1mx)?.sub(&yd.mul(&log_x)?)?;
        if let Some(w) = &wd {
            l = l.mul(w)?;
        }
        l.contiguous()
    })?;
    let target_grad = y.requires_grad();
    Ok(Tensor::from_op(
        "binary_cross_entropy",
        out.storage(),
        out.layout().clone(),
        &[x, y],
        move |g| {
            let g = match &wd {
                Some(w) => g.mul(w)?,
                None => g.clone(),
            };
            // d/dx = (x - y) / max(x (1 - x), 1e-12)
            let denom = xd
                .mul(&xd.neg()?.add_scalar(1.0)?)?
                .clamp(1e-12, f32::INFINITY)?;
            let gx = g.mul(&xd.sub(&yd)?)?.div(&denom)?;
            // d/dy = log(1 - x) - log x
            let gy = if target_grad {
                Some(g.mul(&log_1mx.sub(&log_x)?)?)
            } else {
                None
            };
            Ok(vec![Some(gx), gy])
        },
    ))
}

/// An error unless every element of `t` is in `[0, 1]` (NaN is not).
fn check_unit_interval(op: &'static str, what: &str, t: &Tensor) -> Result<()> {
    let t = t.detach();
    let range = Tensor::stack(&[t.min_all()?, t.max_all()?], 0)?.to_vec()?;
    let (lo, hi) = (range[0], range[1]);
    if (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) {
        return Ok(());
    }
    Err(Error::invalid(
        op,
        format!("every element of {what} must be in [0, 1], found values in [{lo}, {hi}]"),
    ))
}
