//! Loss scaling's unscale (Backend `fused_unscale`, or the composite on the
//! unfused devices) on gradients that are random views: each must be read
//! as the values it holds, scaled, and checked for infinities and NaN.

use lam::amp::GradScaler;
use lam::optim::{Optimizer, Sgd};
use lam::Tensor;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    (0..3).map(|_| one_round(rng)).collect()
}

fn one_round(rng: &mut Rng) -> Case {
    let (a, b) = (rng.shape(1, 3), rng.shape(1, 3));
    // Some rounds put an infinity or a NaN in the second gradient.
    let poison = [None, None, Some(f32::INFINITY), Some(f32::NAN)][rng.below(4)];
    Case::new(
        "GradScaler::unscale_",
        vec![normal(&a), normal(&b)],
        move |t| {
            let params = [&a, &b].map(|s| Tensor::zeros(s, &t[0].device()));
            let params: Vec<Tensor> = params
                .into_iter()
                .map(|p| p?.requires_grad_())
                .collect::<lam::Result<_>>()?;
            let mut opt = Sgd::new(params.clone(), 0.1)?;
            params[0].set_grad(Some(t[0].detach()))?;
            let second = match poison {
                Some(v) => {
                    let bad = Tensor::full(&[1], v, &t[1].device())?;
                    t[1].detach().mul(&bad)?
                }
                None => t[1].detach(),
            };
            params[1].set_grad(Some(second))?;
            let mut scaler = GradScaler::new().init_scale(8.0);
            // Unscales, then steps unless a gradient held inf or NaN.
            let stepped = scaler.step(&mut opt)?;
            let mut out: Vec<Tensor> = opt.params().iter().filter_map(|p| p.grad()).collect();
            out.push(Tensor::scalar(
                if stepped { 1.0 } else { 0.0 },
                &t[0].device(),
            )?);
            Ok(out)
        },
    )
    .no_grad()
    .tol(0.0)
}
