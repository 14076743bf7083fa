//! Optimizers, clipping and schedulers: updates against PyTorch
//! (fixtures/optim/*.json, made by fixtures/make_optim_fixtures.py), fused
//! Adam against the composed update, exact resume through
//! state_dict/load_state_dict, learning, and bad input.
//!
//! Layout under `tests/optim/`: `known_values` (optimizers and clipping
//! against the fixtures), `schedulers`, `fused` (the fused updates against
//! the composed ones), `state` (resume, snapshots, the checkpoint names) and
//! `bad_input`; here the regression problem they share, learning, and
//! parameters without gradients.

mod common;

#[path = "optim/bad_input.rs"]
mod bad_input;
#[path = "optim/fused.rs"]
mod fused;
#[path = "optim/known_values.rs"]
mod known_values;
#[path = "optim/schedulers.rs"]
mod schedulers;
#[path = "optim/state.rs"]
mod state;

use lam::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use lam::{Device, Result, Tensor};

/// Small regression problem: parameters `w [4, 3]`, `b [3]`, loss
/// `mean((x w + b - y)²)` on fixed data.
struct Problem {
    x: Tensor,
    y: Tensor,
    w: Tensor,
    b: Tensor,
}

impl Problem {
    fn new(dev: &Device) -> Result<Problem> {
        let x = Tensor::from_vec(
            (0..32).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect(),
            &[8, 4],
            dev,
        )?;
        let truth = Tensor::from_vec(
            (0..12).map(|i| ((i * 5) % 7) as f32 / 3.0 - 1.0).collect(),
            &[4, 3],
            dev,
        )?;
        let y = x.matmul(&truth)?.add_scalar(0.5)?;
        let w = Tensor::from_vec(
            (0..12).map(|i| ((i * 3) % 5) as f32 / 10.0).collect(),
            &[4, 3],
            dev,
        )?
        .requires_grad_()?;
        let b = Tensor::zeros(&[3], dev)?.requires_grad_()?;
        Ok(Problem { x, y, w, b })
    }

    fn params(&self) -> Vec<Tensor> {
        vec![self.w.clone(), self.b.clone()]
    }

    fn loss(&self) -> Result<Tensor> {
        lam::loss::mse_loss(&self.x.matmul(&self.w)?.add(&self.b)?, &self.y)
    }

    /// One step: zero, forward, backward, update; returns the loss before it.
    fn step(&self, opt: &mut dyn Optimizer) -> Result<f32> {
        opt.zero_grad();
        let loss = self.loss()?;
        loss.backward()?;
        opt.step()?;
        loss.item()
    }
}

fn every_optimizer(params: Vec<Tensor>) -> Result<Vec<(&'static str, Box<dyn Optimizer>)>> {
    Ok(vec![
        (
            "sgd",
            Box::new(Sgd::new(params.clone(), 0.05)?.momentum(0.9).nesterov(true)),
        ),
        ("adam", Box::new(Adam::new(params.clone(), 0.05)?)),
        ("adamw", Box::new(AdamW::new(params.clone(), 0.05)?)),
        (
            "amsgrad",
            Box::new(AdamW::new(params.clone(), 0.05)?.amsgrad(true)),
        ),
        (
            "rmsprop",
            Box::new(
                RmsProp::new(params.clone(), 0.01)?
                    .centered(true)
                    .momentum(0.5),
            ),
        ),
        ("adagrad", Box::new(Adagrad::new(params, 0.3)?)),
    ])
}

conformance!(every_optimizer_learns, |dev| {
    for (name, _) in every_optimizer(Problem::new(dev)?.params())? {
        let problem = Problem::new(dev)?;
        let mut opt = every_optimizer(problem.params())?
            .into_iter()
            .find(|(n, _)| *n == name)
            .expect("listed")
            .1;
        let first = problem.step(opt.as_mut())?;
        for _ in 0..150 {
            problem.step(opt.as_mut())?;
        }
        let last = problem.loss()?.item()?;
        assert!(
            last < first * 0.05,
            "{name}: loss {first} -> {last}, expected a 20x drop"
        );
    }
    Ok(())
});

fn cpu() -> Device {
    use lam::DeviceExt;
    Device::cpu()
}

#[test]
fn parameters_without_gradients_are_skipped() -> Result<()> {
    let dev = cpu();
    let a = Tensor::ones(&[2], &dev)?.requires_grad_()?;
    let b = Tensor::ones(&[2], &dev)?.requires_grad_()?;
    let mut opt = Adam::new(vec![a.clone(), b.clone()], 0.1)?;
    a.set_grad(Some(Tensor::ones(&[2], &dev)?))?;
    opt.step()?;
    assert_eq!(b.to_vec()?, vec![1.0, 1.0]);
    assert!(a.to_vec()?[0] < 1.0);
    let state = opt.state_dict()?;
    assert!(state.params[1].is_none());
    opt.zero_grad();
    assert!(a.grad().is_none());
    Ok(())
}
