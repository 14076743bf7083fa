//! The trainer's gradient clipping against PyTorch, and the hook between
//! backward and the optimizer step.
//!
//! - `fixtures/trainer/clip.json` (`fixtures/make_trainer_fixtures.py`): an
//!   MLP trained by SGD for two epochs without clipping and with
//!   `clip_grad_norm_` (L2, max, L1) and `clip_grad_value_` in a
//!   hand-written PyTorch loop; lam's `Trainer` must give the same losses,
//!   the same total norms (as its `on_before_step` hook sees them) and the
//!   same weights, on the CPU and the GPU. Gradients holding inf and NaN
//!   are clipped as PyTorch's `error_if_nonfinite=False` does.
//! - The hooks run after backward and clipping, before the step, in the
//!   order added; what they do to the gradients is what the step applies;
//!   noise they draw comes from the trainer's generator, so a run with
//!   gradient noise resumes bit for bit.

mod common;

use std::sync::{Arc, Mutex};

use common::{cpu, devices, fixture};
use lam::nn::{Linear, Module, ReLU, Sequential};
use lam::optim::{clip_grad_norm, clip_grad_value, Sgd};
use lam::prelude::*;
use lam_train::data::{DataLoader, TensorDataset};
use lam_train::trainer::{Callback, EpochRecord, GradClip, Step, TrainConfig, Trainer};
use serde_json::Value;

/// A fixture number: a JSON number or "nan", "inf", "-inf".
fn number(v: &Value) -> f32 {
    match v.as_str() {
        Some("nan") => f32::NAN,
        Some("inf") => f32::INFINITY,
        Some("-inf") => f32::NEG_INFINITY,
        _ => v.as_f64().expect("a number") as f32,
    }
}

fn numbers(v: &Value) -> Vec<f32> {
    v.as_array().expect("an array").iter().map(number).collect()
}

fn tensor(v: &Value, dev: &Device) -> Result<Tensor> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("a shape")
        .iter()
        .map(|d| d.as_u64().expect("a dim") as usize)
        .collect();
    Tensor::from_vec(numbers(&v["data"]), &shape, dev)
}

/// Equal within `tol` (relative above 1), NaN where NaN, infinities exact.
fn same(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= tol * (1.0 + w.abs())
        };
        assert!(
            ok,
            "{name}[{i}]: got {g}, want {w}\ngot  {got:?}\nwant {want:?}"
        );
    }
}

/// The fixture's 3 → 4 → 2 MLP with PyTorch's weights.
fn model(doc: &Value, dev: &Device) -> Result<Sequential> {
    let model = Sequential::new()
        .add(Linear::new(3, 4, dev)?)
        .add(ReLU)
        .add(Linear::new(4, 2, dev)?);
    for (name, p) in model.state_dict() {
        p.set_data(&tensor(&doc["weights"][&name], dev)?)?;
    }
    Ok(model)
}

fn clip_of(v: &Value) -> Option<GradClip> {
    match v["kind"].as_str()? {
        "norm" => Some(GradClip::Norm {
            max_norm: number(&v["max_norm"]),
            norm_type: number(&v["norm_type"]),
        }),
        _ => Some(GradClip::value(number(&v["clip_value"]))),
    }
}

#[test]
fn trainer_clipping_matches_pytorch_on_every_device() -> Result<()> {
    let doc = fixture("trainer/clip.json");
    let runs = doc["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 5, "no clipping, three norms, one value");
    for dev in devices() {
        let x = tensor(&doc["x"], &dev)?;
        let labels: Vec<i32> = doc["y"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|v| v.as_i64().expect("a label") as i32)
            .collect();
        let y = Tensor::from_vec_i32(labels, &[10], &dev)?;
        let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 4, &dev)?;
        for run in runs {
            let clip = clip_of(&run["clip"]);
            let name = format!("{} {clip:?}", dev.name());
            let model = model(&doc, &dev)?;
            let mut opt = Sgd::new(model.parameters(), 0.5)?;
            let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
            let log = seen.clone();
            let config = TrainConfig {
                epochs: 2,
                quiet: true,
                sync_every: 1,
                clip_grad: clip,
                ..Default::default()
            };
            Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
                .config(config)
                .before_step(move |step: &Step| {
                    let mut log = log.lock().expect("log");
                    log.0.push(step.loss.item()?);
                    if let Some(norm) = step.grad_norm {
                        log.1.push(norm.item()?);
                    }
                    Ok(())
                })
                .fit(&loader, None)?;
            let (losses, norms) = seen.lock().expect("log").clone();
            same(
                &format!("{name} losses"),
                &losses,
                &numbers(&run["losses"]),
                1e-4,
            );
            same(
                &format!("{name} norms"),
                &norms,
                &numbers(&run["norms"]),
                1e-4,
            );
            for (key, p) in model.state_dict() {
                let want = numbers(&run["state"][&key]["data"]);
                same(&format!("{name} {key}"), &p.to_vec()?, &want, 1e-4);
            }
        }
    }
    Ok(())
}

