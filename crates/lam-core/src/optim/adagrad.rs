//! Adagrad (`torch.optim.Adagrad`):
//!
//! ```text
//! g   = grad + l1 sign(p) + weight_decay p
//! clr = lr / (1 + (t - 1) lr_decay)
//! s   = s + g²                         (s starts at initial_accumulator_value)
//! p   = p - clr g / (sqrt(s) + eps)
//! ```

use crate::{Result, Tensor};

use super::declare::optimizer;
use super::rule::{Core, Rule};
use super::state::{buffer, regularized_grad, require};
use super::ParamState;

optimizer! {
    /// Adagrad: per-coordinate rates shrinking with the accumulated squared gradient.
    pub struct Adagrad = "adagrad";

    hyper_parameters {
        /// Learning-rate decay per step.
        pub lr_decay: f32 = 0.0,
        /// Starting value of the squared-gradient sum.
        pub initial_accumulator_value: f32 = 0.0,
        /// Added to the denominator for stability.
        pub eps: f32 = 1e-10,
    }
}

impl Adagrad {
    /// With learning rate `lr` (PyTorch's default is 0.01) and PyTorch's
    /// defaults: no lr decay, accumulator starting at 0, eps 1e-10.
    pub fn new(params: Vec<Tensor>, lr: f32) -> Result<Adagrad> {
        Ok(Adagrad(Core::new("Adagrad::new", params, Config::new(lr))?))
    }
}

impl Rule for Adagrad {
    fn check(c: &Config, op: &'static str) -> Result<()> {
        let finite_nonneg = |v: f32| v >= 0.0 && v.is_finite();
        for (name, v) in [
            ("lr_decay", c.lr_decay),
            ("initial_accumulator_value", c.initial_accumulator_value),
            ("eps", c.eps),
        ] {
            require(op, name, v, finite_nonneg(v), "finite and >= 0")?;
        }
        Ok(())
    }

    fn buffers(_: &Config) -> Vec<&'static str> {
        vec!["sum"]
    }

    fn update(&self, p: &Tensor, grad: &Tensor, st: &mut ParamState) -> Result<()> {
        let c = &self.0.config;
        let g = regularized_grad(p, grad, c.weight_decay, c.l1)?;
        let clr = (c.lr as f64 / (1.0 + (st.step - 1) as f64 * c.lr_decay as f64)) as f32;
        let sum = buffer(st, "sum", p, || {
            Tensor::full(p.dims(), c.initial_accumulator_value, &p.device())
        })?;
        let sum = sum.add(&g.square()?)?;
        let std = sum.sqrt()?.add_scalar(c.eps)?;
        st.buffers.insert("sum".into(), sum);
        p.set_data(&p.sub(&g.div(&std)?.mul_scalar(clr)?)?)
    }
}
