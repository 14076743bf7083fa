//! SGD steps (plain, with momentum, Nesterov) whose gradients are random
//! views (Backend `fused_sgd`, or the composite on the unfused devices): the
//! optimizer must read a strided or offset gradient as the values it holds.

use lam::optim::{Optimizer, Sgd};

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &["set_grad", "set_data"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    (0..4).flat_map(|_| one_round(rng)).collect()
}

fn one_round(rng: &mut Rng) -> Vec<Case> {
    let shape = rng.shape(1, 3);
    let momentum = if rng.chance(0.3) { 0.0 } else { 0.9 };
    let nesterov = momentum != 0.0 && rng.chance(0.5);
    vec![
        Case::new("sgd step", vec![normal(&shape), normal(&shape)], move |t| {
            // A dense parameter holding the first input's values.
            let p = t[0].detach().copy()?.requires_grad_()?;
            let mut opt = Sgd::new(vec![p.clone()], 0.1)?
                .momentum(momentum)
                .nesterov(nesterov)
                .weight_decay(0.01);
            for _ in 0..2 {
                p.set_grad(Some(t[1].detach()))?;
                opt.step()?;
            }
            Ok(vec![p.detach()])
        })
        .no_grad()
        .tol(1e-6),
    ]
}
