//! Stochastic gradient descent with momentum (`torch.optim.SGD`):
//!
//! ```text
//! g = grad + l1 sign(p) + weight_decay p
//! b = g                                  (first step)
//! b = momentum b + (1 - dampening) g     (later steps)
//! g = g + momentum b   if nesterov, else  g = b        (when momentum != 0)
//! p = p - lr g
//! ```
//!
//! Without the L1 term, on dense tensors, the backend's fused kernel does
//! the whole step in one pass per parameter (`fused_sgd`), in place;
//! otherwise it is composed from tensor ops. Both compute the same
//! operations in the same order.

use crate::backend::SgdStep;
use crate::{Result, Tensor};

use super::declare::optimizer;
use super::rule::{Core, Rule};
use super::state::{buffer, dense, is_dense, regularized_grad, require};
use super::ParamState;

optimizer! {
    /// SGD, optionally with (Nesterov) momentum.
    pub struct Sgd = "sgd";

    hyper_parameters {
        /// Momentum factor (0 disables it).
        pub momentum: f32 = 0.0,
        /// Dampening of the gradient's share of the momentum buffer.
        pub dampening: f32 = 0.0,
        /// Nesterov momentum (needs momentum > 0 and no dampening).
        pub nesterov: bool = false,
    }
    settings {
        /// Whether to use the backend's fused kernel when it has one
        /// (default true; false always composes the update from tensor ops).
        pub fused: bool = true,
    }
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(params: Vec<Tensor>, lr: f32) -> Result<Sgd> {
        Ok(Sgd(Core::new("Sgd::new", params, Config::new(lr))?))
    }
}

impl Rule for Sgd {
    fn check(c: &Config, op: &'static str) -> Result<()> {
        let m = c.momentum;
        require(
            op,
            "momentum",
            m,
            m >= 0.0 && m.is_finite(),
            "finite and >= 0",
        )?;
        let d = c.dampening;
        require(op, "dampening", d, d.is_finite(), "finite")?;
        if c.nesterov {
            require(op, "momentum", m, m > 0.0, "> 0 for nesterov")?;
            require(op, "dampening", d, d == 0.0, "0 for nesterov")?;
        }
        Ok(())
    }

    fn buffers(c: &Config) -> Vec<&'static str> {
        if c.momentum != 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        }
    }

    fn update(&self, p: &Tensor, grad: &Tensor, st: &mut ParamState) -> Result<()> {
        let c = &self.0.config;
        if c.fused && c.l1 == 0.0 && is_dense(p) && fused_step(c, p, grad, st)? {
            return Ok(());
        }
        let mut g = regularized_grad(p, grad, c.weight_decay, c.l1)?;
        if c.momentum != 0.0 {
            let b = if st.buffers.contains_key("momentum_buffer") {
                let old = buffer(st, "momentum_buffer", p, || Tensor::zeros_like(p))?
                    .mul_scalar(c.momentum)?;
                if c.dampening == 0.0 {
                    old.add(&g)?
                } else {
                    old.add(&g.mul_scalar(1.0 - c.dampening)?)?
                }
            } else {
                g.clone()
            };
            g = if c.nesterov {
                g.add(&b.mul_scalar(c.momentum)?)?
            } else {
                b.clone()
            };
            st.buffers.insert("momentum_buffer".into(), b);
        }
        p.set_data(&p.sub(&g.mul_scalar(c.lr)?)?)
    }
}

/// The backend's fused step, in place on `p` (dense) and on a dense
/// momentum buffer, stored in `st`. False, changing nothing, when the
/// backend has none.
fn fused_step(c: &Config, p: &Tensor, grad: &Tensor, st: &mut ParamState) -> Result<bool> {
    let first = !st.buffers.contains_key("momentum_buffer");
    let b = match c.momentum != 0.0 {
        true => Some(dense(&buffer(st, "momentum_buffer", p, || {
            Tensor::zeros_like(p)
        })?)?),
        false => None,
    };
    let step = SgdStep {
        lr: c.lr,
        momentum: c.momentum,
        dampening: c.dampening,
        nesterov: c.nesterov,
        weight_decay: c.weight_decay,
        first,
    };
    let g = dense(grad)?;
    let b_storage = b.as_ref().map(Tensor::storage);
    let fused =
        p.device()
            .backend()
            .fused_sgd(&p.storage(), &g.storage(), b_storage.as_ref(), &step)?;
    if let (true, Some(b)) = (fused, b) {
        st.buffers.insert("momentum_buffer".into(), b);
    }
    Ok(fused)
}
