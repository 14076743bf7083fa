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

use crate::{NoGradGuard, Result, Tensor};

use super::state::{
    buffer, hyper_map, regularized_grad, require, require_common, HyperReader, Params,
};
use super::{Optimizer, OptimizerState};

const KIND: &str = "rmsprop";
const HYPER: [&str; 7] = [
    "lr",
    "alpha",
    "eps",
    "momentum",
    "centered",
    "weight_decay",
    "l1",
];

/// RMSprop, optionally centered and with momentum.
#[derive(Debug)]
pub struct RmsProp {
    params: Params,
    cfg: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    lr: f32,
    alpha: f32,
    eps: f32,
    momentum: f32,
    centered: bool,
    weight_decay: f32,
    l1: f32,
}

impl RmsProp {
    /// With learning rate `lr` (PyTorch's default is 0.01) and PyTorch's
    /// defaults: alpha 0.99, eps 1e-8, no momentum, not centered.
    pub fn new(params: Vec<Tensor>, lr: f32) -> Result<RmsProp> {
        Ok(RmsProp {
            params: Params::new("RmsProp::new", params)?,
            cfg: Config {
                lr,
                alpha: 0.99,
                eps: 1e-8,
                momentum: 0.0,
                centered: false,
                weight_decay: 0.0,
                l1: 0.0,
            },
        })
    }

    /// Smoothing constant of the squared-gradient average.
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.cfg.alpha = alpha;
        self
    }

    /// Added to the denominator for stability.
    pub fn eps(mut self, eps: f32) -> Self {
        self.cfg.eps = eps;
        self
    }

    /// Momentum factor (0 disables it).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.cfg.momentum = momentum;
        self
    }

    /// Normalises by the estimated variance instead of the raw second moment.
    pub fn centered(mut self, centered: bool) -> Self {
        self.cfg.centered = centered;
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
        const OP: &str = "RmsProp";
        require_common(OP, self.lr, self.weight_decay, self.l1)?;
        require(
            OP,
            "alpha",
            self.alpha,
            self.alpha >= 0.0 && self.alpha.is_finite(),
            "finite and >= 0",
        )?;
        require(
            OP,
            "eps",
            self.eps,
            self.eps >= 0.0 && self.eps.is_finite(),
            "finite and >= 0",
        )?;
        let m = self.momentum;
        require(
            OP,
            "momentum",
            m,
            m >= 0.0 && m.is_finite(),
            "finite and >= 0",
        )
    }

    fn buffers(&self) -> Vec<&'static str> {
        let mut b = vec!["square_avg"];
        if self.momentum > 0.0 {
            b.push("momentum_buffer");
        }
        if self.centered {
            b.push("grad_avg");
        }
        b
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self) -> Result<()> {
        let c = self.cfg;
        c.check()?;
        let _no_grad = NoGradGuard::new();
        for i in 0..self.params.tensors.len() {
            let p = self.params.tensors[i].clone();
            let Some(grad) = p.grad() else { continue };
            let st = self.params.begin_step(i);
            let zeros = || Tensor::zeros_like(&p);
            let g = regularized_grad(&p, &grad, c.weight_decay, c.l1)?;
            let sq = buffer(st, "square_avg", &p, zeros)?;
            let sq = sq
                .mul_scalar(c.alpha)?
                // ((1 - α)·g)·g, PyTorch's addcmul order (g² alone overflows sooner).
                .add(&g.mul_scalar(1.0 - c.alpha)?.mul(&g)?)?;
            let avg = if c.centered {
                let ga = buffer(st, "grad_avg", &p, zeros)?;
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
                let b = buffer(st, "momentum_buffer", &p, zeros)?;
                let b = b.mul_scalar(c.momentum)?.add(&g.div(&avg)?)?;
                st.buffers.insert("momentum_buffer".into(), b.clone());
                b
            } else {
                g.div(&avg)?
            };
            p.set_data(&p.sub(&update.mul_scalar(c.lr)?)?)?;
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
            c.alpha,
            c.eps,
            c.momentum,
            c.centered as u8 as f32,
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
            alpha: h.f32("alpha")?,
            eps: h.f32("eps")?,
            momentum: h.f32("momentum")?,
            centered: h.flag("centered")?,
            weight_decay: h.f32("weight_decay")?,
            l1: h.f32("l1")?,
        };
        cfg.check()?;
        self.params.state = self.params.checked_state(KIND, state, &cfg.buffers())?;
        self.cfg = cfg;
        Ok(())
    }
}
