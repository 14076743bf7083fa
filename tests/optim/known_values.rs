//! Optimizer updates and gradient clipping against PyTorch:
//! `fixtures/optim/optimizers.json` (3 steps of each optimizer
//! configuration with stored gradients) and `fixtures/optim/clip.json`
//! (norm and value clipping), made by `fixtures/make_optim_fixtures.py`.

use lam::optim::{clip_grad_norm, clip_grad_value, Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use lam::{DType, Device, Result, Tensor};
use serde_json::Value;

use crate::common::fixture;
use crate::conformance;

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