#[test]
fn non_finite_gradients_clip_as_pytorch_without_an_error() -> Result<()> {
    let doc = fixture("trainer/clip.json");
    let cases = doc["nonfinite"].as_array().expect("cases");
    assert_eq!(cases.len(), 9);
    for dev in devices() {
        for case in cases {
            let name = format!("{} {}", dev.name(), case["name"]);
            let grads: Vec<Tensor> = case["grads"]
                .as_array()
                .expect("grads")
                .iter()
                .map(|g| tensor(g, &dev))
                .collect::<Result<_>>()?;
            let params: Vec<Tensor> = grads
                .iter()
                .map(|g| Tensor::zeros(g.dims(), &dev)?.requires_grad_())
                .collect::<Result<_>>()?;
            for (p, g) in params.iter().zip(&grads) {
                p.set_grad(Some(g.clone()))?;
            }
            match clip_of(&case["clip"]) {
                Some(GradClip::Norm {
                    max_norm,
                    norm_type,
                }) => {
                    let total = clip_grad_norm(&params, max_norm, norm_type)?.item()?;
                    same(
                        &format!("{name} total"),
                        &[total],
                        &[number(&case["total"])],
                        1e-5,
                    );
                }
                Some(GradClip::Value(v)) => clip_grad_value(&params, v)?,
                None => unreachable!("every case clips"),
            }
            for (i, p) in params.iter().enumerate() {
                let got = p.grad().expect("a gradient").to_vec()?;
                let want = numbers(&case["clipped"][i]["data"]);
                same(&format!("{name} grad {i}"), &got, &want, 1e-5);
            }
        }
    }
    Ok(())
}

/// Records what the trainer calls, with the parameters' first value.
struct Recorder {
    name: &'static str,
    events: Arc<Mutex<Vec<String>>>,
    /// The model's first parameter (it shares the model's storage).
    weight: Tensor,
}

impl Recorder {
    fn first_weight(&self) -> Result<f32> {
        Ok(self.weight.to_vec()?[0])
    }
    fn push(&self, event: String) {
        self.events.lock().expect("events").push(event);
    }
}

impl Callback for Recorder {
    fn on_epoch_start(&mut self, epoch: u64) -> Result<()> {
        self.push(format!("{} start {epoch}", self.name));
        Ok(())
    }
    fn on_before_step(&mut self, step: &Step<'_>) -> Result<()> {
        // Backward has run and clipping too: every gradient is within 0.01.
        let mut largest = 0.0f32;
        for p in step.model.parameters() {
            let g = p.grad().expect("backward filled the gradients");
            largest = largest.max(g.abs()?.max_all()?.item()?);
        }
        assert!(largest <= 0.01 + 1e-7, "clipped before the hook: {largest}");
        self.push(format!(
            "{} before {}.{} w={}",
            self.name,
            step.epoch,
            step.batch,
            self.first_weight()?
        ));
        Ok(())
    }
    fn on_batch_end(&mut self, epoch: u64, batch: usize) -> Result<()> {
        self.push(format!(
            "{} end {epoch}.{batch} w={}",
            self.name,
            self.first_weight()?
        ));
        Ok(())
    }
    fn on_epoch_end(&mut self, record: &EpochRecord) -> Result<lam_train::trainer::Control> {
        self.push(format!("{} epoch end {}", self.name, record.epoch));
        Ok(lam_train::trainer::Control::Continue)
    }
}

fn small_task(dev: &Device) -> Result<(Sequential, DataLoader)> {
    let doc = fixture("trainer/clip.json");
    let x = tensor(&doc["x"], dev)?;
    let y = Tensor::from_vec_i32(vec![0, 1, 1, 0, 1, 0, 0, 1, 1, 0], &[10], dev)?;
    let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 5, dev)?;
    Ok((model(&doc, dev)?, loader))
}

