//! The Trainer: it learns, stops early and restores the best weights,
//! writes checkpoints and history, resumes bit-for-bit after a crash, and
//! stops with a clear error when the loss diverges.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use common::{blobs, cpu, weight_bits, Mlp, Scratch};
use lam::loss::cross_entropy;
use lam::nn::Module;
use lam::optim::Adam;
use lam::prelude::*;
use lam_train::data::{DataLoader, TensorDataset};
use lam_train::trainer::*;

fn quiet(epochs: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        quiet: true,
        ..TrainConfig::default()
    }
}

#[test]
fn a_small_mlp_learns_three_blobs() -> Result<()> {
    let dev = cpu();
    manual_seed(1);
    let model = Mlp::new(2, 16, 3, &dev)?;
    let mut opt = Adam::new(model.parameters(), 0.03)?;
    let train = DataLoader::new(blobs(60, 1), 16, &dev)?
        .shuffle(true)
        .seed(1);
    let val = DataLoader::new(blobs(20, 2), 32, &dev)?;
    // Not quiet: the epoch lines go to stderr (no bar: it is not a terminal).
    let config = TrainConfig {
        epochs: 25,
        quiet: false,
        ..TrainConfig::default()
    };
    let report = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config)
        .fit(&train, Some(&val))?;
    let h = &report.history.records;
    assert_eq!(h.len(), 25);
    assert!(
        h[24].train_loss < h[0].train_loss / 5.0,
        "loss {} → {}",
        h[0].train_loss,
        h[24].train_loss
    );
    assert!(h[24].val_accuracy.expect("classes") > 0.95, "{:?}", h[24]);
    let scores = evaluate(&model, &val, &cross_entropy)?;
    assert!(scores.loss < 0.3 && scores.accuracy.expect("acc") > 0.95);
    assert_eq!(
        (scores.task, scores.regression),
        (Some(Task::MultiClass), None)
    );
    assert_eq!(report.task, Some(Task::MultiClass));
    let p = predict(&model, &val)?;
    assert_eq!(p.task, Task::MultiClass);
    assert_eq!(p.y_true, blobs(20, 2).labels().expect("labels"));
    assert_eq!((p.n_classes, p.probs.len()), (3, 180));
    assert_eq!((p.width, p.outputs.len(), p.targets.len()), (3, 180, 0));
    Ok(())
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_it() -> Result<()> {
    let dev = cpu();
    let dir = Scratch::new("corrupt");
    std::fs::write(dir.path("last.safetensors"), b"not a checkpoint").expect("file");
    let model = Mlp::new(2, 4, 3, &dev)?;
    let mut opt = Adam::new(model.parameters(), 0.01)?;
    let config = TrainConfig {
        checkpoint_dir: Some(dir.0.clone()),
        resume: true,
        ..quiet(2)
    };
    let before = weight_bits(&model);
    let err = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config)
        .fit(&DataLoader::new(blobs(5, 1), 4, &dev)?, None)
        .expect_err("corrupt file");
    assert!(err.to_string().contains("last.safetensors"), "{err}");
    assert_eq!(
        weight_bits(&model),
        before,
        "nothing changes on a failed load"
    );
    Ok(())
}

/// Reports a loss that grows 10× every epoch after the first, so epoch 1 is
/// the best whatever the weights do; remembers the weights after epoch 1.
struct Inflate<'a> {
    scale: &'a Scale,
    model: &'a Mlp,
    after_first: Option<Vec<(String, Vec<u32>)>>,
}

/// An `f32` shared by the loss and a callback (both must be `Send`).
struct Scale(AtomicU32);

impl Scale {
    fn new(v: f32) -> Scale {
        Scale(AtomicU32::new(v.to_bits()))
    }
    fn set(&self, v: f32) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Callback for Inflate<'_> {
    fn on_epoch_start(&mut self, epoch: u64) -> Result<()> {
        self.scale.set(10f32.powi(epoch as i32 - 1));
        Ok(())
    }

    fn on_epoch_end(&mut self, record: &EpochRecord) -> Result<Control> {
        if record.epoch == 1 {
            self.after_first = Some(weight_bits(self.model));
        }
        Ok(Control::Continue)
    }
}

