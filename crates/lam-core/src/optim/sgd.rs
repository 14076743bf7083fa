//! Stochastic gradient descent with momentum (`torch.optim.SGD`):
//!
//! ```text
//! g = grad + l1 sign(p) + weight_decay p
//! b = g                                  (first step)
//! b = momentum b + (1 - dampening) g     (later steps)
//! g = g + momentum b   if nesterov, else  g = b        (when momentum != 0)
//! p = p - lr g
//! ```

use crate::{Result, Tensor};

use super::declare::optimizer;
use super::rule::{Core, Rule};
use super::state::{buffer, regularized_grad, require};
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
