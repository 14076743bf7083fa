//! Optimizers, clipping and schedulers: updates against PyTorch
//! (fixtures/optim/*.json, made by fixtures/make_optim_fixtures.py), fused
//! Adam against the composed update, exact resume through
//! state_dict/load_state_dict, learning, and bad input.

mod common;

use common::fixture;

use lam::optim::{
    clip_grad_norm, clip_grad_value, Adagrad, Adam, AdamW, CosineAnnealing, ExponentialLr,
    MultiStepLr, Optimizer, PlateauMode, ReduceLrOnPlateau, RmsProp, Scheduler, Sgd, StepLr,
    ThresholdMode,
};
use lam::{DType, Device, Error, Result, Tensor};
use serde_json::Value;

fn tensor(v: &Value, dev: &Device) -> Result<Tensor> {
    fixture::tensor(v, DType::F32, dev)
}

/// The optimizer a fixture case describes.
fn configured(case: &Value, params: Vec<Tensor>) -> Result<Box<dyn Optimizer>> {
    let o = &case["options"];
    let f = |key: &str| o[key].as_f64().map(|v| v as f32);
    let lr = f("lr").expect("lr");
    let wd = f("weight_decay");
    let l1 = f("l1").unwrap_or(0.0);
    let betas = o["betas"].as_array().map(|b| {
        (
            b[0].as_f64().expect("beta") as f32,
            b[1].as_f64().expect("beta") as f32,
        )
    });
    Ok(match case["optimizer"].as_str().expect("optimizer") {
        "sgd" => Box::new(
            Sgd::new(params, lr)?
                .momentum(f("momentum").unwrap_or(0.0))
                .dampening(f("dampening").unwrap_or(0.0))
                .nesterov(o["nesterov"].as_bool().unwrap_or(false))
                .weight_decay(wd.unwrap_or(0.0))
                .l1(l1),
        ),
        kind @ ("adam" | "adamw") => {
            let (b1, b2) = betas.unwrap_or((0.9, 0.999));
            // Adam and AdamW share their builders but not a type.
            macro_rules! adam {
                ($ty:ident, $weight_decay:expr) => {
                    Box::new(
                        $ty::new(params, lr)?
                            .betas(b1, b2)
                            .eps(f("eps").unwrap_or(1e-8))
                            .weight_decay(wd.unwrap_or($weight_decay))
                            .l1(l1)
                            .amsgrad(o["amsgrad"].as_bool().unwrap_or(false)),
                    )
                };
            }
            if kind == "adam" {
                adam!(Adam, 0.0)
            } else {
                adam!(AdamW, 0.01)
            }
        }
        "rmsprop" => Box::new(
            RmsProp::new(params, lr)?
                .alpha(f("alpha").unwrap_or(0.99))
                .eps(f("eps").unwrap_or(1e-8))
                .momentum(f("momentum").unwrap_or(0.0))
                .centered(o["centered"].as_bool().unwrap_or(false))
                .weight_decay(wd.unwrap_or(0.0))
                .l1(l1),
        ),
        "adagrad" => Box::new(
            Adagrad::new(params, lr)?
                .lr_decay(f("lr_decay").unwrap_or(0.0))
                .initial_accumulator_value(f("initial_accumulator_value").unwrap_or(0.0))
                .eps(f("eps").unwrap_or(1e-10))
                .weight_decay(wd.unwrap_or(0.0))
                .l1(l1),
        ),
        other => panic!("unknown optimizer {other}"),
    })
}

/// Runs a fixture case: 3 steps with the stored gradients, checking the parameters after each.
fn run_optimizer_case(case: &Value, dev: &Device) -> Result<()> {
    let name = case["name"].as_str().expect("name");
    let params: Vec<Tensor> = case["params"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| tensor(p, dev)?.requires_grad_())
        .collect::<Result<_>>()?;
    let mut opt = configured(case, params.clone())?;
    let steps = case["steps"].as_array().expect("steps");
    for (k, (grads, expected)) in case["grads"]
        .as_array()
        .expect("grads")
        .iter()
        .zip(steps)
        .enumerate()
    {
        for (p, g) in params.iter().zip(grads.as_array().expect("grads")) {
            p.set_grad(if g.is_null() {
                None
            } else {
                Some(tensor(g, dev)?)
            })?;
        }
        opt.step()?;
        for (i, (p, e)) in params
            .iter()
            .zip(expected.as_array().expect("params"))
            .enumerate()
        {
            let what = format!("{name}: param {i} after step {}", k + 1);
            fixture::expect_close_within(&what, p, e, 2e-5, 2e-5)?;
        }
    }
    Ok(())
}

