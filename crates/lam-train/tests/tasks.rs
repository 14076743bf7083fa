//! Binary and regression models in the toolkit: the Trainer's metrics and
//! early stopping, `predict` and `report_classifier` read one-logit and
//! value outputs as what they are. Each test runs on the CPU and on a GPU.

mod common;

use common::{devices, weight_bits, Mlp, Scratch};
use lam::loss::{binary_cross_entropy, binary_cross_entropy_with_logits, mse_loss};
use lam::nn::{Entry, Linear, Module, Sequential, Sigmoid, Visit};
use lam::prelude::*;
use lam_train::data::{DataLoader, HostTargets, TensorDataset};
use lam_train::ensemble::{Ensemble, Voting};
use lam_train::metrics::{accuracy, r2_score_columns, roc_auc};
use lam_train::report::{report_classifier, report_regressor};
use lam_train::trainer::*;

/// Two Gaussian blobs, class 1 around (2, 0) and class 0 around (−2, 0),
/// σ = 0.8: about 99.4% of samples are on their side of x = 0.
fn two_blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<i32>) {
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as i32;
        let centre = if label == 1 { 2.0 } else { -2.0 };
        x.push(centre + 0.8 * lam::rng::standard_normal(seed, 2 * i as u32));
        x.push(0.8 * lam::rng::standard_normal(seed, 2 * i as u32 + 1));
        y.push(label);
    }
    (x, y)
}

/// Binary data with float targets `[N, 1]` (what BCEWithLogits takes as is).
fn binary_values(n: usize, seed: u64) -> Result<TensorDataset> {
    let (x, y) = two_blobs(n, seed);
    TensorDataset::from_values(x, &[2], y.iter().map(|&c| c as f32).collect(), 1)
}

/// Binary data with class targets `I32 [N]`.
fn binary_classes(n: usize, seed: u64) -> Result<TensorDataset> {
    let (x, y) = two_blobs(n, seed);
    TensorDataset::from_classes(x, &[2], y)
}

fn quiet(epochs: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        quiet: true,
        ..TrainConfig::default()
    }
}

/// The fraction of samples whose output logit is on the side of 0 their
/// label says, computed on the host from the raw outputs of the loader's
/// batches (the batches the trainer evaluates, so results agree exactly).
fn host_binary_accuracy(model: &dyn Module, loader: &DataLoader) -> Result<f64> {
    model.eval();
    let (mut hits, mut total) = (0, 0);
    for batch in loader.epoch(0) {
        let (x, y) = batch?;
        let out = no_grad(|| model.forward(&x))?.to_vec()?;
        let y = y.to_vec()?;
        hits += out
            .iter()
            .zip(&y)
            .filter(|(&o, &t)| (o > 0.0) == (t == 1.0))
            .count();
        total += y.len();
    }
    Ok(hits as f64 / total as f64)
}

/// Whether each sample of binary `data` is of class 1.
fn binary_truth(data: &TensorDataset) -> Vec<bool> {
    match data.targets() {
        HostTargets::Classes(c) => c.iter().map(|&c| c == 1).collect(),
        HostTargets::Values { data, .. } => data.iter().map(|&v| v == 1.0).collect(),
        HostTargets::ClassArrays { .. } => panic!("binary data has one target per sample"),
    }
}

/// A model whose `[N, 1]` output is squeezed to `[N]`.
struct Squeezed<M>(M);

impl<M: Module> Module for Squeezed<M> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)?.squeeze(1)
    }
}

impl<M: Visit> Visit for Squeezed<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.0.visit(prefix, f)
    }
}

/// Regression data: `y = 3 x0 − x1 + 0.5` (one column) or, with `two`,
/// also `x0 + x1` (two columns), on the blobs' inputs.
fn regression_data(n: usize, seed: u64, two: bool) -> Result<TensorDataset> {
    let (x, _) = two_blobs(n, seed);
    let mut y = Vec::new();
    for p in x.chunks(2) {
        y.push(3.0 * p[0] - p[1] + 0.5);
        if two {
            y.push(p[0] + p[1]);
        }
    }
    TensorDataset::from_values(x, &[2], y, if two { 2 } else { 1 })
}

