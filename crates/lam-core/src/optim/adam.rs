//! Adam and AdamW (`torch.optim.Adam` / `AdamW`), which differ only in where
//! the weight decay goes:
//!
//! ```text
//! g  = grad + l1 sign(p)
//! g  = g + weight_decay p                 (Adam: L2 penalty)
//! p  = p (1 - lr weight_decay)            (AdamW: decoupled, instead)
//! m  = m + (1 - β1) (g - m)
//! v  = β2 v + (1 - β2) g²
//! v̂  = max(v̂, v)                         (amsgrad; v̂ replaces v below)
//! p  = p - lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + eps)
//! ```
//!
//! The bias corrections are computed in `f64`, as PyTorch computes them in
//! Python floats. When the backend has a fused Adam kernel (one dispatch per
//! parameter) it runs in place; otherwise the same update is composed from
//! tensor ops (always, with amsgrad). Both agree within float rounding (a
//! test checks it).

use crate::backend::AdamStep;
use crate::{NoGradGuard, Result, Tensor};

use super::state::{
    buffer, dense, hyper_map, is_dense, regularized_grad, require, require_common, HyperReader,
    Params,
};
use super::{Optimizer, OptimizerState};

const HYPER: [&str; 7] = [
    "lr",
    "beta1",
    "beta2",
    "eps",
    "weight_decay",
    "l1",
    "amsgrad",
];

/// Adam with an L2 penalty (`weight_decay`, default 0).
#[derive(Debug)]
pub struct Adam(Inner);

/// Adam with decoupled weight decay (`weight_decay`, default 0.01).
#[derive(Debug)]
pub struct AdamW(Inner);

#[derive(Debug)]
struct Inner {
    params: Params,
    cfg: Config,
    decoupled: bool,
    fused: bool,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    amsgrad: bool,
}

macro_rules! adam_builders {
    ($ty:ident, $name:literal, $decoupled:literal, $wd:literal) => {
        impl $ty {
            /// With learning rate `lr` and PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
            pub fn new(params: Vec<Tensor>, lr: f32) -> Result<$ty> {
                Ok($ty(Inner {
                    params: Params::new(concat!($name, "::new"), params)?,
                    cfg: Config {
                        lr,
                        beta1: 0.9,
                        beta2: 0.999,
                        eps: 1e-8,
                        weight_decay: $wd,
                        l1: 0.0,
                        amsgrad: false,
                    },
                    decoupled: $decoupled,
                    fused: true,
                }))
            }

            /// Decay rates of the first and second moment estimates.
            pub fn betas(mut self, beta1: f32, beta2: f32) -> Self {
                self.0.cfg.beta1 = beta1;
                self.0.cfg.beta2 = beta2;
                self
            }

            /// Added to the denominator for stability.
            pub fn eps(mut self, eps: f32) -> Self {
                self.0.cfg.eps = eps;
                self
            }

            /// Weight decay (see the type's doc for how it is applied).
            pub fn weight_decay(mut self, weight_decay: f32) -> Self {
                self.0.cfg.weight_decay = weight_decay;
                self
            }

            /// L1 penalty: adds `l1 * sign(p)` to the gradient.
            pub fn l1(mut self, l1: f32) -> Self {
                self.0.cfg.l1 = l1;
                self
            }

            /// AMSGrad: normalise by the largest second moment seen so far.
            pub fn amsgrad(mut self, amsgrad: bool) -> Self {
                self.0.cfg.amsgrad = amsgrad;
                self
            }

            /// Whether to use the backend's fused kernel when it has one
            /// (default true; false always composes the update from tensor ops).
            pub fn fused(mut self, fused: bool) -> Self {
                self.0.fused = fused;
                self
            }
        }

        impl Optimizer for $ty {
            fn step(&mut self) -> Result<()> {
                self.0.step()
            }

            fn lr(&self) -> f32 {
                self.0.cfg.lr
            }

            fn set_lr(&mut self, lr: f32) {
                self.0.cfg.lr = lr;
            }

            fn params(&self) -> &[Tensor] {
                &self.0.params.tensors
            }

            fn state_dict(&self) -> Result<OptimizerState> {
                self.0.state_dict()
            }

            fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
                self.0.load_state_dict(state)
            }
        }
    };
}

adam_builders!(Adam, "Adam", false, 0.0);
adam_builders!(AdamW, "AdamW", true, 0.01);

impl Config {
    fn check(&self, op: &'static str) -> Result<()> {
        require_common(op, self.lr, self.weight_decay, self.l1)?;
        let in_unit = |b: f32| (0.0..1.0).contains(&b);
        require(op, "beta1", self.beta1, in_unit(self.beta1), "in [0, 1)")?;
        require(op, "beta2", self.beta2, in_unit(self.beta2), "in [0, 1)")?;
        require(
            op,
            "eps",
            self.eps,
            self.eps >= 0.0 && self.eps.is_finite(),
            "finite and >= 0",
        )
    }
}

impl Inner {
    fn kind(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }

