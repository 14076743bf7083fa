//! Adam and AdamW steps whose gradients are random views (Backend
//! `fused_adam`, or the composite on the unfused devices): the optimizer
//! must read a strided or offset gradient as the values it holds.

use lam::optim::{Adam, AdamW, Optimizer};
use lam::prelude::*;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &["set_grad", "set_data"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let shape = rng.shape(1, 3);
    let decoupled = rng.chance(0.5);
    vec![Case::new(
        "adam step",
        vec![normal(&shape), normal(&shape)],
        move |t| {
            // A dense parameter holding the first input's values.
            let p =
                Tensor::from_vec(t[0].to_vec()?, t[0].dims(), &t[0].device())?.requires_grad_()?;
            let mut opt: Box<dyn Optimizer> = if decoupled {
                Box::new(AdamW::new(vec![p.clone()], 0.1)?)
            } else {
                Box::new(Adam::new(vec![p.clone()], 0.1)?)
            };
            for _ in 0..2 {
                p.set_grad(Some(t[1].detach()))?;
                opt.step()?;
            }
            Ok(vec![p.detach()])
        },
    )
    .no_grad()
    .tol(1e-6)]
}