#[test]
fn hooks_run_after_backward_and_clipping_before_the_step_in_the_order_added() -> Result<()> {
    let dev = cpu();
    let (model, loader) = small_task(&dev)?;
    let mut opt = Sgd::new(model.parameters(), 0.5)?;
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorder = |name| Recorder {
        name,
        events: events.clone(),
        weight: model.parameters()[0].clone(),
    };
    let closure_log = events.clone();
    let config = TrainConfig {
        epochs: 1,
        quiet: true,
        clip_grad: Some(GradClip::value(0.01)),
        ..Default::default()
    };
    Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
        .config(config)
        .callback(recorder("a"))
        .before_step(move |step: &Step| {
            let log = format!("closure before {}.{}", step.epoch, step.batch);
            closure_log.lock().expect("events").push(log);
            Ok(())
        })
        .callback(recorder("b"))
        .fit(&loader, None)?;
    let events = events.lock().expect("events").clone();
    let names: Vec<String> = events
        .iter()
        .map(|e| e.split(" w=").next().unwrap_or_default().to_string())
        .collect();
    let expected = [
        "a start 1",
        "b start 1",
        "a before 1.0",
        "closure before 1.0",
        "b before 1.0",
        "a end 1.0",
        "b end 1.0",
        "a before 1.1",
        "closure before 1.1",
        "b before 1.1",
        "a end 1.1",
        "b end 1.1",
        "a epoch end 1",
        "b epoch end 1",
    ];
    assert_eq!(names, expected);
    // The step comes after the hooks: the weight a hook sees is the one
    // the previous batch left, and it has moved by the batch's end.
    let weight = |i: usize| -> f32 {
        events[i]
            .split(" w=")
            .nth(1)
            .expect("a weight")
            .parse()
            .expect("f32")
    };
    assert_eq!(weight(2), weight(4));
    assert_ne!(weight(4), weight(5));
    assert_eq!(weight(5), weight(7));
    Ok(())
}

#[test]
fn what_a_hook_does_to_the_gradients_is_what_the_step_applies() -> Result<()> {
    let dev = cpu();
    let (model, loader) = small_task(&dev)?;
    let before: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|p| p.to_vec())
        .collect::<Result<_>>()?;
    let mut opt = Sgd::new(model.parameters(), 0.5)?;
    let config = TrainConfig {
        epochs: 2,
        quiet: true,
        ..Default::default()
    };
    Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
        .config(config.clone())
        .before_step(|step: &Step| {
            for p in step.model.parameters() {
                p.set_grad(Some(Tensor::zeros(p.dims(), &p.device())?))?;
            }
            Ok(())
        })
        .fit(&loader, None)?;
    let after: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|p| p.to_vec())
        .collect::<Result<_>>()?;
    assert_eq!(before, after, "zeroed gradients move nothing");

    // A hook's error ends the run with that error.
    let e = Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
        .config(config)
        .before_step(|_: &Step| Err(Error::invalid("hook", "gradient too wild")))
        .fit(&loader, None)
        .expect_err("the hook failed");
    assert!(e.to_string().contains("gradient too wild"), "{e}");
    Ok(())
}

#[test]
fn bad_clip_settings_are_errors_before_training() -> Result<()> {
    let dev = cpu();
    let (model, loader) = small_task(&dev)?;
    let mut opt = Sgd::new(model.parameters(), 0.5)?;
    for (clip, says) in [
        (GradClip::norm(-1.0), "max_norm"),
        (GradClip::norm(f32::NAN), "max_norm"),
        (
            GradClip::Norm {
                max_norm: 1.0,
                norm_type: 0.0,
            },
            "norm_type",
        ),
        (GradClip::value(-0.5), "clip_value"),
    ] {
        let config = TrainConfig {
            epochs: 1,
            quiet: true,
            clip_grad: Some(clip),
            ..Default::default()
        };
        let e = Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
            .config(config)
            .before_step(|_: &Step| panic!("no step runs"))
            .fit(&loader, None)
            .expect_err("a bad setting");
        assert!(e.to_string().contains(says), "{clip:?}: {e}");
    }
    Ok(())
}

/// Fails at batch 1 of epoch 3, as a killed process would lose that epoch.
struct Crash;

impl Callback for Crash {
    fn on_batch_end(&mut self, epoch: u64, batch: usize) -> Result<()> {
        if epoch == 3 && batch == 1 {
            return Err(Error::invalid("test", "simulated crash"));
        }
        Ok(())
    }
}

