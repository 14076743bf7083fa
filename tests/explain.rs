//! Attribution (`lam_train::explain`) against captum 0.9, on every backend.
//!
//! - Known values: `fixtures/explain/captum.json`, written by
//!   `fixtures/make_explain_fixtures.py`: an MLP (tanh) and a CNN (conv,
//!   ReLU, max-pool, linear) with PyTorch's weights, and captum's
//!   attributions for Saliency (absolute and signed), Input×Gradient,
//!   Integrated Gradients (every rule, one baseline and a batch of them,
//!   internal batches; attributions and convergence deltas), NoiseTunnel
//!   (smoothgrad, smoothgrad_sq and vargrad over three methods, with the
//!   noise captum drew) and Occlusion (windows cut at the edge included);
//!   scikit-learn's `permutation_importance` with the row orders it used.
//! - Completeness: Integrated Gradients' attributions add up to
//!   `f(x) − f(x')`, closer as the steps grow.
//! - The model's own gradients are left alone, and bad arguments are errors.

mod common;

use common::fixture::{self, Options};
use lam::nn::{Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, Tanh};
use lam::prelude::*;
use lam_train::explain::{
    permutation_importance, permutation_importance_with, Attribution, InputXGradient,
    IntegratedGradients, NoiseTunnel, NoiseType, Occlusion, Rule, Saliency, Target,
};
use serde_json::Value;

const FILE: &str = "explain/captum.json";
/// f32 against f32: captum sums in another order, and GPUs differ again.
const TOL: f32 = 2e-5;

fn mlp(dev: &Device) -> lam::Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(6, 10, dev)?)
        .add(Tanh)
        .add(Linear::new(10, 3, dev)?))
}

fn cnn(dev: &Device) -> lam::Result<Sequential> {
    Ok(Sequential::new()
        .add(Conv2d::with_config(
            1,
            3,
            3,
            Conv2dConfig::default().padding(1),
            dev,
        )?)
        .add(ReLU)
        .add(MaxPool2d::new(2)?)
        .add(Flatten::new())
        .add(Linear::new(27, 3, dev)?))
}

/// The fixture's two models with PyTorch's weights, in evaluation mode.
fn models(doc: &Value, dev: &Device) -> lam::Result<Vec<(&'static str, Sequential)>> {
    let mut out = Vec::new();
    for (name, model) in [("mlp", mlp(dev)?), ("cnn", cnn(dev)?)] {
        fixture::load_state(&model, &doc["models"][name], dev)?;
        model.eval();
        out.push((name, model));
    }
    Ok(out)
}

fn target(v: &Value) -> Target {
    match v {
        Value::Array(cs) => Target::PerSample(
            cs.iter()
                .map(|c| c.as_u64().expect("a class") as usize)
                .collect(),
        ),
        c => Target::Class(c.as_u64().expect("a class") as usize),
    }
}

fn rule(name: &str) -> Rule {
    match name {
        "riemann_left" => Rule::RiemannLeft,
        "riemann_right" => Rule::RiemannRight,
        "riemann_middle" => Rule::RiemannMiddle,
        "riemann_trapezoid" => Rule::RiemannTrapezoid,
        "gausslegendre" => Rule::GaussLegendre,
        other => panic!("unknown rule {other}"),
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_u64().expect("a size") as usize)
        .collect()
}

/// Integrated Gradients as a case configures it.
fn integrated<'m>(
    model: &'m dyn Module,
    config: &Value,
    baseline: Option<&Tensor>,
) -> IntegratedGradients<'m> {
    let o = Options(config);
    let mut ig = IntegratedGradients::new(model)
        .n_steps(o.usize("n_steps", 50))
        .rule(rule(config["method"].as_str().unwrap_or("gausslegendre")));
    if let Some(b) = baseline {
        ig = ig.baseline(b);
    }
    if let Some(m) = config.get("internal_batch_size").and_then(Value::as_u64) {
        ig = ig.internal_batch_size(m as usize);
    }
    ig
}

