//! Pruning, as `torch.nn.utils.prune`: masks that zero a layer's weights
//! by magnitude — per tensor (`l1_unstructured`), across tensors
//! (`global_unstructured`) or by whole output channels or neurons
//! (`ln_structured`, L1 or L2 norm) — kept through fine-tuning, made
//! permanent with `remove`, and reported per layer; and [`shrink`], which
//! removes pruned channels for real (smaller matmuls, not only zeros).
//!
//! PyTorch keeps `weight_orig` and a `weight_mask` buffer and recomputes
//! `weight = weight_orig * weight_mask` before every forward. lam writes the
//! masked values into the parameter itself, and a [`PrunedOptimizer`]
//! writes them again after each step, so every forward sees
//! `weight · mask` without a hook in any layer. The weights a forward
//! sees are the same as PyTorch's at every step: an unmasked entry gets the
//! same gradient and update, and a masked one is zero in both (what PyTorch
//! keeps in `weight_orig` there never reaches an output).
//!
//! Pruning a tensor that already has a mask prunes among the entries still
//! unmasked (the amount counts those), as PyTorch's pruning containers do.
//! Masks are computed on the host; pruning is a one-off step.

mod amount;
mod report;
pub mod shrink;

pub use amount::Amount;
pub use report::{SparsityReport, SparsityRow};

use std::collections::BTreeMap;

use amount::smallest;

use super::Module;
use crate::optim::{Optimizer, OptimizerState};
use crate::{no_grad, Error, Result, Tensor};

/// The norm that ranks channels in [`Pruning::ln_structured`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    L1,
    L2,
}

/// The masks of a model's pruned tensors, by `state_dict` name.
#[derive(Debug, Clone, Default)]
pub struct Pruning {
    masks: BTreeMap<String, Masked>,
}

#[derive(Debug, Clone)]
struct Masked {
    param: Tensor,
    /// `F32` zeros and ones, the parameter's shape and device.
    mask: Tensor,
}

impl Pruning {
    /// No masks yet.
    pub fn new() -> Pruning {
        Pruning::default()
    }

    /// Masks the `amount` smallest entries of `name` by absolute value
    /// (`prune.l1_unstructured(module, "weight", amount)`).
    pub fn l1_unstructured(
        &mut self,
        model: &dyn Module,
        name: &str,
        amount: impl Into<Amount>,
    ) -> Result<&mut Self> {
        self.global_unstructured(model, &[name], amount)
    }

    /// Masks the `amount` smallest entries by absolute value across all of
    /// `names` together (`prune.global_unstructured(..., L1Unstructured)`).
    pub fn global_unstructured(
        &mut self,
        model: &dyn Module,
        names: &[&str],
        amount: impl Into<Amount>,
    ) -> Result<&mut Self> {
        const OP: &str = "global_unstructured";
        let params = names
            .iter()
            .map(|n| self.lookup(model, OP, n))
            .collect::<Result<Vec<_>>>()?;
        let mut scores = Vec::new();
        let mut masks = Vec::new();
        let mut alive = Vec::new(); // (tensor, flat index) of each entry still unmasked
        for (k, p) in params.iter().enumerate() {
            let values = p.to_vec()?;
            let mask = self.current_mask(names[k], values.len())?;
            for (i, (&v, &m)) in values.iter().zip(&mask).enumerate() {
                if m != 0.0 {
                    scores.push(v.abs());
                    alive.push((k, i));
                }
            }
            masks.push(mask);
        }
        let count = amount.into().of(OP, scores.len())?;
        for j in smallest(&scores, count) {
            let (k, i) = alive[j];
            masks[k][i] = 0.0;
        }
        for ((name, p), mask) in names.iter().zip(&params).zip(masks) {
            self.set_mask(name, p, mask)?;
        }
        Ok(self)
    }

