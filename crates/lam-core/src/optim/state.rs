//! What every optimizer shares: its parameter list with lazily created
//! per-parameter state, the snapshot/restore of that state behind
//! `state_dict` and `load_state_dict`, hyper-parameter checks, and the
//! regularized gradient.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::{DType, Device, Error, Layout, Result, Tensor};

use super::{OptimizerState, ParamState, MAX_STEP};

/// An optimizer's parameters and their state, index for index.
#[derive(Debug)]
pub(crate) struct Params {
    pub(crate) tensors: Vec<Tensor>,
    pub(crate) state: Vec<Option<ParamState>>,
}

impl Params {
    /// Checks the list: non-empty, `F32`, no tensor twice.
    pub(crate) fn new(op: &'static str, tensors: Vec<Tensor>) -> Result<Params> {
        if tensors.is_empty() {
            return Err(Error::invalid(op, "got an empty parameter list"));
        }
        let mut seen = HashSet::new();
        for (i, p) in tensors.iter().enumerate() {
            p.check_f32(op)?;
            if !seen.insert(p.id()) {
                return Err(Error::invalid(
                    op,
                    format!("parameter {i} appears more than once"),
                ));
            }
        }
        // So that the first backward reports a tensor given a gradient
        // that no optimizer updates (a parameter missing from a model's visit).
        crate::autograd::register_optimized(&tensors);
        let state = vec![None; tensors.len()];
        Ok(Params { tensors, state })
    }

    /// The state of parameter `i` taken out for one update (created empty
    /// on first use), its step count advanced by one; [`Params::end_step`]
    /// puts it back.
    pub(crate) fn begin_step(&mut self, i: usize) -> ParamState {
        let mut st = self.state[i].take().unwrap_or_else(|| ParamState {
            step: 0,
            buffers: BTreeMap::new(),
        });
        st.step += 1;
        st
    }

    /// Puts back the state taken by [`Params::begin_step`].
    pub(crate) fn end_step(&mut self, i: usize, st: ParamState) {
        self.state[i] = Some(st);
    }

