//! Cross-entropy and negative log-likelihood over classes, with PyTorch's
//! options: class weights, `ignore_index` (default -100), label smoothing
//! and probability targets.
//!
//! Inputs are `[N, C]`, `[C]` (one sample) or `[N, C, d1, ...]` (a class
//! score per position, e.g. per pixel); class-index targets then have the
//! input's shape without the class dim. Internally everything is flattened to
//! `[M, C]` rows. For class-index targets the per-row loss is
//!
//! ```text
//! l_n = (1 - ε) w[y_n] (-logp[n, y_n]) + (ε / C) Σ_c w[c] (-logp[n, c])
//! ```
//!
//! (zero where `y_n == ignore_index`), and the mean is `Σ l_n / Σ w[y_n]`
//! over the rows not ignored — PyTorch's weighted mean. For probability
//! targets `p` it is `l_n = -Σ_c w[c] p'[n, c] logp[n, c]` with
//! `p' = (1 - ε) p + ε / C`, and the mean divides by `M`.

use crate::{DType, Error, Result, Tensor};

use super::{reduce, Loss, Reduction};

/// Mean cross-entropy of `logits` against class indices (`I32`) or class
/// probabilities (`F32`, the logits' shape): `F.cross_entropy(logits, target)`.
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    CrossEntropyLoss::new().forward(logits, target)
}

/// Mean negative log-likelihood of log-probabilities against class indices:
/// `F.nll_loss(log_probs, target)`.
pub fn nll_loss(log_probs: &Tensor, target: &Tensor) -> Result<Tensor> {
    NllLoss::new().forward(log_probs, target)
}

/// Cross-entropy of logits (`torch.nn.CrossEntropyLoss`).
#[derive(Debug, Clone)]
pub struct CrossEntropyLoss {
    weight: Option<Tensor>,
    ignore_index: i32,
    label_smoothing: f32,
    reduction: Reduction,
}

impl CrossEntropyLoss {
    /// No class weights, `ignore_index` -100, no smoothing, mean reduction.
    pub fn new() -> Self {
        CrossEntropyLoss {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }

    /// A weight per class (`F32 [C]`).
    pub fn weight(mut self, weight: Tensor) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Targets equal to `index` contribute nothing (class-index targets only).
    pub fn ignore_index(mut self, index: i32) -> Self {
        self.ignore_index = index;
        self
    }

    /// Mixes the target with the uniform distribution: `ε` in `[0, 1]`.
    pub fn label_smoothing(mut self, epsilon: f32) -> Self {
        self.label_smoothing = epsilon;
        self
    }

    /// How per-sample losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of `logits` against `target`: `I32` class indices with the
    /// logits' shape less the class dim, or `F32` probabilities of the
    /// logits' shape.
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        let eps = self.label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::invalid(
                OP,
                format!("label_smoothing must be in [0, 1], found {eps}"),
            ));
        }
        let rows = Rows::new(OP, logits, target, self.weight.as_ref())?;
        if target.dtype() == DType::F32 {
            if self.ignore_index != -100 {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "ignore_index ({}) is not supported for probability (F32) targets",
                        self.ignore_index
                    ),
                ));
            }
            let logp = rows.input.log_softmax(1)?;
            return prob_target_loss(&logp, &rows, self.weight.as_ref(), eps, self.reduction);
        }
        let fused = self.weight.is_none() && eps == 0.0 && self.reduction == Reduction::Mean;
        let may_ignore = check_class_targets(OP, &rows.target, rows.classes, self.ignore_index)?;
        if fused && !may_ignore {
            return rows.input.cross_entropy(&rows.target);
        }
        let logp = rows.input.log_softmax(1)?;
        let opts = ClassOptions {
            weight: self.weight.as_ref(),
            ignore_index: self.ignore_index,
            may_ignore,
            label_smoothing: eps,
            reduction: self.reduction,
        };
        class_index_loss(&logp, &rows, &opts)
    }
}

impl Default for CrossEntropyLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl Loss for CrossEntropyLoss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        CrossEntropyLoss::forward(self, input, target)
    }
}

/// Negative log-likelihood of log-probabilities (`torch.nn.NLLLoss`).
#[derive(Debug, Clone)]
pub struct NllLoss {
    weight: Option<Tensor>,
    ignore_index: i32,
    reduction: Reduction,
}