#[test]
fn a_binary_model_reports_its_accuracy() -> Result<()> {
    for dev in devices() {
        manual_seed(3);
        let model = Mlp::new(2, 8, 1, &dev)?;
        let mut opt = lam::optim::Adam::new(model.parameters(), 0.05)?;
        let train = DataLoader::new(binary_values(200, 1)?, 32, &dev)?
            .shuffle(true)
            .seed(2);
        let val_data = binary_values(400, 2)?;
        let val = DataLoader::new(val_data.clone(), 100, &dev)?;
        let report = Trainer::new(&model, &mut opt, binary_cross_entropy_with_logits)
            .config(quiet(10))
            .fit(&train, Some(&val))?;
        assert_eq!(report.task, Some(Task::Binary), "{dev}");
        let last = report.history.last().expect("10 epochs");
        let want = host_binary_accuracy(&model, &val)?;
        assert!(want > 0.97, "{dev}: the model learns ({want})");
        let got = last.val_accuracy.expect("a binary model has an accuracy");
        assert!(
            (got - want).abs() < 1e-9,
            "{dev}: reported {got}, actual {want}"
        );
        assert!(last.train_accuracy.expect("train accuracy") > 0.95, "{dev}");
        assert_eq!((last.train_regression, last.val_regression), (None, None));
        let scores = evaluate(&model, &val, &binary_cross_entropy_with_logits)?;
        assert_eq!(scores.accuracy, Some(got), "{dev}");
        assert!((scores.loss - last.val_loss.expect("val")).abs() < 1e-6);
        let p = predict(&model, &val)?;
        assert_eq!((p.task, p.n_classes, p.width), (Task::Binary, 2, 1));
        assert_eq!(accuracy(&p.y_true, &p.y_pred)?, got, "{dev}");
        let positive = p.positive_probabilities().expect("binary");
        for ((row, &o), &q) in p.probs.chunks(2).zip(&p.outputs).zip(&positive) {
            let sigmoid = 1.0 / (1.0 + (-o).exp());
            assert!((q - sigmoid).abs() < 1e-6 && (row[0] + row[1] - 1.0).abs() < 1e-6);
        }
    }
    Ok(())
}

#[test]
fn a_binary_model_with_one_dim_outputs_and_class_targets() -> Result<()> {
    for dev in devices() {
        manual_seed(13);
        let model = Squeezed(Mlp::new(2, 8, 1, &dev)?);
        let mut opt = lam::optim::Adam::new(model.parameters(), 0.05)?;
        let train = DataLoader::new(binary_classes(200, 11)?, 32, &dev)?;
        let val_data = binary_classes(300, 12)?;
        let val = DataLoader::new(val_data.clone(), 64, &dev)?;
        // `[N]` logits against `I32 [N]` classes, as a PyTorch user writes it.
        let loss = |out: &Tensor, y: &Tensor| {
            binary_cross_entropy_with_logits(out, &y.to_dtype(DType::F32)?)
        };
        let report = Trainer::new(&model, &mut opt, loss)
            .config(quiet(8))
            .fit(&train, Some(&val))?;
        let want = host_binary_accuracy(&model, &val)?;
        let got = report.history.last().and_then(|r| r.val_accuracy);
        assert!(want > 0.97, "{dev}: {want}");
        assert_eq!(got, Some(want), "{dev}");
        assert_eq!(predict(&model, &val)?.task, Task::Binary);
    }
    Ok(())
}

#[test]
fn a_model_ending_in_a_sigmoid_is_read_as_probabilities() -> Result<()> {
    for dev in devices() {
        manual_seed(14);
        let model = Sequential::new()
            .add(Linear::new(2, 8, &dev)?)
            .add(lam::nn::ReLU)
            .add(Linear::new(8, 1, &dev)?)
            .add(Sigmoid);
        let mut opt = lam::optim::Adam::new(model.parameters(), 0.05)?;
        let train = DataLoader::new(binary_values(200, 15)?, 32, &dev)?;
        let val_data = binary_values(300, 16)?;
        let val = DataLoader::new(val_data.clone(), 64, &dev)?;
        let report = Trainer::new(&model, &mut opt, binary_cross_entropy)
            .config(quiet(8))
            .fit(&train, Some(&val))?;
        assert_eq!(report.task, Some(Task::BinaryProbabilities), "{dev}");
        let p = predict(&model, &val)?;
        assert_eq!(p.task, Task::BinaryProbabilities);
        // The outputs are the probabilities; class 1 above 0.5.
        assert_eq!(p.positive_probabilities().as_ref(), Some(&p.outputs));
        let truth = binary_truth(&val_data);
        let hits = p
            .outputs
            .iter()
            .zip(&truth)
            .filter(|(&q, &t)| (q > 0.5) == t)
            .count();
        let want = hits as f64 / truth.len() as f64;
        assert!(want > 0.97, "{dev}: {want}");
        assert_eq!(
            report.history.last().and_then(|r| r.val_accuracy),
            Some(want)
        );
        // Stated as logits, the same outputs are all positive (σ > 0.5).
        let as_logits = evaluate_task(&model, &val, &binary_cross_entropy, Task::Binary)?;
        assert!((as_logits.accuracy.expect("binary") - 0.5).abs() < 1e-12);
    }
    Ok(())
}