fn run_case(case: &Value, model: &dyn Module, dev: &Device) -> lam::Result<()> {
    let x = fixture::tensor(&case["inputs"], DType::F32, dev)?;
    let target = target(&case["target"]);
    let baseline = case
        .get("baseline")
        .map(|b| fixture::tensor(b, DType::F32, dev))
        .transpose()?;
    let config = &case["config"];
    let o = Options(config);
    let attributions = match case["method"].as_str().expect("a method") {
        "saliency" => Saliency::new(model)
            .abs(o.bool("abs", true))
            .attribute(&x, &target)?,
        "input_x_gradient" => InputXGradient::new(model).attribute(&x, &target)?,
        "integrated_gradients" => {
            let (a, delta) =
                integrated(model, config, baseline.as_ref()).attribute_with_delta(&x, &target)?;
            fixture::expect_close_within("delta", &delta, &case["delta"], TOL, TOL)?;
            a
        }
        "noise_tunnel" => {
            let inner: Box<dyn Attribution> = match config["inner"].as_str() {
                Some("saliency") => Box::new(Saliency::new(model)),
                Some("input_x_gradient") => Box::new(InputXGradient::new(model)),
                _ => Box::new(integrated(model, config, baseline.as_ref())),
            };
            let kind = match config["nt_type"].as_str() {
                Some("smoothgrad") => NoiseType::SmoothGrad,
                Some("smoothgrad_sq") => NoiseType::SmoothGradSq,
                _ => NoiseType::VarGrad,
            };
            let noise = fixture::tensor(&case["noise"], DType::F32, dev)?;
            NoiseTunnel::new(&*inner)
                .kind(kind)
                .nt_samples(o.usize("nt_samples", 5))
                .attribute_with_noise(&x, &target, &noise)?
        }
        "occlusion" => Occlusion::new(model, &usizes(&config["window"]))
            .strides(&usizes(&config["strides"]))
            .baseline(o.f32("baseline", 0.0))
            .attribute(&x, &target)?,
        other => panic!("unknown method {other}"),
    };
    fixture::expect_close_within("attributions", &attributions, &case["expected"], TOL, TOL)
}

conformance!(attributions_match_captum, |dev| {
    let doc = fixture::read(FILE);
    let models = models(&doc, dev)?;
    let cases = fixture::file_cases(FILE, 30);
    let model_of = |case: &Value| usize::from(case["model"] == "cnn");
    // Every method runs on both models.
    let per_model = [0, 1].map(|i| cases.iter().filter(|c| model_of(c) == i).count());
    assert_eq!(per_model, [15, 15]);
    fixture::run_cases(&cases, dev, |case, dev| {
        run_case(case, &models[model_of(case)].1, dev)
    })?;
    Ok(())
});

conformance!(permutation_importance_matches_sklearn, |dev| {
    let doc = fixture::read(FILE);
    let models = models(&doc, dev)?;
    let case = &doc["permutation"];
    let x = fixture::tensor(&case["inputs"], DType::F32, dev)?;
    let labels: Vec<i32> = usizes(&case["labels"]).iter().map(|&c| c as i32).collect();
    let y = Tensor::from_vec_i32(labels.clone(), &[labels.len()], dev)?;
    let model = &models[0].1;
    let score = |x: &Tensor| -> lam::Result<f64> {
        let logits = no_grad(|| model.forward(x))?;
        Ok(-(lam::loss::cross_entropy(&logits, &y)?.item()? as f64))
    };
    let orders: Vec<Vec<usize>> = case["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(usizes)
        .collect();
    let got = permutation_importance_with(&x, score, &orders)?;
    let close = |what: &str, got: &[f64], want: &[f32]| {
        let got: Vec<f32> = got.iter().map(|&v| v as f32).collect();
        fixture::close(what, &got, want, 2e-5, 1e-3)
    };
    close(
        "baseline score",
        &[got.baseline],
        &[case["baseline_score"].as_f64().expect("score") as f32],
    )?;
    let want_each: Vec<f32> = case["importances"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|row| fixture::floats(&serde_json::json!({ "data": row })))
        .collect();
    close("importances", &got.importances.concat(), &want_each)?;
    close(
        "importances_mean",
        &got.mean,
        &fixture::floats(&serde_json::json!({ "data": case["importances_mean"] })),
    )?;
    close(
        "importances_std",
        &got.std,
        &fixture::floats(&serde_json::json!({ "data": case["importances_std"] })),
    )?;
    // The seeded form shuffles too, and repeats itself exactly.
    let a = permutation_importance(&x, score, 3, 7)?;
    let b = permutation_importance(&x, score, 3, 7)?;
    assert_eq!(a, b);
    assert_eq!(a.importances.len(), 6);
    Ok(())
});

conformance!(integrated_gradients_are_complete, |dev| {
    let doc = fixture::read(FILE);
    let models = models(&doc, dev)?;
    let x = fixture::tensor(&doc["cases"][0]["inputs"], DType::F32, dev)?;
    let baseline = Tensor::full(&[1, 6], 0.3, dev)?;
    let worst = |n_steps: usize, rule: Rule| -> lam::Result<(f32, Vec<f32>, Vec<f32>)> {
        let ig = IntegratedGradients::new(&models[0].1)
            .n_steps(n_steps)
            .rule(rule)
            .baseline(&baseline);
        let (a, delta) = ig.attribute_with_delta(&x, &Target::PerSample(vec![2, 0, 1]))?;
        let sums = a.sum(&[1], false)?.to_vec()?;
        let delta = delta.to_vec()?;
        Ok((delta.iter().fold(0.0, |m, d| m.max(d.abs())), sums, delta))
    };
    let (coarse, _, _) = worst(2, Rule::RiemannLeft)?;
    let (fine, sums, delta) = worst(50, Rule::GaussLegendre)?;
    // Σ attributions = f(x) − f(x'), to float precision with 50 nodes.
    assert!(fine < 1e-5, "delta {delta:?} for sums {sums:?}");
    assert!(coarse > 100.0 * fine, "coarse {coarse}, fine {fine}");
    assert!(sums.iter().any(|s| s.abs() > 0.05), "trivial sums {sums:?}");
    Ok(())
});

#[test]
fn gauss_legendre_nodes_are_numpys() {
    // numpy.polynomial.legendre.leggauss(3) and (4).
    let (x, w) = lam_train::explain::gauss_legendre(3);
    let r = 0.6f64.sqrt();
    for (g, e) in x.iter().zip([-r, 0.0, r]) {
        assert!((g - e).abs() < 1e-15, "{x:?}");
    }
    for (g, e) in w.iter().zip([5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0]) {
        assert!((g - e).abs() < 1e-15, "{w:?}");
    }
    let (x, w) = lam_train::explain::gauss_legendre(4);
    assert!((x[3] - 0.861_136_311_594_052_6).abs() < 1e-15, "{x:?}");
    assert!((w[0] - 0.347_854_845_137_453_9).abs() < 1e-15, "{w:?}");
    // Weights of any rule sum to the length of [-1, 1].
    for n in [1, 7, 50, 101] {
        let (_, w) = lam_train::explain::gauss_legendre(n);
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-12, "n = {n}");
    }
}

