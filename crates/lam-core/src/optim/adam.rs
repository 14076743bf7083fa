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
use crate::{Result, Tensor};

use super::declare::optimizer;
use super::rule::{Core, Rule};
use super::state::{buffer, dense, is_dense, regularized_grad, require};
use super::ParamState;

optimizer! {
    /// Adam with an L2 penalty (`weight_decay`, default 0).
    pub struct Adam = "adam";
    /// Adam with decoupled weight decay (`weight_decay`, default 0.01).
    pub struct AdamW = "adamw";

    hyper_parameters {
        /// Decay rate of the first moment estimate.
        beta1: f32 = 0.9,
        /// Decay rate of the second moment estimate.
        beta2: f32 = 0.999,
        /// Added to the denominator for stability.
        pub eps: f32 = 1e-8,
        /// AMSGrad: normalise by the largest second moment seen so far.
        pub amsgrad: bool = false,
    }
    settings {
        /// Whether to use the backend's fused kernel when it has one
        /// (default true; false always composes the update from tensor ops).
        pub fused: bool = true,
    }
}

/// `new`, `betas` and [`Rule`] for Adam and AdamW, which differ in where
/// the weight decay goes.
macro_rules! adam_variant {
    ($ty:ident, $decoupled:literal, $weight_decay:literal) => {
        impl $ty {
            /// With learning rate `lr` and PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
            pub fn new(params: Vec<Tensor>, lr: f32) -> Result<$ty> {
                let config = Config {
                    weight_decay: $weight_decay,
                    ..Config::new(lr)
                };
                let op = concat!(stringify!($ty), "::new");
                Ok($ty(Core::new(op, params, config)?))
            }

            /// Decay rates of the first and second moment estimates.
            pub fn betas(self, beta1: f32, beta2: f32) -> Self {
                self.beta1(beta1).beta2(beta2)
            }
        }

        impl Rule for $ty {
            fn check(c: &Config, op: &'static str) -> Result<()> {
                c.check(op)
            }

            fn buffers(c: &Config) -> Vec<&'static str> {
                c.buffers()
            }

            fn update(&self, p: &Tensor, grad: &Tensor, st: &mut ParamState) -> Result<()> {
                self.0.config.update(p, grad, st, $decoupled)
            }
        }
    };
}

adam_variant!(Adam, false, 0.0);
adam_variant!(AdamW, true, 0.01);

impl Config {
    fn check(&self, op: &'static str) -> Result<()> {
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

    fn buffers(&self) -> Vec<&'static str> {
        if self.amsgrad {
            vec!["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            vec!["exp_avg", "exp_avg_sq"]
        }
    }

    /// One parameter's update, in the backend's fused kernel where it has
    /// one and `fused` allows, else from tensor ops.
    fn update(
        &self,
        p: &Tensor,
        grad: &Tensor,
        st: &mut ParamState,
        decoupled: bool,
    ) -> Result<()> {
        let c = self;
        let g = regularized_grad(p, grad, 0.0, c.l1)?;
        // Dense moments: a fused kernel updates them in place.
        let m = dense(&buffer(st, "exp_avg", p, || Tensor::zeros_like(p))?)?;
        let v = dense(&buffer(st, "exp_avg_sq", p, || Tensor::zeros_like(p))?)?;
        let hp = AdamStep {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            decoupled,
            step: u32::try_from(st.step).unwrap_or(u32::MAX),
        };
        if c.amsgrad {
            let v_max = buffer(st, "max_exp_avg_sq", p, || Tensor::zeros_like(p))?;
            let (m, v, v_max) = composed_step(p, &g, &m, &v, Some(&v_max), &hp)?;
            st.buffers
                .insert("max_exp_avg_sq".into(), v_max.unwrap_or(v.clone()));
            st.buffers.insert("exp_avg".into(), m);
            st.buffers.insert("exp_avg_sq".into(), v);
            return Ok(());
        }
        let (m, v) = if c.fused && is_dense(p) && fused_step(p, &g, &m, &v, &hp)? {
            (m, v)
        } else {
            let (m, v, _) = composed_step(p, &g, &m, &v, None, &hp)?;
            (m, v)
        };
        st.buffers.insert("exp_avg".into(), m);
        st.buffers.insert("exp_avg_sq".into(), v);
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
