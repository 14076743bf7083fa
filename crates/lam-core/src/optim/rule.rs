//! What makes an optimizer: [`Rule`], the checks of its hyper-parameters
//! and its update of one parameter, on top of what `optimizer!` declares
//! ([`Declared`]). Every [`Optimizer`] method follows, once, in the blanket
//! implementation here: `step` (check the hyper-parameters, then update
//! each parameter that has a gradient — negated first with `maximize` —
//! under `no_grad`), the learning rate,
//! and `state_dict` / `load_state_dict`.

use crate::{NoGradGuard, Result, Tensor};

use super::declare::{self, Declared, HyperParameters};
use super::state::{require_common, Params};
use super::{Optimizer, OptimizerState, ParamState};

/// One optimizer's parameters (with their state) and hyper-parameters.
#[derive(Debug)]
pub(crate) struct Core<C> {
    pub(crate) params: Params,
    pub(crate) config: C,
}

impl<C> Core<C> {
    /// Checks the parameter list (errors name `op`).
    pub(crate) fn new(op: &'static str, params: Vec<Tensor>, config: C) -> Result<Core<C>> {
        Ok(Core {
            params: Params::new(op, params)?,
            config,
        })
    }
}

/// An optimizer's checks and update rule; [`Optimizer`] is implemented
/// for every `Rule`.
pub(crate) trait Rule: Declared {
    /// An error naming `op` and the first hyper-parameter out of its
    /// range, beyond the three that every optimizer has (checked first).
    fn check(config: &Self::Config, op: &'static str) -> Result<()>;

    /// The per-parameter buffers a state holds under `config`.
    fn buffers(config: &Self::Config) -> Vec<&'static str>;

    /// Updates `p` in place from `grad`, reading and writing its `state`
    /// (whose step count already includes this step).
    fn update(&self, p: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<()>;
}

impl<R: Rule + Send + Sync> Optimizer for R {
    fn step(&mut self) -> Result<()> {
        check::<R>(&self.core().config, R::NAME)?;
        let _no_grad = NoGradGuard::new();
        for i in 0..self.core().params.tensors.len() {
            let p = self.core().params.tensors[i].clone();
            let Some(grad) = p.grad() else { continue };
            // PyTorch's `maximize`: every rule runs on the negated gradient.
            let grad = if self.core().config.maximize() {
                grad.neg()?
            } else {
                grad
            };
            let mut state = self.core_mut().params.begin_step(i);
            let updated = self.update(&p, &grad, &mut state);
            self.core_mut().params.end_step(i, state);
            updated?;
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.core().config.lr()
    }

    fn set_lr(&mut self, lr: f32) {
        self.core_mut().config.set_lr(lr);
    }

    fn params(&self) -> &[Tensor] {
        &self.core().params.tensors
    }

    fn state_dict(&self) -> Result<OptimizerState> {
        let core = self.core();
        core.params.snapshot(R::KIND, declare::to_map(&core.config))
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        let config = declare::from_state(R::KIND, state, self.core().config)?;
        check::<R>(&config, "load_state_dict")?;
        let params = self
            .core()
            .params
            .checked_state(R::KIND, state, &R::buffers(&config))?;
        let core = self.core_mut();
        core.params.state = params;
        core.config = config;
        Ok(())
    }
}

/// The checks of the hyper-parameters every optimizer has, then `R`'s own.
fn check<R: Rule>(config: &R::Config, op: &'static str) -> Result<()> {
    require_common(op, config.lr(), config.weight_decay(), config.l1())?;
    R::check(config, op)
}