    /// Masks the `amount` slices along `dim` (0: output channels or
    /// neurons) with the smallest `norm` over the other dims
    /// (`prune.ln_structured(module, "weight", amount, n, dim)`).
    pub fn ln_structured(
        &mut self,
        model: &dyn Module,
        name: &str,
        amount: impl Into<Amount>,
        norm: Norm,
        dim: usize,
    ) -> Result<&mut Self> {
        const OP: &str = "ln_structured";
        let p = self.lookup(model, OP, name)?;
        if dim >= p.rank() {
            return Err(Error::invalid(
                OP,
                format!(
                    "dim {dim} is out of range for {name} of shape {:?}",
                    p.dims()
                ),
            ));
        }
        let values = p.to_vec()?;
        let mut mask = self.current_mask(name, values.len())?;
        let shape = p.shape();
        let channels = shape[dim];
        let inner: usize = shape[dim + 1..].iter().product();
        let channel_of = |i: usize| (i / inner) % channels;
        let mut norms = vec![0.0f64; channels];
        for (i, &v) in values.iter().enumerate() {
            let v = f64::from(v);
            norms[channel_of(i)] += match norm {
                Norm::L1 => v.abs(),
                Norm::L2 => v * v,
            };
        }
        let norms: Vec<f32> = norms
            .into_iter()
            .map(|n| match norm {
                Norm::L1 => n as f32,
                Norm::L2 => n.sqrt() as f32,
            })
            .collect();
        let count = amount.into().of(OP, channels)?;
        let pruned = smallest(&norms, count);
        for (i, m) in mask.iter_mut().enumerate() {
            if pruned.contains(&channel_of(i)) {
                *m = 0.0;
            }
        }
        self.set_mask(name, &p, mask)?;
        Ok(self)
    }

    /// The mask of `name`, if it is pruned.
    pub fn mask(&self, name: &str) -> Option<&Tensor> {
        self.masks.get(name).map(|m| &m.mask)
    }

    /// The names of the pruned tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.masks.keys().map(String::as_str)
    }

    /// Writes `weight · mask` into every pruned tensor again (after an
    /// update that did not go through a [`PrunedOptimizer`]).
    pub fn apply(&self) -> Result<()> {
        no_grad(|| {
            for m in self.masks.values() {
                m.param.set_data(&m.param.mul(&m.mask)?)?;
            }
            Ok(())
        })
    }

    /// Makes the pruning of `name` permanent: its zeros stay, its mask goes
    /// (`prune.remove(module, "weight")`).
    pub fn remove(&mut self, name: &str) -> Result<()> {
        match self.masks.remove(name) {
            Some(_) => Ok(()),
            None => Err(Error::invalid(
                "prune remove",
                format!("{name} is not pruned (pruned: {:?})", self.masks.keys()),
            )),
        }
    }

    /// `optimizer`, re-applying these masks after every step.
    pub fn wrap<O: Optimizer>(&self, optimizer: O) -> PrunedOptimizer<O> {
        PrunedOptimizer {
            inner: optimizer,
            pruning: self.clone(),
        }
    }

    /// Zeros per tensor of `model` (every parameter), as the sparsity
    /// printouts of PyTorch's pruning tutorial.
    pub fn report(model: &dyn Module) -> Result<SparsityReport> {
        report::report(model)
    }

    fn lookup(&self, model: &dyn Module, op: &'static str, name: &str) -> Result<Tensor> {
        let params = model.named_parameters();
        match params.iter().find(|(n, _)| n == name) {
            Some((_, t)) => {
                t.check_f32(op)?;
                Ok(t.clone())
            }
            None => Err(Error::invalid(
                op,
                format!(
                    "the model has no parameter {name} (it has {:?})",
                    params.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
                ),
            )),
        }
    }

    fn current_mask(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        match self.masks.get(name) {
            Some(m) => m.mask.to_vec(),
            None => Ok(vec![1.0; len]),
        }
    }

    fn set_mask(&mut self, name: &str, param: &Tensor, mask: Vec<f32>) -> Result<()> {
        let mask = Tensor::from_vec(mask, param.dims(), &param.device())?;
        self.masks.insert(
            name.to_string(),
            Masked {
                param: param.clone(),
                mask,
            },
        );
        let m = &self.masks[name];
        no_grad(|| m.param.set_data(&m.param.mul(&m.mask)?))
    }
}

/// An optimizer whose every step is followed by re-applying the masks of a
/// [`Pruning`], so fine-tuning never revives a pruned weight.
pub struct PrunedOptimizer<O> {
    inner: O,
    pruning: Pruning,
}

impl<O> PrunedOptimizer<O> {
    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<O: Optimizer> Optimizer for PrunedOptimizer<O> {
    fn step(&mut self) -> Result<()> {
        self.inner.step()?;
        self.pruning.apply()
    }

    fn zero_grad(&self) {
        self.inner.zero_grad()
    }

    fn lr(&self) -> f32 {
        self.inner.lr()
    }

    fn set_lr(&mut self, lr: f32) {
        self.inner.set_lr(lr)
    }

    fn params(&self) -> &[Tensor] {
        self.inner.params()
    }

    fn state_dict(&self) -> Result<OptimizerState> {
        self.inner.state_dict()
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.inner.load_state_dict(state)
    }
}