impl NllLoss {
    /// No class weights, `ignore_index` -100, mean reduction.
    pub fn new() -> Self {
        NllLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
        }
    }

    /// A weight per class (`F32 [C]`).
    pub fn weight(mut self, weight: Tensor) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Targets equal to `index` contribute nothing.
    pub fn ignore_index(mut self, index: i32) -> Self {
        self.ignore_index = index;
        self
    }

    /// How per-sample losses are combined.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss of log-probabilities `[N, C, ...]` against `I32` classes `[N, ...]`.
    pub fn forward(&self, log_probs: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "nll_loss";
        if target.dtype() != DType::I32 {
            return Err(Error::invalid(
                OP,
                "targets must be I32 class indices (use to_labels() to convert)",
            ));
        }
        let rows = Rows::new(OP, log_probs, target, self.weight.as_ref())?;
        let may_ignore = check_class_targets(OP, &rows.target, rows.classes, self.ignore_index)?;
        let opts = ClassOptions {
            weight: self.weight.as_ref(),
            ignore_index: self.ignore_index,
            may_ignore,
            label_smoothing: 0.0,
            reduction: self.reduction,
        };
        class_index_loss(&rows.input, &rows, &opts)
    }
}

impl Default for NllLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl Loss for NllLoss {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        NllLoss::forward(self, input, target)
    }
}

/// Input and target flattened to rows: input `[M, C]`, target `[M]` (class
/// indices) or `[M, C]` (probabilities), and the shape of an unreduced loss.
struct Rows {
    input: Tensor,
    target: Tensor,
    classes: usize,
    out_shape: Vec<usize>,
}

impl Rows {
    /// Validates shapes, dtypes and devices, and flattens.
    fn new(
        op: &'static str,
        input: &Tensor,
        target: &Tensor,
        weight: Option<&Tensor>,
    ) -> Result<Rows> {
        input.check_float(op)?;
        input.device().check_same(&target.device(), op)?;
        if input.rank() == 0 {
            return Err(Error::RankMismatch {
                op,
                expected: "1 ([C]), 2 ([N, C]) or more ([N, C, d1, ...])".into(),
                found: 0,
                shape: input.shape(),
            });
        }
        let class_dim = if input.rank() == 1 { 0 } else { 1 };
        let classes = input.dims()[class_dim];
        if input.numel() == 0 {
            return Err(Error::Empty { op });
        }
        if let Some(w) = weight {
            w.check_float(op)?;
            input.device().check_same(&w.device(), op)?;
            if w.dims() != [classes] {
                return Err(Error::shape(
                    op,
                    format!("a class weight of shape [{classes}]"),
                    w.dims(),
                ));
            }
        }
        // [N, C, d1, ...] -> [N, d1, ..., C] -> [M, C]
        let mut order: Vec<usize> = (0..input.rank()).filter(|&d| d != class_dim).collect();
        order.push(class_dim);
        let moved = if input.rank() > 2 {
            input.permute(&order)?
        } else {
            input.clone()
        };
        let rows = input.numel() / classes;
        let flat_input = moved.reshape_exact(&[rows, classes])?;
        let mut out_shape = input.shape();
        out_shape.remove(class_dim);
        let flat_target = match target.dtype() {
            DType::I32 => {
                if target.dims() != out_shape.as_slice() {
                    return Err(Error::shape(
                        op,
                        format!("class-index targets of shape {out_shape:?} (the input's shape without the class dim)"),
                        target.dims(),
                    ));
                }
                target.reshape_exact(&[rows])?
            }
            DType::F32 | DType::F16 => {
                if target.dims() != input.dims() {
                    return Err(Error::shape(
                        op,
                        format!(
                            "F32 targets to be class probabilities of the input's shape {:?} \
                             (class indices must be I32: use to_labels())",
                            input.dims()
                        ),
                        target.dims(),
                    ));
                }
                let moved = if input.rank() > 2 {
                    target.permute(&order)?
                } else {
                    target.clone()
                };
                moved.reshape_exact(&[rows, classes])?
            }
        };
        Ok(Rows {
            input: flat_input,
            target: flat_target,
            classes,
            out_shape,
        })
    }
}

struct ClassOptions<'a> {
    weight: Option<&'a Tensor>,
    ignore_index: i32,
    /// False when no target can equal `ignore_index` (no mask needed).
    may_ignore: bool,
    label_smoothing: f32,
    reduction: Reduction,
}

