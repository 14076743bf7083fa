//! Stochastic gradient descent with momentum (`torch.optim.SGD`):
//!
//! ```text
//! g = grad + l1 sign(p) + weight_decay p
//! b = g                                  (first step)
//! b = momentum b + (1 - dampening) g     (later steps)
//! g = g + momentum b   if nesterov, else  g = b        (when momentum != 0)
//! p = p - lr g
//! ```

use crate::{NoGradGuard, Result, Tensor};

use super::state::{
    buffer, hyper_map, regularized_grad, require, require_common, HyperReader, Params,
};
use super::{Optimizer, OptimizerState};

const KIND: &str = "sgd";
const HYPER: [&str; 6] = [
    "lr",
    "momentum",
    "dampening",
    "nesterov",
    "weight_decay",
    "l1",
];

/// SGD, optionally with (Nesterov) momentum.
#[derive(Debug)]
pub struct Sgd {
    params: Params,
    cfg: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    lr: f32,
    momentum: f32,
    dampening: f32,
    nesterov: bool,
    weight_decay: f32,
    l1: f32,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(params: Vec<Tensor>, lr: f32) -> Result<Sgd> {
        Ok(Sgd {
            params: Params::new("Sgd::new", params)?,
            cfg: Config {
                lr,
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
                weight_decay: 0.0,
                l1: 0.0,
            },
        })
    }

    /// Momentum factor (0 disables it).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.cfg.momentum = momentum;
        self
    }

    /// Dampening of the gradient's share of the momentum buffer.
    pub fn dampening(mut self, dampening: f32) -> Self {
        self.cfg.dampening = dampening;
        self
    }

    /// Nesterov momentum (needs momentum > 0 and no dampening).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.cfg.nesterov = nesterov;
        self
    }

    /// L2 penalty: adds `weight_decay * p` to the gradient.
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.cfg.weight_decay = weight_decay;
        self
    }

    /// L1 penalty: adds `l1 * sign(p)` to the gradient.
    pub fn l1(mut self, l1: f32) -> Self {
        self.cfg.l1 = l1;
        self
    }
}

impl Config {
    fn check(&self) -> Result<()> {
        const OP: &str = "Sgd";
        require_common(OP, self.lr, self.weight_decay, self.l1)?;
        let m = self.momentum;
        require(
            OP,
            "momentum",
            m,
            m >= 0.0 && m.is_finite(),
            "finite and >= 0",
        )?;
        let d = self.dampening;
        require(OP, "dampening", d, d.is_finite(), "finite")?;
        if self.nesterov {
            require(OP, "momentum", m, m > 0.0, "> 0 for nesterov")?;
            require(OP, "dampening", d, d == 0.0, "0 for nesterov")?;
        }
        Ok(())
    }

    fn buffers(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let c = self.cfg;
        c.check()?;
        let _no_grad = NoGradGuard::new();
        for i in 0..self.params.tensors.len() {
            let p = self.params.tensors[i].clone();
            let Some(grad) = p.grad() else { continue };
            let st = self.params.begin_step(i);
            let mut g = regularized_grad(&p, &grad, c.weight_decay, c.l1)?;
            if c.momentum != 0.0 {
                let b = if st.buffers.contains_key("momentum_buffer") {
                    let old = buffer(st, "momentum_buffer", &p, || Tensor::zeros_like(&p))?
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
            p.set_data(&p.sub(&g.mul_scalar(c.lr)?)?)?;
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.cfg.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }

    fn params(&self) -> &[Tensor] {
        &self.params.tensors
    }

    fn state_dict(&self) -> Result<OptimizerState> {
        let c = &self.cfg;
        let values = [
            c.lr,
            c.momentum,
            c.dampening,
            c.nesterov as u8 as f32,
            c.weight_decay,
            c.l1,
        ];
        let hyper = hyper_map(&HYPER, &values);
        self.params.snapshot(KIND, hyper)
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        let h = HyperReader::new(KIND, state, &HYPER)?;
        let cfg = Config {
            lr: h.f32("lr")?,
            momentum: h.f32("momentum")?,
            dampening: h.f32("dampening")?,
            nesterov: h.flag("nesterov")?,
            weight_decay: h.f32("weight_decay")?,
            l1: h.f32("l1")?,
        };
        cfg.check()?;
        self.params.state = self.params.checked_state(KIND, state, cfg.buffers())?;
        self.cfg = cfg;
        Ok(())
    }
}