conformance!(optimizers_match_pytorch, |dev| {
    let cases = fixture::file_cases("optim/optimizers.json", 17);
    fixture::run_cases(&cases, dev, run_optimizer_case)
});

conformance!(clipping_matches_pytorch, |dev| {
    for case in fixture::file_cases("optim/clip.json", 6) {
        let name = case["name"].as_str().expect("name");
        let grads = case["grads"].as_array().expect("grads");
        let params: Vec<Tensor> = grads
            .iter()
            .map(|g| {
                let p = Tensor::zeros(&fixture::shape(g), dev)?.requires_grad_()?;
                p.set_grad(Some(tensor(g, dev)?))?;
                Ok(p)
            })
            .collect::<Result<_>>()?;
        if case["kind"] == "norm" {
            let norm_type = match &case["norm_type"] {
                Value::String(s) if s == "inf" => f32::INFINITY,
                v => v.as_f64().expect("norm_type") as f32,
            };
            let total = clip_grad_norm(
                &params,
                case["max_norm"].as_f64().expect("max_norm") as f32,
                norm_type,
            )?;
            fixture::close(
                &format!("{name}: total norm"),
                &[total.item()?],
                &[case["total"].as_f64().expect("total") as f32],
                1e-5,
                1e-5,
            )?;
        } else {
            clip_grad_value(
                &params,
                case["clip_value"].as_f64().expect("clip_value") as f32,
            )?;
        }
        for (i, (p, e)) in params
            .iter()
            .zip(case["clipped"].as_array().expect("clipped"))
            .enumerate()
        {
            let grad = p.grad().expect("grad");
            fixture::expect_close_within(&format!("{name}: grad {i}"), &grad, e, 1e-5, 1e-5)?;
        }
    }
    Ok(())
});

#[test]
fn schedulers_match_pytorch() {
    for case in fixture::file_cases("optim/schedulers.json", 8) {
        let name = case["name"].as_str().expect("name");
        let o = &case["options"];
        let f = |k: &str| o[k].as_f64().map(|v| v as f32);
        let u = |k: &str| o[k].as_u64();
        let expected: Vec<f32> = case["lrs"]
            .as_array()
            .expect("lrs")
            .iter()
            .map(|v| v.as_f64().expect("lr") as f32)
            .collect();
        let base = case["base_lr"].as_f64().expect("base_lr") as f32;
        let actual: Vec<f32> = if case["kind"] == "plateau" {
            let mut s = ReduceLrOnPlateau::new(base)
                .factor(f("factor").unwrap_or(0.1))
                .patience(u("patience").unwrap_or(10))
                .threshold(f("threshold").unwrap_or(1e-4))
                .cooldown(u("cooldown").unwrap_or(0))
                .min_lr(f("min_lr").unwrap_or(0.0));
            if o["mode"] == "max" {
                s = s.mode(PlateauMode::Max);
            }
            if o["threshold_mode"] == "abs" {
                s = s.threshold_mode(ThresholdMode::Abs);
            }
            let mut lrs = vec![s.lr()];
            for m in case["metrics"].as_array().expect("metrics") {
                lrs.push(
                    s.step_with(m.as_f64().expect("metric") as f32)
                        .expect("valid plateau"),
                );
            }
            lrs
        } else {
            let mut s: Box<dyn Scheduler> = match case["kind"].as_str().expect("kind") {
                "step" => Box::new(
                    StepLr::new(
                        base,
                        u("step_size").expect("step_size"),
                        f("gamma").expect("gamma"),
                    )
                    .expect("step_size > 0"),
                ),
                "multistep" => {
                    let ms: Vec<u64> = o["milestones"]
                        .as_array()
                        .expect("milestones")
                        .iter()
                        .map(|m| m.as_u64().expect("m"))
                        .collect();
                    Box::new(MultiStepLr::new(base, &ms, f("gamma").expect("gamma")))
                }
                "exponential" => Box::new(ExponentialLr::new(base, f("gamma").expect("gamma"))),
                "cosine" => Box::new(
                    CosineAnnealing::new(base, u("total").expect("total"))
                        .eta_min(f("eta_min").unwrap_or(0.0))
                        .warmup(u("warmup").unwrap_or(0), f("start_factor").unwrap_or(1.0)),
                ),
                other => panic!("unknown scheduler {other}"),
            };
            let mut lrs = vec![s.lr()];
            for _ in 1..expected.len() {
                lrs.push(s.step());
            }
            lrs
        };
        if let Err(e) = lam::testing::assert_close(&actual, &expected, 1e-7, 1e-5) {
            panic!("{name}: {e}\nactual:   {actual:?}\nexpected: {expected:?}");
        }
    }
}

