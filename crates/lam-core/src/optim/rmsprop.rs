//! RMSprop (`torch.optim.RMSprop`):
//!
//! ```text
//! g   = grad + l1 sign(p) + weight_decay p
//! s   = α s + (1 - α) g²
//! avg = sqrt(s - ḡ²) + eps,  ḡ = ḡ + (1 - α)(g - ḡ)     (centered)
//! avg = sqrt(s) + eps                                    (otherwise)
//! b   = momentum b + g / avg;  p = p - lr b              (momentum > 0)
//! p   = p - lr g / avg                                   (otherwise)
//! ```

use crate::{Result, Tensor};

use super::declare::optimizer;
use super::rule::{Core, Rule};
use super::state::{buffer, regularized_grad, require};
use super::ParamState;

optimizer! {
    /// RMSprop, optionally centered and with momentum.
    pub struct RmsProp = "rmsprop";

    hyper_parameters {
        /// Smoothing constant of the squared-gradient average.
        pub alpha: f32 = 0.99,
        /// Added to the denominator for stability.
        pub eps: f32 = 1e-8,
        /// Momentum factor (0 disables it).
        pub momentum: f32 = 0.0,
        /// Normalises by the estimated variance instead of the raw second moment.
        pub centered: bool = false,
    }
}

impl RmsProp {
    /// With learning rate `lr` (PyTorch's default is 0.01) and PyTorch's
    /// defaults: alpha 0.99, eps 1e-8, no momentum, not centered.
    pub fn new(params: Vec<Tensor>, lr: f32) -> Result<RmsProp> {
        Ok(RmsProp(Core::new("RmsProp::new", params, Config::new(lr))?))
    }
}

impl Rule for RmsProp {
    fn check(c: &Config, op: &'static str) -> Result<()> {
        let finite_nonneg = |v: f32| v >= 0.0 && v.is_finite();
        for (name, v) in [("alpha", c.alpha), ("eps", c.eps), ("momentum", c.momentum)] {
            require(op, name, v, finite_nonneg(v), "finite and >= 0")?;
        }
        Ok(())
    }

    fn buffers(c: &Config) -> Vec<&'static str> {
        let mut b = vec!["square_avg"];
        if c.momentum > 0.0 {
            b.push("momentum_buffer");
        }
        if c.centered {
            b.push("grad_avg");
        }
        b
    }

    fn update(&self, p: &Tensor, grad: &Tensor, st: &mut ParamState) -> Result<()> {
        let c = &self.0.config;
        let zeros = || Tensor::zeros_like(p);
        let g = regularized_grad(p, grad, c.weight_decay, c.l1)?;
        let sq = buffer(st, "square_avg", p, zeros)?;
        let sq = sq
            .mul_scalar(c.alpha)?
            // ((1 - α)·g)·g, PyTorch's addcmul order (g² alone overflows sooner).
            .add(&g.mul_scalar(1.0 - c.alpha)?.mul(&g)?)?;
        let avg = if c.centered {
            let ga = buffer(st, "grad_avg", p, zeros)?;
            let ga = ga.add(&g.sub(&ga)?.mul_scalar(1.0 - c.alpha)?)?;
            // Where the second moment overflowed to inf, so is the
            // variance (inf - inf would be NaN; PyTorch's fused
            // multiply-add keeps it inf).
            let var = sq.sub(&ga.square()?)?;
            let infinite = sq.eq(&Tensor::full(&[], f32::INFINITY, &p.device())?)?;
            let avg = Tensor::where_cond(&infinite, &sq, &var)?.sqrt()?;
            st.buffers.insert("grad_avg".into(), ga);
            avg
        } else {
            sq.sqrt()?
        };
        st.buffers.insert("square_avg".into(), sq);
        let avg = avg.add_scalar(c.eps)?;
        let update = if c.momentum > 0.0 {
            let b = buffer(st, "momentum_buffer", p, zeros)?;
            let b = b.mul_scalar(c.momentum)?.add(&g.div(&avg)?)?;
            st.buffers.insert("momentum_buffer".into(), b.clone());
            b
        } else {
            g.div(&avg)?
        };
        p.set_data(&p.sub(&update.mul_scalar(c.lr)?)?)
    }
}
