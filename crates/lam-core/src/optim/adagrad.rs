//! Adagrad (`torch.optim.Adagrad`):
//!
//! ```text
//! g   = grad + l1 sign(p) + weight_decay p
//! clr = lr / (1 + (t - 1) lr_decay)
//! s   = s + g²                         (s starts at initial_accumulator_value)
//! p   = p - clr g / (sqrt(s) + eps)
//! ```

use crate::{NoGradGuard, Result, Tensor};

use super::state::{
    buffer, hyper_map, regularized_grad, require, require_common, HyperReader, Params,
};
use super::{Optimizer, OptimizerState};

const KIND: &str = "adagrad";
const HYPER: [&str; 6] = [
    "lr",
    "lr_decay",
    "initial_accumulator_value",
    "eps",
    "weight_decay",
    "l1",
];

/// Adagrad: per-coordinate rates shrinking with the accumulated squared gradient.
#[derive(Debug)]
pub struct Adagrad {
    params: Params,
    cfg: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    lr: f32,
    lr_decay: f32,
    initial_accumulator_value: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
}

impl Adagrad {
    /// With learning rate `lr` (PyTorch's default is 0.01) and PyTorch's
    /// defaults: no lr decay, accumulator starting at 0, eps 1e-10.
    pub fn new(params: Vec<Tensor>, lr: f32) -> Result<Adagrad> {
        Ok(Adagrad {
            params: Params::new("Adagrad::new", params)?,
            cfg: Config {
                lr,
                lr_decay: 0.0,
                initial_accumulator_value: 0.0,
                eps: 1e-10,
                weight_decay: 0.0,
                l1: 0.0,
            },
        })
    }

    /// Learning-rate decay per step.
    pub fn lr_decay(mut self, lr_decay: f32) -> Self {
        self.cfg.lr_decay = lr_decay;
        self
    }

    /// Starting value of the squared-gradient sum.
    pub fn initial_accumulator_value(mut self, value: f32) -> Self {
        self.cfg.initial_accumulator_value = value;
        self
    }

    /// Added to the denominator for stability.
    pub fn eps(mut self, eps: f32) -> Self {
        self.cfg.eps = eps;
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
        const OP: &str = "Adagrad";
        require_common(OP, self.lr, self.weight_decay, self.l1)?;
        let finite_nonneg = |v: f32| v >= 0.0 && v.is_finite();
        require(
            OP,
            "lr_decay",
            self.lr_decay,
            finite_nonneg(self.lr_decay),
            "finite and >= 0",
        )?;
        let a = self.initial_accumulator_value;
        require(
            OP,
            "initial_accumulator_value",
            a,
            finite_nonneg(a),
            "finite and >= 0",
        )?;
        require(
            OP,
            "eps",
            self.eps,
            finite_nonneg(self.eps),
            "finite and >= 0",
        )
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self) -> Result<()> {
        let c = self.cfg;
        c.check()?;
        let _no_grad = NoGradGuard::new();
        for i in 0..self.params.tensors.len() {
            let p = self.params.tensors[i].clone();
            let Some(grad) = p.grad() else { continue };
            let st = self.params.begin_step(i);
            let g = regularized_grad(&p, &grad, c.weight_decay, c.l1)?;
            let clr = (c.lr as f64 / (1.0 + (st.step - 1) as f64 * c.lr_decay as f64)) as f32;
            let sum = buffer(st, "sum", &p, || {
                Tensor::full(p.dims(), c.initial_accumulator_value, &p.device())
            })?;
            let sum = sum.add(&g.square()?)?;
            let std = sum.sqrt()?.add_scalar(c.eps)?;
            st.buffers.insert("sum".into(), sum);
            p.set_data(&p.sub(&g.div(&std)?.mul_scalar(clr)?)?)?;
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
            c.lr_decay,
            c.initial_accumulator_value,
            c.eps,
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
            lr_decay: h.f32("lr_decay")?,
            initial_accumulator_value: h.f32("initial_accumulator_value")?,
            eps: h.f32("eps")?,
            weight_decay: h.f32("weight_decay")?,
            l1: h.f32("l1")?,
        };
        cfg.check()?;
        self.params.state = self.params.checked_state(KIND, state, &["sum"])?;
        self.cfg = cfg;
        Ok(())
    }
}