/// Whether some target may equal `ignore_index`, checking on the way that
/// every target is a class in `0..classes` or `ignore_index` where that is
/// cheap: from the targets' known bounds, or by reading them on the CPU. A
/// GPU's targets are not read back (that would wait for the device in every
/// step): the gather of the log-probabilities checks each class there.
fn check_class_targets(
    op: &'static str,
    target: &Tensor,
    classes: usize,
    ignore_index: i32,
) -> Result<bool> {
    let known = target.int_range();
    if let Some((lo, hi)) = known {
        if lo >= 0 && (hi as usize) < classes {
            return Ok((lo..=hi).contains(&ignore_index));
        }
        // Bounds the targets attain are targets: one outside the classes
        // (and not ignored) is an error now, on any device.
        let invalid = |t: i32| t != ignore_index && (t < 0 || t as usize >= classes);
        if target.range_attained() {
            if let Some(t) = [lo, hi].into_iter().find(|&t| invalid(t)) {
                return Err(Error::OutOfRange {
                    op,
                    index: t as i64,
                    size: classes,
                });
            }
        }
    }
    if target.device().is_gpu() {
        return Ok(true);
    }
    let values = target.to_vec_i32()?;
    let mut ignored = false;
    for &t in &values {
        if t == ignore_index {
            ignored = true;
        } else if t < 0 || t as usize >= classes {
            return Err(Error::OutOfRange {
                op,
                index: t as i64,
                size: classes,
            });
        }
    }
    Ok(ignored)
}

/// The class-index loss of log-probabilities `logp` `[M, C]` (see the module doc).
fn class_index_loss(logp: &Tensor, rows: &Rows, opts: &ClassOptions) -> Result<Tensor> {
    let m = rows.target.numel();
    let dev = logp.device();
    // keep[n] = 1 unless target n is ignored; ignored rows read class 0 and are then zeroed.
    let (classes, keep) = if opts.may_ignore {
        let t = rows.target.to_dtype(DType::F32)?;
        let keep = t.ne(&Tensor::scalar(opts.ignore_index as f32, &dev)?)?;
        // Ignored rows read class 0; every other target keeps its value, so
        // the gather below still rejects one outside `0..classes`.
        let safe =
            Tensor::where_cond(&keep, &t, &Tensor::scalar(0.0, &dev)?)?.to_dtype(DType::I32)?;
        (safe, Some(keep))
    } else {
        (rows.target.clone(), None)
    };
    let picked = logp
        .gather(1, &classes.reshape_exact(&[m, 1])?)?
        .reshape_exact(&[m])?;
    let mut nll = picked.neg()?;
    // The weight of each row's target class, zero where ignored: the mean's denominator.
    let row_weight = match (opts.weight, &keep) {
        (Some(w), Some(k)) => Some(w.index_select(0, &classes)?.mul(k)?),
        (Some(w), None) => Some(w.index_select(0, &classes)?),
        (None, Some(k)) => Some(k.clone()),
        (None, None) => None,
    };
    if let Some(rw) = &row_weight {
        nll = nll.mul(rw)?;
    }
    let eps = opts.label_smoothing;
    let losses = if eps > 0.0 {
        let weighted = match opts.weight {
            Some(w) => logp.mul(&w.reshape_exact(&[1, rows.classes])?)?,
            None => logp.clone(),
        };
        let mut smooth = weighted.sum(&[1], false)?.neg()?;
        if let Some(k) = &keep {
            smooth = smooth.mul(k)?;
        }
        nll.mul_scalar(1.0 - eps)?
            .add(&smooth.mul_scalar(eps / rows.classes as f32)?)?
    } else {
        nll
    };
    match (opts.reduction, row_weight) {
        (Reduction::Mean, Some(rw)) => weighted_mean(&losses, &rw),
        (Reduction::None, _) => losses.reshape_exact(&rows.out_shape),
        (r, _) => reduce(losses, r),
    }
}

/// The probability-target cross-entropy of log-probabilities `logp` `[M, C]`.
fn prob_target_loss(
    logp: &Tensor,
    rows: &Rows,
    weight: Option<&Tensor>,
    eps: f32,
    reduction: Reduction,
) -> Result<Tensor> {
    let mut p = rows.target.clone();
    if eps > 0.0 {
        p = p
            .mul_scalar(1.0 - eps)?
            .add_scalar(eps / rows.classes as f32)?;
    }
    let mut terms = logp.mul(&p)?;
    if let Some(w) = weight {
        terms = terms.mul(&w.reshape_exact(&[1, rows.classes])?)?;
    }
    let losses = terms.sum(&[1], false)?.neg()?;
    match reduction {
        Reduction::None => losses.reshape_exact(&rows.out_shape),
        r => reduce(losses, r),
    }
}

/// `Σ losses / Σ weights`, PyTorch's weighted mean. When every weight is 0
/// (every target ignored) the loss is NaN, as in PyTorch, but its gradient is
/// 0 rather than 0/0: one such batch must not destroy the weights.
fn weighted_mean(losses: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let total = weights.sum_all()?;
    let zero = Tensor::zeros_like(&total)?;
    let nothing = total.eq(&zero)?;
    let scale = Tensor::where_cond(&nothing, &zero, &total.recip()?)?;
    let nan_if_nothing = Tensor::where_cond(&nothing, &zero.div(&zero)?, &zero)?;
    losses.sum_all()?.mul(&scale)?.add(&nan_if_nothing)
}
