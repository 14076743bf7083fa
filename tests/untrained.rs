//! A tensor that gets a gradient but that no optimizer updates — a
//! parameter left out of a hand-written `Visit::visit` — is reported by the
//! first `backward` after the optimizer is built, and only then.
//!
//! The check's setting is process-wide, so these tests have a binary of
//! their own, set to `UntrainedCheck::Error` (every test here is fine with
//! that).

use lam::autograd::{set_untrained_check, UntrainedCheck};
use lam::nn::{join, Entry, Linear, Visit};
use lam::optim::{Adam, Sgd};
use lam::prelude::*;

/// A model whose hand-written visit forgets `extra`.
struct Forgetful {
    fc: Linear,
    extra: Tensor,
}

impl Visit for Forgetful {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.fc.visit(&join(prefix, "fc"), f);
    }
}

impl Module for Forgetful {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        &self.fc.forward(x)? * &self.extra
    }
}

/// The same model, derived: nothing can be forgotten.
#[derive(Module)]
struct Derived {
    fc: Linear,
    #[module(param)]
    extra: Tensor,
}

impl Module for Derived {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        &self.fc.forward(x)? * &self.extra
    }
}

fn strict() {
    set_untrained_check(UntrainedCheck::Error);
}

#[test]
fn a_forgotten_parameter_is_reported_by_the_first_backward() -> Result<()> {
    strict();
    let dev = Device::cpu();
    let model = Forgetful {
        fc: Linear::new(3, 2, &dev)?,
        extra: Tensor::ones(&[5, 2], &dev)?.requires_grad_()?,
    };
    let mut opt = Adam::new(model.parameters(), 1e-2)?;
    let x = Tensor::randn(&[5, 3], &dev)?;
    let loss = model.forward(&x)?.square()?.mean_all()?;
    let err = loss
        .backward()
        .expect_err("the forgotten tensor is reported");
    let msg = err.to_string();
    assert!(msg.contains("1 tensor that no optimizer updates"), "{msg}");
    assert!(
        msg.contains("[5, 2]") && msg.contains("derive(Module)"),
        "{msg}"
    );
    // Reported once per optimizer: later steps only load a counter.
    opt.step()?;
    opt.zero_grad();
    model.forward(&x)?.square()?.mean_all()?.backward()?;
    Ok(())
}

#[test]
fn derived_models_and_hand_written_updates_pass() -> Result<()> {
    strict();
    let dev = Device::cpu();
    let model = Derived {
        fc: Linear::new(3, 2, &dev)?,
        extra: Tensor::ones(&[5, 2], &dev)?.requires_grad_()?,
    };
    let _opt = Sgd::new(model.parameters(), 0.1)?;
    let x = Tensor::randn(&[5, 3], &dev)?;
    model.forward(&x)?.square()?.mean_all()?.backward()?;

    // No optimizer at all (the README's hand-written SGD): nothing to check.
    let w = Tensor::zeros(&[3, 1], &dev)?.requires_grad_()?;
    x.matmul(&w)?.sum_all()?.backward()?;
    assert!(w.grad().is_some());
    Ok(())
}
