//! Family `optim`: every optimizer over several steps (parameters after
//! each step, then the state buffers by PyTorch's names and step counts),
//! gradient clipping, and the learning-rate schedules.

use std::panic::{catch_unwind, AssertUnwindSafe};

use lam::optim::*;
use lam::prelude::*;
use serde_json::Value;

use super::check::{compare, Report, Tol};
use super::fixture::{array, cases, float, list, Args};
use super::runner::{panic_text, Queue};

const TOL: Tol = Tol::new(1e-6, 2e-5, 2e-6);

/// Runs every case of the family on `dev`.
pub fn run(dev: &Device, min_cases: usize) -> lam::Result<()> {
    let mut report = Report::default();
    let mut queue = Queue::default();
    for case in cases("optim") {
        let name = case["name"].as_str().unwrap_or("?").to_string();
        report.cases += 1;
        report.differs += case.get("differs").is_some() as usize;
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_case(&case, dev, &mut queue, &mut report)
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.fail(&name, e),
            Err(p) => report.fail(&name, format!("panicked: {}", panic_text(&p))),
        }
    }
    queue.flush(&mut report);
    report.finish("optim", &dev.name(), min_cases)
}

fn run_case(
    case: &Value,
    dev: &Device,
    queue: &mut Queue,
    report: &mut Report,
) -> Result<(), String> {
    let op = case["op"].as_str().expect("op");
    let a = Args(&case["args"]);
    match op {
        "sgd" | "adam" | "adamw" | "rmsprop" | "adagrad" => optimizer(op, &a, case, dev, queue),
        "clip_grad_norm" | "clip_grad_value" => clip(op, &a, case, dev, queue),
        _ => schedule(op, &a, case, report),
    }
}