#[test]
fn early_stopping_on_validation_accuracy_works_for_binary() -> Result<()> {
    for dev in devices() {
        manual_seed(4);
        let model = Mlp::new(2, 8, 1, &dev)?;
        let mut opt = lam::optim::Adam::new(model.parameters(), 0.05)?;
        let train = DataLoader::new(binary_classes(200, 3)?, 32, &dev)?
            .shuffle(true)
            .seed(3);
        let val_data = binary_classes(400, 4)?;
        let val = DataLoader::new(val_data.clone(), 100, &dev)?;
        let loss = |out: &Tensor, y: &Tensor| {
            binary_cross_entropy_with_logits(out, &y.to_dtype(DType::F32)?.unsqueeze(1)?)
        };
        let config = TrainConfig {
            monitor: Monitor::ValAccuracy,
            early_stopping: Some(EarlyStopping::new(3)),
            ..quiet(30)
        };
        let report = Trainer::new(&model, &mut opt, loss)
            .config(config)
            .fit(&train, Some(&val))?;
        assert!(report.stopped_early, "{dev}: stops before 30 epochs");
        let accs: Vec<f64> = report
            .history
            .records
            .iter()
            .map(|r| r.val_accuracy.expect("accuracy"))
            .collect();
        let best = accs.iter().copied().fold(f64::MIN, f64::max);
        assert!(best > 0.97, "{dev}: {accs:?}");
        assert_eq!(report.best_value, Some(best), "{dev}: {accs:?}");
        let epoch = report.best_epoch.expect("a best epoch") as usize;
        assert_eq!(accs[epoch - 1], best);
        // The restored weights are the best epoch's.
        let restored = host_binary_accuracy(&model, &val)?;
        assert!(
            (restored - best).abs() < 1e-9,
            "{dev}: {restored} vs {best}"
        );
    }
    Ok(())
}