#[test]
fn attribution_leaves_the_models_gradients_alone() -> lam::Result<()> {
    let dev = Device::cpu();
    let model = mlp(&dev)?;
    let x = Tensor::randn(&[4, 6], &dev)?;
    let before: Vec<Option<Vec<f32>>> = {
        model.forward(&x)?.sum_all()?.backward()?;
        model
            .parameters()
            .iter()
            .map(|p| p.grad().map(|g| g.to_vec().expect("read")))
            .collect()
    };
    Saliency::new(&model).attribute(&x, &Target::Class(1))?;
    IntegratedGradients::new(&model)
        .n_steps(4)
        .attribute(&x, &Target::Class(0))?;
    let after: Vec<Option<Vec<f32>>> = model
        .parameters()
        .iter()
        .map(|p| p.grad().map(|g| g.to_vec().expect("read")))
        .collect();
    assert_eq!(before, after);
    Ok(())
}

#[test]
fn bad_arguments_are_errors() -> lam::Result<()> {
    let dev = Device::cpu();
    let model = mlp(&dev)?;
    let x = Tensor::randn(&[2, 6], &dev)?;
    let message = |r: lam::Result<Tensor>| r.expect_err("an error").to_string();
    let e = message(Saliency::new(&model).attribute(&x, &Target::Output));
    assert!(e.contains("Target::Class"), "{e}");
    let e = message(Saliency::new(&model).attribute(&x, &Target::Class(3)));
    assert!(e.contains("class 3 is out of range"), "{e}");
    let e = message(Saliency::new(&model).attribute(&x, &Target::PerSample(vec![0])));
    assert!(e.contains("1 targets for a batch of 2"), "{e}");
    let e = message(no_grad(|| {
        Saliency::new(&model).attribute(&x, &Target::Class(0))
    }));
    assert!(e.contains("inside no_grad"), "{e}");
    let e =
        message(Saliency::new(&model).attribute(&Tensor::zeros(&[0, 6], &dev)?, &Target::Class(0)));
    assert!(e.contains("empty"), "{e}");
    let e = message(
        IntegratedGradients::new(&model)
            .rule(Rule::RiemannLeft)
            .n_steps(1)
            .attribute(&x, &Target::Class(0)),
    );
    assert!(e.contains("n_steps ≥ 2"), "{e}");
    let e = message(
        IntegratedGradients::new(&model)
            .baseline(&Tensor::zeros(&[5], &dev)?)
            .attribute(&x, &Target::Class(0)),
    );
    assert!(e.contains("baseline that broadcasts"), "{e}");
    let e = message(Occlusion::new(&model, &[7]).attribute(&x, &Target::Class(0)));
    assert!(e.contains("window must be 1..=6"), "{e}");
    let e = message(Occlusion::new(&model, &[2, 2]).attribute(&x, &Target::Class(0)));
    assert!(e.contains("window and strides of 1 sizes"), "{e}");
    let e = message(
        Occlusion::new(&model, &[2])
            .strides(&[3])
            .attribute(&x, &Target::Class(0)),
    );
    assert!(e.contains("no window covers"), "{e}");
    let saliency = Saliency::new(&model);
    let e = message(
        NoiseTunnel::new(&saliency)
            .nt_samples(2)
            .attribute_with_noise(&x, &Target::Class(0), &Tensor::zeros(&[2, 6], &dev)?),
    );
    assert!(e.contains("noise of shape [4, 6]"), "{e}");
    let e = message(
        NoiseTunnel::new(&saliency)
            .stdev(-1.0)
            .attribute(&x, &Target::Class(0)),
    );
    assert!(e.contains("stdev"), "{e}");
    let e = permutation_importance_with(&x, |_| Ok(0.0), &[vec![0, 0]])
        .expect_err("an error")
        .to_string();
    assert!(e.contains("permutation of 0..2"), "{e}");
    Ok(())
}