fn params(case: &Value, dev: &Device) -> Result<Vec<Tensor>, String> {
    case["params"]
        .as_array()
        .expect("params")
        .iter()
        .map(|r| {
            array(&serde_json::json!({ "f": r }))
                .tensor(dev)
                .and_then(|t| t.requires_grad_())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Sets each parameter's gradient from one stored step (`null`: none).
fn set_grads(ps: &[Tensor], step: &Value, dev: &Device) -> Result<(), String> {
    for (p, g) in ps.iter().zip(step.as_array().expect("grads")) {
        let g = if g.is_null() {
            None
        } else {
            let t = array(&serde_json::json!({ "f": g }))
                .tensor(dev)
                .map_err(|e| e.to_string())?;
            Some(t)
        };
        p.set_grad(g).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn build(op: &str, a: &Args, ps: Vec<Tensor>) -> lam::Result<Box<dyn Optimizer>> {
    let f = |k: &str, default: f32| if a.has(k) { a.f32(k) } else { default };
    let b = |k: &str| a.has(k) && a.bool(k);
    let (lr, l1) = (a.f32("lr"), f("l1", 0.0));
    Ok(match op {
        "sgd" => Box::new(
            Sgd::new(ps, lr)?
                .momentum(f("momentum", 0.0))
                .dampening(f("dampening", 0.0))
                .nesterov(b("nesterov"))
                .weight_decay(f("weight_decay", 0.0))
                .l1(l1),
        ),
        "adam" => Box::new(
            Adam::new(ps, lr)?
                .betas(f("beta1", 0.9), f("beta2", 0.999))
                .eps(f("eps", 1e-8))
                .weight_decay(f("weight_decay", 0.0))
                .amsgrad(b("amsgrad"))
                .fused(b("fused"))
                .l1(l1),
        ),
        "adamw" => Box::new(
            AdamW::new(ps, lr)?
                .betas(f("beta1", 0.9), f("beta2", 0.999))
                .eps(f("eps", 1e-8))
                .weight_decay(f("weight_decay", 0.01))
                .amsgrad(b("amsgrad"))
                .fused(b("fused"))
                .l1(l1),
        ),
        "rmsprop" => Box::new(
            RmsProp::new(ps, lr)?
                .alpha(f("alpha", 0.99))
                .eps(f("eps", 1e-8))
                .momentum(f("momentum", 0.0))
                .centered(b("centered"))
                .weight_decay(f("weight_decay", 0.0))
                .l1(l1),
        ),
        "adagrad" => Box::new(
            Adagrad::new(ps, lr)?
                .lr_decay(f("lr_decay", 0.0))
                .initial_accumulator_value(f("initial_accumulator_value", 0.0))
                .eps(f("eps", 1e-10))
                .weight_decay(f("weight_decay", 0.0))
                .l1(l1),
        ),
        other => panic!("unknown optimizer {other}"),
    })
}

fn optimizer(
    op: &str,
    a: &Args,
    case: &Value,
    dev: &Device,
    queue: &mut Queue,
) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or("?");
    let ps = params(case, dev)?;
    let mut opt = build(op, a, ps.clone()).map_err(|e| e.to_string())?;
    let steps = case["grads"].as_array().expect("grads");
    for (t, (step, after)) in steps
        .iter()
        .zip(case["after"].as_array().expect("after"))
        .enumerate()
    {
        set_grads(&ps, step, dev)?;
        opt.step().map_err(|e| format!("step {t}: {e}"))?;
        for (i, (p, want)) in ps.iter().zip(after.as_array().expect("params")).enumerate() {
            // A copy: a fused update may rewrite the parameter's buffer in place.
            let snapshot = p.mul_scalar(1.0).map_err(|e| e.to_string())?;
            queue.push(
                name,
                format!("param {i} after step {t}"),
                &snapshot,
                want,
                TOL,
                false,
            )?;
        }
    }
    let state = opt.state_dict().map_err(|e| e.to_string())?;
    let scales = gradient_scales(steps);
    for (i, want) in case["state"].as_array().expect("state").iter().enumerate() {
        if want.is_null() {
            continue;
        }
        let got = state.params[i]
            .as_ref()
            .ok_or_else(|| format!("param {i} has no optimizer state"))?;
        if let Some(step) = want.get("step").and_then(|s| s.as_u64()) {
            if got.step != step {
                return Err(format!("param {i}: step {}, PyTorch's is {step}", got.step));
            }
        }
        for (buf, entry) in want["buffers"].as_object().expect("buffers") {
            let t = got
                .buffers
                .get(buf)
                .ok_or_else(|| format!("param {i}: no state buffer {buf}"))?;
            // Moments are sums of terms as large as the gradients (their
            // squares for second moments): each element's error scales with
            // its own gradients.
            let squared = buf.contains("sq") || buf.contains("square") || buf == "sum";
            let slack = scales[i]
                .iter()
                .map(|&g| {
                    let g = g * steps.len() as f32;
                    2e-6 * if squared { g * g } else { g }
                })
                .collect();
            let what = format!("param {i} {buf}");
            queue.push_with_slack(name, what, t, entry, TOL, false, slack)?;
        }
    }
    Ok(())
}

/// Per parameter, per element: the largest finite |gradient| it receives
/// over the steps.
fn gradient_scales(steps: &[Value]) -> Vec<Vec<f32>> {
    let n = steps
        .first()
        .and_then(|s| s.as_array())
        .map_or(0, |s| s.len());
    (0..n)
        .map(|i| {
            let mut scale: Vec<f32> = Vec::new();
            for s in steps.iter().filter(|s| !s[i].is_null()) {
                let g = array(&serde_json::json!({ "f": s[i] })).floats();
                scale.resize(g.len(), 0.0);
                for (m, v) in scale.iter_mut().zip(g) {
                    if v.is_finite() {
                        *m = m.max(v.abs());
                    }
                }
            }
            scale
        })
        .collect()
}

fn clip(op: &str, a: &Args, case: &Value, dev: &Device, queue: &mut Queue) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or("?");
    let ps = params(case, dev)?;
    set_grads(&ps, &case["grads"][0], dev)?;
    let total = if op == "clip_grad_value" {
        clip_grad_value(&ps, a.f32("clip_value")).map_err(|e| e.to_string())?;
        None
    } else {
        let t = clip_grad_norm(&ps, a.f32("max_norm"), float(&a.0["norm_type"]))
            .map_err(|e| e.to_string())?;
        Some(t)
    };
    for (i, (p, want)) in ps
        .iter()
        .zip(case["clipped"].as_array().expect("clipped"))
        .enumerate()
    {
        if want.is_null() {
            if p.grad().is_some() {
                return Err(format!("param {i} gained a gradient"));
            }
            continue;
        }
        let g = p
            .grad()
            .ok_or_else(|| format!("param {i} lost its gradient"))?;
        queue.push(name, format!("gradient {i}"), &g, want, TOL, false)?;
    }
    if let (Some(t), Some(want)) = (total, case.get("total")) {
        queue.push(name, "total norm".into(), &t, want, TOL, false)?;
    }
    Ok(())
}

fn schedule(op: &str, a: &Args, case: &Value, report: &mut Report) -> Result<(), String> {
    let base = a.f32("base_lr");
    let epochs = case["epochs"].as_u64().expect("epochs") as usize;
    let mut lrs = Vec::with_capacity(epochs + 1);
    if op == "plateau" {
        let mut s = ReduceLrOnPlateau::new(base)
            .mode(if a.str("mode") == "min" {
                PlateauMode::Min
            } else {
                PlateauMode::Max
            })
            .factor(a.f32("factor"))
            .patience(a.usize("patience") as u64)
            .threshold(a.f32("threshold"))
            .threshold_mode(if a.str("threshold_mode") == "rel" {
                ThresholdMode::Rel
            } else {
                ThresholdMode::Abs
            })
            .cooldown(a.usize("cooldown") as u64)
            .min_lr(a.f32("min_lr"))
            .eps(a.f32("eps"));
        lrs.push(s.lr());
        for m in array(&case["metrics"]).floats() {
            lrs.push(s.step_with(m).map_err(|e| e.to_string())?);
        }
    } else {
        let mut s: Box<dyn Scheduler> = match op {
            "step_lr" => Box::new(
                StepLr::new(base, a.usize("step_size") as u64, a.f32("gamma"))
                    .map_err(|e| e.to_string())?,
            ),
            "multi_step_lr" => {
                let ms: Vec<u64> = list(&a.0["milestones"], |v| v.as_u64().expect("milestone"));
                Box::new(MultiStepLr::new(base, &ms, a.f32("gamma")))
            }
            "exponential_lr" => Box::new(ExponentialLr::new(base, a.f32("gamma"))),
            "cosine" => {
                let mut c =
                    CosineAnnealing::new(base, a.usize("total") as u64).eta_min(a.f32("eta_min"));
                if a.has("warmup") {
                    c = c.warmup(a.usize("warmup") as u64, a.f32("start_factor"));
                }
                Box::new(c)
            }
            other => panic!("unknown schedule {other}"),
        };
        lrs.push(s.lr());
        for _ in 0..epochs {
            lrs.push(s.step());
        }
    }
    let m = compare(
        &lrs,
        &array(&case["lrs"]).floats(),
        0.0,
        Tol::new(1e-9, 1e-6, 0.0),
        false,
    )?;
    report.record(case["name"].as_str().unwrap_or("?"), m);
    Ok(())
}