#[test]
fn schedulers_resume_with_set_epoch() {
    let mut a = CosineAnnealing::new(0.1, 20).warmup(3, 0.1).eta_min(1e-3);
    let run: Vec<f32> = (0..12).map(|_| a.step()).collect();
    let mut b = CosineAnnealing::new(0.1, 20).warmup(3, 0.1).eta_min(1e-3);
    b.set_epoch(6);
    let resumed: Vec<f32> = (0..6).map(|_| b.step()).collect();
    assert_eq!(&run[6..], &resumed[..]);
    assert_eq!(a.epoch(), 12);
    // Past the end the rate stays at eta_min.
    assert_eq!(a.lr_at(25), 1e-3);

    let mut p = ReduceLrOnPlateau::new(0.1).patience(0).cooldown(1);
    for m in [1.0, 1.0, 0.5] {
        p.step_with(m).expect("valid");
    }
    let mut q = ReduceLrOnPlateau::new(0.5).patience(0).cooldown(1);
    q.load_state_dict(&p.state_dict()).expect("loads");
    for m in [0.9, 0.9, 0.9] {
        assert_eq!(
            p.step_with(m).expect("valid"),
            q.step_with(m).expect("valid")
        );
    }
    assert!(StepLr::new(0.1, 0, 0.5).is_err());
    assert!(ReduceLrOnPlateau::new(0.1)
        .factor(1.5)
        .step_with(1.0)
        .is_err());
}

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

conformance!(fused_adam_matches_the_composed_update, |dev| {
    for decoupled in [false, true] {
        let a = Problem::new(dev)?;
        let b = Problem::new(dev)?;
        let (mut fused, mut composed): (Box<dyn Optimizer>, Box<dyn Optimizer>) = if decoupled {
            (
                Box::new(AdamW::new(a.params(), 0.02)?.weight_decay(0.1).l1(0.01)),
                Box::new(
                    AdamW::new(b.params(), 0.02)?
                        .weight_decay(0.1)
                        .l1(0.01)
                        .fused(false),
                ),
            )
        } else {
            (
                Box::new(Adam::new(a.params(), 0.02)?.weight_decay(0.1).l1(0.01)),
                Box::new(
                    Adam::new(b.params(), 0.02)?
                        .weight_decay(0.1)
                        .l1(0.01)
                        .fused(false),
                ),
            )
        };
        for _ in 0..10 {
            a.step(fused.as_mut())?;
            b.step(composed.as_mut())?;
        }
        common::close(&a.w.to_vec()?, &b.w.to_vec()?, 1e-5);
        common::close(&a.b.to_vec()?, &b.b.to_vec()?, 1e-5);
        let (sa, sb) = (fused.state_dict()?, composed.state_dict()?);
        for (pa, pb) in sa.params.iter().zip(&sb.params) {
            let (pa, pb) = (pa.as_ref().expect("state"), pb.as_ref().expect("state"));
            assert_eq!(pa.step, pb.step);
            for (name, t) in &pa.buffers {
                common::close(&t.to_vec()?, &pb.buffers[name].to_vec()?, 1e-5);
            }
        }
    }
    Ok(())
});

conformance!(fused_sgd_matches_the_composed_update, |dev| {
    // (momentum, dampening, nesterov, weight decay): plain, with decay,
    // momentum (whose first step sets the buffer), dampening, Nesterov.
    let configs = [
        (0.0, 0.0, false, 0.0),
        (0.0, 0.0, false, 0.1),
        (0.9, 0.0, false, 0.05),
        (0.9, 0.3, false, 0.0),
        (0.8, 0.0, true, 0.01),
    ];
    for (momentum, dampening, nesterov, decay) in configs {
        let sgd = |params| -> Result<Sgd> {
            Ok(Sgd::new(params, 0.05)?
                .momentum(momentum)
                .dampening(dampening)
                .nesterov(nesterov)
                .weight_decay(decay))
        };
        let (a, b) = (Problem::new(dev)?, Problem::new(dev)?);
        let mut fused = sgd(a.params())?;
        let mut composed = sgd(b.params())?.fused(false);
        for _ in 0..10 {
            a.step(&mut fused)?;
            b.step(&mut composed)?;
        }
        let case = format!("momentum {momentum} dampening {dampening} nesterov {nesterov}");
        for (x, y) in [(&a.w, &b.w), (&a.b, &b.b)] {
            let (x, y) = (x.to_vec()?, y.to_vec()?);
            if dev.is_gpu() {
                common::close(&x, &y, 1e-6);
            } else {
                // The CPU's fused loop computes the composed ops in order.
                assert_eq!(x, y, "{case}");
            }
        }
        let (sa, sb) = (fused.state_dict()?, composed.state_dict()?);
        for (pa, pb) in sa.params.iter().zip(&sb.params) {
            let (pa, pb) = (pa.as_ref().expect("state"), pb.as_ref().expect("state"));
            assert_eq!(pa.buffers.len(), pb.buffers.len(), "{case}");
            for (name, t) in &pa.buffers {
                common::close(&t.to_vec()?, &pb.buffers[name].to_vec()?, 1e-6);
            }
        }
    }
    Ok(())
});