#[test]
fn gradient_noise_drawn_in_a_hook_resumes_exactly() -> Result<()> {
    use common::{blobs, weight_bits, Scratch};
    let dev = cpu();
    let loader = DataLoader::new(blobs(24, 4), 8, &dev)?.shuffle(true);
    let (dir_a, dir_b) = (Scratch::new("noise-a"), Scratch::new("noise-b"));
    let config = |dir: &Scratch| TrainConfig {
        epochs: 4,
        seed: 3,
        quiet: true,
        checkpoint_dir: Some(dir.0.clone()),
        resume: true,
        clip_grad: Some(GradClip::norm(0.5)),
        ..Default::default()
    };
    // The hook draws from the current generator: the trainer's, saved in
    // its checkpoints.
    let noise = |step: &Step| {
        for p in step.model.parameters() {
            let g = p.grad().expect("a gradient");
            let jitter = (Tensor::randn(g.dims(), &p.device())? * 0.01)?;
            p.set_grad(Some((&g + &jitter)?))?;
        }
        Ok(())
    };
    let run = |dir: &Scratch, init: u64, crash: bool| -> Result<Sequential> {
        // The weights from a generator of this thread's own: other tests
        // running at the same time draw from the process's default one.
        let model =
            lam::rng::with_generator(&lam::rng::Generator::new(init), || -> Result<Sequential> {
                Ok(Sequential::new()
                    .add(Linear::new(2, 6, &dev)?)
                    .add(ReLU)
                    .add(Linear::new(6, 3, &dev)?))
            })?;
        let mut opt = Sgd::new(model.parameters(), 0.1)?;
        let mut trainer = Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
            .config(config(dir))
            .before_step(noise);
        if crash {
            trainer = trainer.callback(Crash);
        }
        let fitted = trainer.fit(&loader, None);
        drop(trainer);
        match (fitted, crash) {
            (Err(e), true) => assert!(e.to_string().contains("simulated crash"), "{e}"),
            (fitted, _) => {
                fitted?;
            }
        }
        // Something else draws from the default generator meanwhile.
        Tensor::randn(&[100], &dev)?;
        Ok(model)
    };
    let full = run(&dir_a, 7, false)?;
    run(&dir_b, 7, true)?;
    let resumed = run(&dir_b, 999, false)?;
    assert_eq!(weight_bits(&resumed), weight_bits(&full));
    Ok(())
}

#[test]
fn mixed_precision_trains_as_f32_does_and_is_plain_f32_where_f16_is_not_native() -> Result<()> {
    for dev in devices() {
        // The losses the hooks saw, and the scaler's (enabled, scale).
        type Run = (Vec<f32>, Option<(bool, f32)>);
        let losses = |mixed: bool| -> Result<Run> {
            let (model, loader) = small_task(&dev)?;
            let mut opt = Sgd::new(model.parameters(), 0.5)?;
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            let config = TrainConfig {
                epochs: 4,
                quiet: true,
                sync_every: 1,
                ..Default::default()
            };
            let mut trainer = Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
                .config(config)
                .mixed_precision(mixed)
                .before_step(move |step: &Step| {
                    // The hooks see the unscaled loss.
                    log.lock().expect("log").push(step.loss.item()?);
                    Ok(())
                });
            trainer.fit(&loader, None)?;
            let scaling = trainer
                .grad_scaler()
                .map(|s| (s.is_enabled(), s.get_scale()));
            let losses = seen.lock().expect("log").clone();
            Ok((losses, scaling))
        };
        let (full, none) = losses(false)?;
        let (mixed, scaling) = losses(true)?;
        assert_eq!(none, None);
        let native = dev.backend().native_f16();
        assert_eq!(scaling.map(|(on, _)| on), Some(native), "{}", dev.name());
        assert_eq!(full.len(), 8);
        if native {
            // PyTorch's initial scale, 2^16, overflows these F16 gradients
            // twice: the first two steps are skipped, the scale halved each
            // time; from then on training follows f32's, two steps behind.
            assert_eq!(scaling.map(|(_, scale)| scale), Some(16384.0));
            for (a, b) in mixed[2..].iter().zip(&full) {
                assert!(
                    (a - b).abs() <= 0.01 + 0.02 * b,
                    "{}: {mixed:?} vs {full:?}",
                    dev.name()
                );
            }
        } else {
            assert_eq!(mixed, full, "{}: autocast is a no-op here", dev.name());
        }
    }
    Ok(())
}
