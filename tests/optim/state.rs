//! Optimizer state: `state_dict`/`load_state_dict` resume training
//! exactly, a state dict is a snapshot, bad state is rejected without
//! changing anything, and the kind, hyper-parameter and buffer names are
//! the training checkpoint's format.

use lam::optim::{Adam, Optimizer, Sgd};
use lam::{Result, Tensor};

use crate::common;
use crate::conformance;

use super::{cpu, every_optimizer, Problem};

conformance!(state_dict_resumes_exactly, |dev| {
    for name in ["sgd", "adam", "adamw", "amsgrad", "rmsprop", "adagrad"] {
        let pick = |params: Vec<Tensor>| -> Result<Box<dyn Optimizer>> {
            Ok(every_optimizer(params)?
                .into_iter()
                .find(|(n, _)| *n == name)
                .expect("listed")
                .1)
        };
        // Uninterrupted: 8 steps, the learning rate halved after 4 (as a schedule would).
        let full = Problem::new(dev)?;
        let mut opt = pick(full.params())?;
        let mut losses = Vec::new();
        for k in 0..8 {
            if k == 4 {
                let lr = opt.lr();
                opt.set_lr(lr * 0.5);
            }
            losses.push(full.step(opt.as_mut())?);
        }
        // Interrupted after 4: parameters and optimizer state copied into fresh ones.
        let first = Problem::new(dev)?;
        let mut opt1 = pick(first.params())?;
        for _ in 0..4 {
            first.step(opt1.as_mut())?;
        }
        let lr = opt1.lr();
        opt1.set_lr(lr * 0.5);
        let state = opt1.state_dict()?;
        let second = Problem::new(dev)?;
        second.w.set_data(&first.w.detach())?;
        second.b.set_data(&first.b.detach())?;
        let mut opt2 = pick(second.params())?;
        opt2.load_state_dict(&state)?;
        assert_eq!(opt2.lr(), opt1.lr(), "{name}: lr restored");
        let resumed: Vec<f32> = (0..4)
            .map(|_| second.step(opt2.as_mut()))
            .collect::<Result<_>>()?;
        if dev.is_gpu() {
            common::close(&resumed, &losses[4..], 1e-5);
        } else {
            assert_eq!(resumed, losses[4..], "{name}: resumed losses differ");
            assert_eq!(
                second.w.to_vec()?,
                full.w.to_vec()?,
                "{name}: resumed parameters differ"
            );
        }
    }
    Ok(())
});

#[test]
fn state_dict_is_a_snapshot_and_bad_state_is_rejected() -> Result<()> {
    let dev = cpu();
    let p = Problem::new(&dev)?;
    let mut opt = Adam::new(p.params(), 0.1)?;
    p.step(&mut opt)?;
    let snap = opt.state_dict()?;
    let m_before = snap.params[0].as_ref().expect("state").buffers["exp_avg"].to_vec()?;
    p.step(&mut opt)?;
    assert_eq!(
        snap.params[0].as_ref().expect("state").buffers["exp_avg"].to_vec()?,
        m_before,
        "snapshot changed"
    );
    assert_eq!(snap.params[0].as_ref().expect("state").step, 1);
    assert_eq!(snap.kind, "adam");

    let current = opt.state_dict()?;
    let unchanged = |opt: &Adam| -> Result<()> {
        let now = opt.state_dict()?;
        assert_eq!(now.hyper, current.hyper);
        assert_eq!(now.params[0].as_ref().expect("state").step, 2);
        Ok(())
    };
    // Wrong kind.
    let sgd = Sgd::new(p.params(), 0.1)?.state_dict()?;
    assert!(opt
        .load_state_dict(&sgd)
        .unwrap_err()
        .to_string()
        .contains("sgd"));
    unchanged(&opt)?;
    // Wrong parameter count.
    let mut bad = snap.clone();
    bad.params.pop();
    assert!(opt.load_state_dict(&bad).is_err());
    unchanged(&opt)?;
    // Wrong buffer shape.
    let mut bad = snap.clone();
    if let Some(ps) = bad.params[0].as_mut() {
        ps.buffers
            .insert("exp_avg".into(), Tensor::zeros(&[2], &dev)?);
    }
    assert!(opt
        .load_state_dict(&bad)
        .unwrap_err()
        .to_string()
        .contains("exp_avg"));
    unchanged(&opt)?;
    // Missing buffer, unknown hyper-parameter, invalid hyper-parameter.
    let mut bad = snap.clone();
    if let Some(ps) = bad.params[1].as_mut() {
        ps.buffers.remove("exp_avg_sq");
    }
    assert!(opt.load_state_dict(&bad).is_err());
    let mut bad = snap.clone();
    bad.hyper.insert("momentum".into(), 0.9);
    assert!(opt
        .load_state_dict(&bad)
        .unwrap_err()
        .to_string()
        .contains("momentum"));
    let mut bad = snap.clone();
    bad.hyper.insert("beta1".into(), 1.5);
    assert!(opt
        .load_state_dict(&bad)
        .unwrap_err()
        .to_string()
        .contains("beta1"));
    unchanged(&opt)?;
    // A good one loads.
    opt.load_state_dict(&snap)?;
    assert_eq!(opt.state_dict()?.params[0].as_ref().expect("state").step, 1);
    Ok(())
}