#[test]
fn sgd_is_one_fused_op_per_parameter() {
    use lam::DeviceExt;
    let devices = [
        Some(Device::cpu()),
        common::gpu("vulkan"),
        common::gpu("gl"),
    ];
    for device in devices.into_iter().flatten() {
        let (dev, recorder) = lam::testing::Recorder::device(&device);
        let problem = Problem::new(&dev).expect("problem");
        let mut opt = Sgd::new(problem.params(), 0.1)
            .expect("sgd")
            .momentum(0.9)
            .weight_decay(1e-4);
        problem.step(&mut opt).expect("a first step");
        let before = recorder.calls();
        problem.step(&mut opt).expect("a second step");
        let after = recorder.calls();
        let fused = |calls: &std::collections::BTreeMap<&str, u64>| calls.get("fused_sgd").copied();
        let (before, after) = (fused(&before).unwrap_or(0), fused(&after).unwrap_or(0));
        assert_eq!(
            after - before,
            2,
            "one call per parameter on {}",
            device.name()
        );
    }
}

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

#[test]
fn bad_hyper_parameters_and_parameter_lists_are_errors() -> Result<()> {
    let dev = cpu();
    let p = Tensor::ones(&[2], &dev)?.requires_grad_()?;
    p.set_grad(Some(Tensor::ones(&[2], &dev)?))?;
    let ps = vec![p.clone()];
    let msg = |r: Result<()>| r.unwrap_err().to_string();
    assert!(msg(Sgd::new(ps.clone(), -0.1)?.step()).contains("lr"));
    assert!(msg(Sgd::new(ps.clone(), 0.1)?.nesterov(true).step()).contains("momentum"));
    assert!(msg(Sgd::new(ps.clone(), 0.1)?
        .momentum(0.9)
        .dampening(0.1)
        .nesterov(true)
        .step())
    .contains("dampening"));
    assert!(msg(Adam::new(ps.clone(), 0.1)?.betas(1.0, 0.999).step()).contains("beta1"));
    assert!(msg(AdamW::new(ps.clone(), 0.1)?.eps(f32::NAN).step()).contains("eps"));
    assert!(msg(RmsProp::new(ps.clone(), 0.1)?.alpha(-1.0).step()).contains("alpha"));
    assert!(msg(Adagrad::new(ps.clone(), 0.1)?.lr_decay(-1.0).step()).contains("lr_decay"));
    assert!(msg(Adam::new(ps.clone(), 0.1)?.l1(-1.0).step()).contains("l1"));
    assert_eq!(
        p.to_vec()?,
        vec![1.0, 1.0],
        "a rejected step changed the parameter"
    );
    assert!(Sgd::new(vec![], 0.1).is_err());
    assert!(Adam::new(vec![p.clone(), p.clone()], 0.1)
        .unwrap_err()
        .to_string()
        .contains("more than once"));
    let labels = Tensor::from_vec_i32(vec![1], &[1], &dev)?;
    assert!(matches!(
        Sgd::new(vec![labels], 0.1),
        Err(Error::DTypeMismatch { .. })
    ));
    assert!(clip_grad_norm(&ps, 1.0, 0.0).is_err());
    assert!(clip_grad_norm(&ps, -1.0, 2.0).is_err());
    assert!(clip_grad_value(&ps, -1.0).is_err());
    // No gradients at all: a total norm of 0 and nothing to clip.
    p.zero_grad();
    assert_eq!(clip_grad_norm(&ps, 1.0, 2.0)?.item()?, 0.0);
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