    fn step(&mut self) -> Result<()> {
        let c = self.cfg;
        c.check(if self.decoupled { "AdamW" } else { "Adam" })?;
        let _no_grad = NoGradGuard::new();
        for i in 0..self.params.tensors.len() {
            let p = self.params.tensors[i].clone();
            let Some(grad) = p.grad() else { continue };
            let st = self.params.begin_step(i);
            let g = regularized_grad(&p, &grad, 0.0, c.l1)?;
            // Dense moments: a fused kernel updates them in place.
            let m = dense(&buffer(st, "exp_avg", &p, || Tensor::zeros_like(&p))?)?;
            let v = dense(&buffer(st, "exp_avg_sq", &p, || Tensor::zeros_like(&p))?)?;
            let hp = AdamStep {
                lr: c.lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: c.weight_decay,
                decoupled: self.decoupled,
                step: u32::try_from(st.step).unwrap_or(u32::MAX),
            };
            if c.amsgrad {
                let v_max = buffer(st, "max_exp_avg_sq", &p, || Tensor::zeros_like(&p))?;
                let (m, v, v_max) = composed_step(&p, &g, &m, &v, Some(&v_max), &hp)?;
                st.buffers
                    .insert("max_exp_avg_sq".into(), v_max.unwrap_or(v.clone()));
                st.buffers.insert("exp_avg".into(), m);
                st.buffers.insert("exp_avg_sq".into(), v);
                continue;
            }
            let (m, v) = if self.fused && is_dense(&p) && fused_step(&p, &g, &m, &v, &hp)? {
                (m, v)
            } else {
                let (m, v, _) = composed_step(&p, &g, &m, &v, None, &hp)?;
                (m, v)
            };
            st.buffers.insert("exp_avg".into(), m);
            st.buffers.insert("exp_avg_sq".into(), v);
        }
        Ok(())
    }

    fn state_dict(&self) -> Result<OptimizerState> {
        let c = &self.cfg;
        let values = [
            c.lr,
            c.beta1,
            c.beta2,
            c.eps,
            c.weight_decay,
            c.l1,
            c.amsgrad as u8 as f32,
        ];
        let hyper = hyper_map(&HYPER, &values);
        self.params.snapshot(self.kind(), hyper)
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        let kind = self.kind();
        let h = HyperReader::new(kind, state, &HYPER)?;
        let cfg = Config {
            lr: h.f32("lr")?,
            beta1: h.f32("beta1")?,
            beta2: h.f32("beta2")?,
            eps: h.f32("eps")?,
            weight_decay: h.f32("weight_decay")?,
            l1: h.f32("l1")?,
            amsgrad: h.flag("amsgrad")?,
        };
        cfg.check("load_state_dict")?;
        let buffers: &[&str] = if cfg.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        };
        self.params.state = self.params.checked_state(kind, state, buffers)?;
        self.cfg = cfg;
        Ok(())
    }
}

/// The backend's fused kernel, in place on `p`, `m` and `v` (all dense, so
/// each tensor is exactly its buffer). False when the backend has none.
fn fused_step(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, hp: &AdamStep) -> Result<bool> {
    let g = dense(g)?;
    p.device()
        .backend()
        .fused_adam(&p.storage(), &g.storage(), &m.storage(), &v.storage(), hp)
}

/// The same update from tensor ops (with AMSGrad when `v_max` is given);
/// returns the new moments.
fn composed_step(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    v_max: Option<&Tensor>,
    hp: &AdamStep,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let t = hp.step as f64;
    let step_size = (hp.lr as f64 / (1.0 - (hp.beta1 as f64).powf(t))) as f32;
    let bc2_sqrt = (1.0 - (hp.beta2 as f64).powf(t)).sqrt() as f32;
    let (mut param, mut g) = (p.clone(), g.clone());
    if hp.decoupled {
        if hp.weight_decay != 0.0 {
            param = param.mul_scalar(1.0 - hp.lr * hp.weight_decay)?;
        }
    } else if hp.weight_decay != 0.0 {
        g = g.add(&p.mul_scalar(hp.weight_decay)?)?;
    }
    let m = m.add(&g.sub(m)?.mul_scalar(1.0 - hp.beta1)?)?;
    let v = v
        .mul_scalar(hp.beta2)?
        // ((1 - β2)·g)·g, PyTorch's addcmul order: g² alone overflows f32
        // for |g| > 1.8e19, where the scaled product is still finite.
        .add(&g.mul_scalar(1.0 - hp.beta2)?.mul(&g)?)?;
    let v_max = v_max.map(|vm| vm.maximum(&v)).transpose()?;
    let bc2_sqrt = Tensor::scalar(bc2_sqrt, &p.device())?;
    let denom = v_max
        .as_ref()
        .unwrap_or(&v)
        .sqrt()?
        .div(&bc2_sqrt)?
        .add_scalar(hp.eps)?;
    param = param.sub(&m.mul_scalar(step_size)?.div(&denom)?)?;
    p.set_data(&param)?;
    Ok((m, v, v_max))
}