#[test]
fn predict_on_a_regression_loader_returns_values() -> Result<()> {
    for dev in devices() {
        let (x, _) = two_blobs(64, 5);
        let y: Vec<f32> = x.chunks(2).map(|p| 3.0 * p[0] - p[1] + 0.5).collect();
        let data = TensorDataset::from_values(x, &[2], y, 1)?;
        manual_seed(5);
        let model = Linear::new(2, 1, &dev)?;
        let mut opt = lam::optim::Adam::new(model.parameters(), 0.1)?;
        let loader = DataLoader::new(data.clone(), 16, &dev)?;
        Trainer::new(&model, &mut opt, mse_loss)
            .config(quiet(3))
            .fit(&loader, None)?;
        let p = predict(&model, &loader)?;
        assert_eq!((p.task, p.width, p.n_classes), (Task::Regression, 1, 0));
        assert!(p.y_true.is_empty() && p.y_pred.is_empty() && p.probs.is_empty());
        let direct = no_grad(|| model.forward(&data.features_tensor(&dev)?))?.to_vec()?;
        for (got, want) in p.outputs.iter().zip(&direct) {
            assert!(
                (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{dev}: {got} vs {want}"
            );
        }
        let HostTargets::Values { data: y, .. } = data.targets() else {
            panic!("values")
        };
        assert_eq!(&p.targets, y);
    }
    Ok(())
}

#[test]
fn a_regression_model_reports_mse_mae_and_r2() -> Result<()> {
    for dev in devices() {
        for two in [false, true] {
            let width = if two { 2 } else { 1 };
            manual_seed(21);
            let model = Mlp::new(2, 16, width, &dev)?;
            let mut opt = lam::optim::Adam::new(model.parameters(), 0.03)?;
            let train = DataLoader::new(regression_data(256, 22, two)?, 32, &dev)?
                .shuffle(true)
                .seed(5);
            let val = DataLoader::new(regression_data(200, 23, two)?, 64, &dev)?;
            let config = TrainConfig {
                monitor: Monitor::ValR2,
                early_stopping: Some(EarlyStopping::new(5)),
                ..quiet(25)
            };
            let report = Trainer::new(&model, &mut opt, mse_loss)
                .config(config)
                .fit(&train, Some(&val))?;
            assert_eq!(report.task, Some(Task::Regression), "{dev}");
            let best = report.best_epoch.expect("a best epoch") as usize;
            let last = &report.history.records[best - 1];
            assert_eq!(last.train_accuracy, None);
            assert_eq!(last.val_accuracy, None);
            let reg = last.val_regression.expect("regression scores");
            assert_eq!(report.best_value, Some(reg.r2));
            let val_loss = last.val_loss.expect("val loss");
            assert!(
                (reg.mse - val_loss).abs() <= 1e-5 * val_loss.max(1e-3),
                "{reg:?} vs {val_loss}"
            );
            let p = predict(&model, &val)?;
            assert_eq!((p.task, p.width), (Task::Regression, width));
            let host = p.regression_scores()?;
            assert!((host.r2 - r2_score_columns(&p.targets, &p.outputs, width)?).abs() < 1e-12);
            // The restored best weights give the best epoch's scores.
            assert!(
                (host.r2 - reg.r2).abs() < 1e-4,
                "{dev}: {host:?} vs {reg:?}"
            );
            assert!(
                (host.mae - reg.mae).abs() < 1e-4 * (1.0 + reg.mae),
                "{host:?} vs {reg:?}"
            );
            assert!(host.r2 > 0.9, "{dev}: the model learns ({host:?})");
            let dir = Scratch::new("regression-report");
            let r = report_regressor(&model, &val, &report.history, &dir.0, false)?;
            assert_eq!((r.mse, r.mae, r.r2), (host.mse, host.mae, host.r2));
            assert!(dir.path("r2.png").exists() && dir.path("loss.svg").exists());
            let err = report_classifier(&model, &val, &report.history, &dir.0, false)
                .expect_err("not a classifier");
            assert!(err.to_string().contains("report_regressor"), "{err}");
        }
    }
    Ok(())
}

#[test]
fn monitoring_accuracy_of_a_regression_model_is_an_error() -> Result<()> {
    let dev = Device::cpu();
    let model = Linear::new(2, 1, &dev)?;
    let loader = DataLoader::new(regression_data(32, 31, false)?, 16, &dev)?;
    let before = weight_bits(&model);
    // Stated: refused before any training.
    let mut opt = lam::optim::Adam::new(model.parameters(), 0.1)?;
    let config = TrainConfig {
        task: Task::Regression,
        monitor: Monitor::ValAccuracy,
        early_stopping: Some(EarlyStopping::new(2)),
        ..quiet(3)
    };
    let err = Trainer::new(&model, &mut opt, mse_loss)
        .config(config)
        .fit(&loader, None)
        .expect_err("no accuracy for regression");
    assert!(
        err.to_string().contains("ValAccuracy") && err.to_string().contains("regression"),
        "{err}"
    );
    assert_eq!(weight_bits(&model), before);
    // Decided by Auto: refused after the first epoch, before its files.
    let dir = Scratch::new("monitor");
    let config = TrainConfig {
        monitor: Monitor::ValAccuracy,
        checkpoint_dir: Some(dir.0.clone()),
        ..quiet(3)
    };
    let err = Trainer::new(&model, &mut opt, mse_loss)
        .config(config)
        .fit(&loader, Some(&loader))
        .expect_err("no accuracy for regression");
    assert!(err.to_string().contains("regression model"), "{err}");
    assert!(!dir.path("last.safetensors").exists());
    // And the other way round: R² of a classifier.
    let model = Mlp::new(2, 4, 1, &dev)?;
    let mut opt = lam::optim::Adam::new(model.parameters(), 0.1)?;
    let config = TrainConfig {
        monitor: Monitor::ValR2,
        ..quiet(2)
    };
    let err = Trainer::new(&model, &mut opt, binary_cross_entropy_with_logits)
        .config(config)
        .fit(&DataLoader::new(binary_values(32, 32)?, 16, &dev)?, None)
        .expect_err("no R² for a classifier");
    assert!(err.to_string().contains("classifier"), "{err}");
    Ok(())
}

#[test]
fn stated_tasks_that_do_not_fit_are_errors() -> Result<()> {
    let dev = Device::cpu();
    let model = Linear::new(2, 1, &dev)?;
    let loader = DataLoader::new(regression_data(32, 41, false)?, 16, &dev)?;
    // Binary with targets other than 0 and 1.
    let e = evaluate_task(&model, &loader, &mse_loss, Task::Binary).expect_err("targets");
    assert!(e.to_string().contains("0 or 1"), "{e}");
    let e = predict_task(&model, &loader, Task::Binary).expect_err("targets");
    assert!(e.to_string().contains("0 or 1"), "{e}");
    // Multi-class with one output per sample.
    let e = predict_task(&model, &loader, Task::MultiClass).expect_err("shape");
    assert!(e.to_string().contains("C ≥ 2"), "{e}");
    // Regression with fewer outputs than targets.
    let two = DataLoader::new(regression_data(32, 42, true)?, 16, &dev)?;
    let e = predict_task(&model, &two, Task::Regression).expect_err("shape");
    assert!(e.to_string().contains("as many targets as outputs"), "{e}");
    // Stated regression on 0/1 targets stays regression.
    let binary = DataLoader::new(binary_values(32, 43)?, 16, &dev)?;
    let s = evaluate_task(&model, &binary, &mse_loss, Task::Regression)?;
    assert_eq!((s.task, s.accuracy), (Some(Task::Regression), None));
    assert!(s.regression.is_some());
    Ok(())
}

#[test]
fn a_binary_run_resumes_with_its_history_and_best_value() -> Result<()> {
    let dev = Device::cpu();
    let dir = Scratch::new("binary-resume");
    let config = |epochs| TrainConfig {
        checkpoint_dir: Some(dir.0.clone()),
        resume: true,
        monitor: Monitor::ValAccuracy,
        ..quiet(epochs)
    };
    let train = DataLoader::new(binary_values(96, 51)?, 32, &dev)?;
    let val = DataLoader::new(binary_values(64, 52)?, 64, &dev)?;
    let model = Mlp::new(2, 8, 1, &dev)?;
    let mut opt = lam::optim::Adam::new(model.parameters(), 0.05)?;
    let first = Trainer::new(&model, &mut opt, binary_cross_entropy_with_logits)
        .config(config(2))
        .fit(&train, Some(&val))?;
    let other = Mlp::new(2, 8, 1, &dev)?;
    let mut opt = lam::optim::Adam::new(other.parameters(), 0.05)?;
    let resumed = Trainer::new(&other, &mut opt, binary_cross_entropy_with_logits)
        .config(config(4))
        .fit(&train, Some(&val))?;
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(resumed.history.records[..2], first.history.records[..]);
    let accs: Vec<f64> = resumed
        .history
        .records
        .iter()
        .map(|r| r.val_accuracy.expect("binary accuracy"))
        .collect();
    assert_eq!(
        resumed.best_value,
        Some(accs.iter().copied().fold(f64::MIN, f64::max))
    );
    Ok(())
}

#[test]
fn an_ensemble_of_binary_models_votes_as_binary() -> Result<()> {
    let dev = Device::cpu();
    let data = binary_values(200, 61)?;
    let x = data.features_tensor(&dev)?;
    let members: Vec<Box<dyn Module>> = (0..3)
        .map(|i| -> Result<Box<dyn Module>> {
            manual_seed(70 + i);
            let m = Mlp::new(2, 8, 1, &dev)?;
            let mut opt = lam::optim::Adam::new(m.parameters(), 0.05)?;
            Trainer::new(&m, &mut opt, binary_cross_entropy_with_logits)
                .config(quiet(5))
                .fit(
                    &DataLoader::new(binary_values(120, 62 + i)?, 32, &dev)?,
                    None,
                )?;
            Ok(Box::new(m))
        })
        .collect::<Result<_>>()?;
    let truth: Vec<i32> = binary_truth(&data).into_iter().map(i32::from).collect();
    let mut ens = Ensemble::new(members, Voting::Soft)?;
    let p1: Vec<f32> = ens
        .predict_proba(&x)?
        .to_vec()?
        .chunks(2)
        .map(|r| r[1])
        .collect();
    assert!(roc_auc(&binary_truth(&data), &p1)? > 0.99);
    for voting in [Voting::Soft, Voting::Hard] {
        ens = ens.with_voting(voting);
        let proba = ens.predict_proba(&x)?;
        assert_eq!(proba.dims(), &[200, 2]);
        let classes = ens.predict(&x)?;
        assert!(accuracy(&truth, &classes)? > 0.97, "{voting:?}");
        // forward: one logit per sample, positive exactly for class 1.
        let logits = no_grad(|| ens.forward(&x))?;
        assert_eq!(logits.dims(), &[200, 1]);
        let from_logits: Vec<i32> = logits
            .to_vec()?
            .iter()
            .map(|&z| i32::from(z > 0.0))
            .collect();
        assert_eq!(from_logits, classes, "{voting:?}");
    }
    Ok(())
}