    /// A copy of every hyper-parameter and buffer.
    pub(crate) fn snapshot(
        &self,
        kind: &str,
        hyper: BTreeMap<String, f64>,
    ) -> Result<OptimizerState> {
        let params = self
            .state
            .iter()
            .map(|st| {
                st.as_ref()
                    .map(|st| {
                        let buffers = st
                            .buffers
                            .iter()
                            .map(|(k, t)| Ok((k.clone(), fresh_copy(t, &t.device())?)))
                            .collect::<Result<_>>()?;
                        Ok(ParamState {
                            step: st.step,
                            buffers,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(OptimizerState {
            kind: kind.to_string(),
            hyper,
            params,
        })
    }

    /// Checks `state` against this optimizer (kind, parameter count, buffer
    /// names from `allowed`, shapes) and returns its per-parameter state as
    /// fresh copies on each parameter's device. Changes nothing.
    pub(crate) fn checked_state(
        &self,
        kind: &str,
        state: &OptimizerState,
        allowed: &[&str],
    ) -> Result<Vec<Option<ParamState>>> {
        const OP: &str = "load_state_dict";
        if state.kind != kind {
            return Err(Error::invalid(
                OP,
                format!("state of a {} optimizer loaded into {kind}", state.kind),
            ));
        }
        if state.params.len() != self.tensors.len() {
            return Err(Error::invalid(
                OP,
                format!(
                    "state for {} parameters loaded into an optimizer of {}",
                    state.params.len(),
                    self.tensors.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(self.tensors.len());
        for (i, (p, st)) in self.tensors.iter().zip(&state.params).enumerate() {
            let Some(st) = st else {
                out.push(None);
                continue;
            };
            if !(1..=MAX_STEP).contains(&st.step) {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "parameter {i}: step count {} is outside 1..={MAX_STEP}",
                        st.step
                    ),
                ));
            }
            let names: BTreeSet<&str> = st.buffers.keys().map(String::as_str).collect();
            let wanted: BTreeSet<&str> = allowed.iter().copied().collect();
            if names != wanted {
                return Err(Error::invalid(
                    OP,
                    format!("parameter {i}: {kind} expects buffers {wanted:?}, found {names:?}"),
                ));
            }
            let mut buffers = BTreeMap::new();
            for (name, t) in &st.buffers {
                if t.dims() != p.dims() || t.dtype() != DType::F32 {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "parameter {i}: buffer {name} is {:?} {}, the parameter is {:?} float32",
                            t.dims(),
                            t.dtype(),
                            p.dims()
                        ),
                    ));
                }
                buffers.insert(name.clone(), fresh_copy(t, &p.device())?);
            }
            out.push(Some(ParamState {
                step: st.step,
                buffers,
            }));
        }
        Ok(out)
    }
}

/// An error naming `name` unless `ok` (a hyper-parameter check).
pub(crate) fn require(
    op: &'static str,
    name: &str,
    value: f32,
    ok: bool,
    rule: &str,
) -> Result<()> {
    if ok && !value.is_nan() {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("{name} must be {rule}, found {value}"),
        ))
    }
}

/// The shared checks on the learning rate, weight decay and L1 penalty.
pub(crate) fn require_common(op: &'static str, lr: f32, weight_decay: f32, l1: f32) -> Result<()> {
    require(op, "lr", lr, lr >= 0.0 && lr.is_finite(), "finite and >= 0")?;
    require(
        op,
        "weight_decay",
        weight_decay,
        weight_decay >= 0.0 && weight_decay.is_finite(),
        "finite and >= 0",
    )?;
    require(op, "l1", l1, l1 >= 0.0 && l1.is_finite(), "finite and >= 0")
}

/// `grad + l1 sign(p) + weight_decay p`, each term only when its
/// coefficient is non-zero (so with neither, the gradient itself).
pub(crate) fn regularized_grad(
    p: &Tensor,
    grad: &Tensor,
    weight_decay: f32,
    l1: f32,
) -> Result<Tensor> {
    let mut g = grad.clone();
    if l1 != 0.0 {
        g = g.add(&p.sign()?.mul_scalar(l1)?)?;
    }
    if weight_decay != 0.0 {
        g = g.add(&p.mul_scalar(weight_decay)?)?;
    }
    Ok(g)
}

/// Buffer `name` of a parameter's state on the parameter's device, or
/// `init()` when there is none yet.
pub(crate) fn buffer(
    st: &ParamState,
    name: &str,
    p: &Tensor,
    init: impl FnOnce() -> Result<Tensor>,
) -> Result<Tensor> {
    match st.buffers.get(name) {
        Some(b) if b.device() == p.device() => Ok(b.clone()),
        Some(b) => fresh_copy(b, &p.device()),
        None => init(),
    }
}

/// True when `t` views exactly its whole buffer in row-major order (what a
/// fused in-place kernel needs).
pub(crate) fn is_dense(t: &Tensor) -> bool {
    t.layout().is_contiguous() && t.layout().offset == 0 && t.storage().len() == t.numel()
}

/// `t`, or a dense copy of it.
pub(crate) fn dense(t: &Tensor) -> Result<Tensor> {
    if is_dense(t) {
        Ok(t.clone())
    } else {
        fresh_copy(t, &t.device())
    }
}

/// A copy of `t`'s values in a new buffer on `device`, sharing nothing
/// (fused kernels write optimizer state in place).
pub(crate) fn fresh_copy(t: &Tensor, device: &Device) -> Result<Tensor> {
    let moved = t.detach().to_device(device)?;
    Ok(Tensor::from_storage(
        moved.copy_to_new()?,
        Layout::contiguous(t.dims()),
        device,
    ))
}