/// Training checkpoints store each optimizer's kind, hyper-parameter names
/// and buffer names; files written earlier load only while these stay
/// (`maximize`, added later, may be absent from an older file).
#[test]
fn snapshot_names_are_the_checkpoint_format() -> Result<()> {
    let p = Problem::new(&cpu())?;
    // Hyper-parameters as each kind stores them (sorted), then buffers.
    let adam: &[&str] = &[
        "amsgrad",
        "beta1",
        "beta2",
        "eps",
        "l1",
        "lr",
        "maximize",
        "weight_decay",
    ];
    let sgd: &[&str] = &[
        "dampening",
        "l1",
        "lr",
        "maximize",
        "momentum",
        "nesterov",
        "weight_decay",
    ];
    let rmsprop: &[&str] = &[
        "alpha",
        "centered",
        "eps",
        "l1",
        "lr",
        "maximize",
        "momentum",
        "weight_decay",
    ];
    let adagrad: &[&str] = &[
        "eps",
        "initial_accumulator_value",
        "l1",
        "lr",
        "lr_decay",
        "maximize",
        "weight_decay",
    ];
    let moments: &[&str] = &["exp_avg", "exp_avg_sq"];
    let expected: [(&str, &[&str], &[&str]); 6] = [
        ("sgd", sgd, &["momentum_buffer"]),
        ("adam", adam, moments),
        ("adamw", adam, moments),
        (
            "amsgrad",
            adam,
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
        ),
        (
            "rmsprop",
            rmsprop,
            &["grad_avg", "momentum_buffer", "square_avg"],
        ),
        ("adagrad", adagrad, &["sum"]),
    ];
    let optimizers = every_optimizer(p.params())?;
    assert_eq!(optimizers.len(), expected.len());
    for ((name, mut opt), (want_name, hyper, buffers)) in optimizers.into_iter().zip(expected) {
        assert_eq!(name, want_name);
        p.step(opt.as_mut())?;
        let state = opt.state_dict()?;
        let kind = if name == "amsgrad" { "adamw" } else { name };
        assert_eq!(state.kind, kind);
        let names: Vec<&str> = state.hyper.keys().map(String::as_str).collect();
        assert_eq!(names, hyper, "{name}: hyper-parameter names");
        let ps = state.params[0].as_ref().expect("state after a step");
        let names: Vec<&str> = ps.buffers.keys().map(String::as_str).collect();
        assert_eq!(names, buffers, "{name}: buffer names");
    }
    Ok(())
}