#[test]
fn early_stopping_restores_the_best_weights_and_writes_files() -> Result<()> {
    let dev = cpu();
    let dir = Scratch::new("early");
    manual_seed(3);
    let model = Mlp::new(2, 8, 3, &dev)?;
    let mut opt = Adam::new(model.parameters(), 0.05)?;
    let scale = Scale::new(1.0);
    let loss = |out: &Tensor, y: &Tensor| cross_entropy(out, y)?.mul_scalar(scale.get());
    let config = TrainConfig {
        epochs: 20,
        monitor: Monitor::TrainLoss,
        early_stopping: Some(EarlyStopping::new(2)),
        checkpoint_dir: Some(dir.0.clone()),
        history_path: Some(dir.path("history.csv")),
        ..quiet(20)
    };
    let mut inflate = Inflate {
        scale: &scale,
        model: &model,
        after_first: None,
    };
    let report = {
        let mut trainer = Trainer::new(&model, &mut opt, loss)
            .config(config)
            .callback(&mut inflate);
        let r = trainer.fit(&DataLoader::new(blobs(10, 3), 8, &dev)?, None)?;
        assert!(trainer.best_checkpoint().is_some_and(|p| p.exists()));
        assert!(trainer.last_checkpoint().is_some_and(|p| p.exists()));
        r
    };
    assert!(report.stopped_early);
    assert_eq!(
        report.history.records.len(),
        3,
        "best at 1, then patience 2"
    );
    assert_eq!(report.best_epoch, Some(1));
    assert_eq!(
        Some(weight_bits(&model)),
        inflate.after_first,
        "best weights restored"
    );
    let csv = std::fs::read_to_string(dir.path("history.csv")).expect("file");
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.starts_with("epoch,train_loss,train_accuracy,val_loss"));
    // The best checkpoint holds the best weights.
    let other = Mlp::new(2, 8, 3, &dev)?;
    lam::checkpoint::load_model(&other, dir.path("best.safetensors"))?;
    assert_eq!(Some(weight_bits(&other)), inflate.after_first);
    Ok(())
}

#[test]
fn a_diverging_loss_stops_with_a_clear_error() -> Result<()> {
    let dev = cpu();
    let mut features = vec![0.5f32; 40];
    features[13] = f32::NAN;
    let data = TensorDataset::from_classes(features, &[2], vec![0; 20])?;
    let model = Mlp::new(2, 4, 3, &dev)?;
    let mut opt = Adam::new(model.parameters(), 0.01)?;
    let err = Trainer::new(&model, &mut opt, cross_entropy)
        .config(TrainConfig {
            sync_every: 1,
            ..quiet(3)
        })
        .fit(&DataLoader::new(data, 4, &dev)?, None)
        .expect_err("NaN input");
    let msg = err.to_string();
    assert!(
        msg.contains("diverged") && msg.contains("epoch 1") && msg.contains("batches 1..=1"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn bad_configurations_are_errors() -> Result<()> {
    let dev = cpu();
    let model = Mlp::new(2, 4, 3, &dev)?;
    let mut opt = Adam::new(model.parameters(), 0.01)?;
    let empty = TensorDataset::from_classes(vec![], &[2], vec![])?;
    let zero_sync = TrainConfig {
        sync_every: 0,
        ..quiet(1)
    };
    let r = Trainer::new(&model, &mut opt, cross_entropy)
        .config(zero_sync)
        .fit(&DataLoader::new(blobs(2, 0), 2, &dev)?, None);
    assert!(r.is_err());
    let r = Trainer::new(&model, &mut opt, cross_entropy)
        .config(quiet(1))
        .fit(&DataLoader::new(empty, 2, &dev)?, None);
    assert!(matches!(r, Err(Error::Empty { .. })));
    Ok(())
}

#[test]
fn history_round_trips_through_json_lines() -> Result<()> {
    let h = History {
        records: vec![EpochRecord {
            epoch: 1,
            train_loss: 0.1 + 0.2,
            train_accuracy: Some(0.5),
            train_regression: None,
            val_loss: None,
            val_accuracy: None,
            val_regression: Some(lam_train::metrics::RegressionScores {
                mse: 0.25,
                mae: 0.1 + 0.2,
                r2: -1.5,
            }),
            lr: 1e-3,
            seconds: 1.25,
            // serde_json's default float parser reads this one an ulp off.
            samples_per_sec: 18699.376551098678,
        }],
    };
    assert_eq!(History::from_jsonl(&h.to_jsonl())?, h);
    assert!(History::from_jsonl("{\"epoch\": 1}\n").is_err());
    // A line written before the regression columns existed.
    let old = "{\"epoch\":1,\"train_loss\":0.5,\"train_accuracy\":0.75,\"val_loss\":null,\
               \"val_accuracy\":null,\"lr\":0.001,\"seconds\":1.0,\"samples_per_sec\":10.0}\n";
    let r = &History::from_jsonl(old)?.records[0];
    assert_eq!((r.train_accuracy, r.train_regression), (Some(0.75), None));
    let csv = h.to_csv();
    assert!(
        csv.lines()
            .next()
            .expect("header")
            .ends_with("val_mse,val_mae,val_r2")
            && csv
                .lines()
                .nth(1)
                .expect("row")
                .ends_with(",0.25,0.30000000000000004,-1.5"),
        "{csv}"
    );
    Ok(())
}
