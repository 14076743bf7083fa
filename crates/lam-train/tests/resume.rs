//! Exact resume: a run killed mid-epoch and resumed from its last
//! checkpoint ends with weights bit-for-bit equal to an uninterrupted run.
//!
//! Dropout draws from the trainer's own generator, whose state the
//! checkpoint carries (`generators.rs` resumes while another thread draws
//! random numbers).

mod common;

use common::{blobs, cpu, weight_bits, Scratch};
use lam::loss::cross_entropy;
use lam::nn::{Dropout, Linear, Module, ReLU, Sequential};
use lam::optim::{Adam, Optimizer, StepLr};
use lam::prelude::*;
use lam_train::data::{DataLoader, HostBatch};
use lam_train::trainer::*;

/// Linear → ReLU → Dropout → Linear: dropout makes exact resume depend on the generator's state.
fn dropout_net(dev: &Device) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(2, 12, dev)?)
        .add(ReLU)
        .add(Dropout::new(0.2)?)
        .add(Linear::new(12, 3, dev)?))
}

/// Fails at batch 2 of epoch 3, as a killed process would lose that epoch.
struct Crash;

impl Callback for Crash {
    fn on_batch_end(&mut self, epoch: u64, batch: usize) -> Result<()> {
        if epoch == 3 && batch == 2 {
            return Err(Error::invalid("test", "simulated crash"));
        }
        Ok(())
    }
}

fn resumable_loader(dev: &Device) -> Result<DataLoader> {
    let noise = |b: &mut HostBatch, seed: u64| -> Result<()> {
        for (i, x) in b.x.as_f32_mut()?.iter_mut().enumerate() {
            *x += 0.01 * lam::rng::standard_normal(seed, i as u32);
        }
        Ok(())
    };
    Ok(DataLoader::new(blobs(30, 5), 8, dev)?
        .shuffle(true)
        .seed(11)
        .transform(noise))
}

#[test]
fn resume_after_a_crash_is_bitwise_identical() -> Result<()> {
    let dev = cpu();
    let dir_a = Scratch::new("resume-a");
    let dir_b = Scratch::new("resume-b");
    let config = |dir: &Scratch| TrainConfig {
        epochs: 5,
        seed: 42,
        quiet: true,
        sync_every: 3,
        checkpoint_dir: Some(dir.0.clone()),
        resume: true,
        history_path: Some(dir.path("history.jsonl")),
        ..TrainConfig::default()
    };
    let val = DataLoader::new(blobs(10, 6), 16, &dev)?;

    // Uninterrupted.
    manual_seed(7);
    let model_a = dropout_net(&dev)?;
    let mut opt_a = Adam::new(model_a.parameters(), 0.01)?;
    let full = Trainer::new(&model_a, &mut opt_a, cross_entropy)
        .config(config(&dir_a))
        .scheduler(StepLr::new(0.01, 2, 0.5)?)
        .fit(&resumable_loader(&dev)?, Some(&val))?;
    assert_eq!(full.resumed_from, None);

    // Crashes in epoch 3: epochs 1 and 2 are checkpointed.
    manual_seed(7);
    let model_b = dropout_net(&dev)?;
    let mut opt_b = Adam::new(model_b.parameters(), 0.01)?;
    let err = Trainer::new(&model_b, &mut opt_b, cross_entropy)
        .config(config(&dir_b))
        .scheduler(StepLr::new(0.01, 2, 0.5)?)
        .callback(Crash)
        .fit(&resumable_loader(&dev)?, Some(&val))
        .expect_err("the callback crashes the run");
    assert!(err.to_string().contains("simulated crash"));

    // A new process: fresh (differently initialised) model and optimizer.
    manual_seed(999);
    let model_c = dropout_net(&dev)?;
    let mut opt_c = Adam::new(model_c.parameters(), 0.5)?;
    let resumed = Trainer::new(&model_c, &mut opt_c, cross_entropy)
        .config(config(&dir_b))
        .scheduler(StepLr::new(0.01, 2, 0.5)?)
        .fit(&resumable_loader(&dev)?, Some(&val))?;
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(resumed.history.records.len(), 5);
    assert_eq!(
        weight_bits(&model_c),
        weight_bits(&model_a),
        "weights differ after resume"
    );
    assert_eq!(opt_c.lr(), opt_a.lr());
    let losses = |r: &FitReport| {
        r.history
            .records
            .iter()
            .map(|e| (e.train_loss, e.val_loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&resumed), losses(&full));
    let text = std::fs::read_to_string(dir_b.path("history.jsonl")).expect("file");
    assert_eq!(History::from_jsonl(&text)?.records.len(), 5);

    // Resuming a finished run trains nothing more.
    manual_seed(5);
    let model_d = dropout_net(&dev)?;
    let mut opt_d = Adam::new(model_d.parameters(), 0.01)?;
    let again = Trainer::new(&model_d, &mut opt_d, cross_entropy)
        .config(config(&dir_a))
        .fit(&resumable_loader(&dev)?, Some(&val))?;
    assert_eq!(again.history.records.len(), 5);
    assert_eq!(weight_bits(&model_d), weight_bits(&model_a));
    Ok(())
}
