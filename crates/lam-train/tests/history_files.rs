//! The history file and the checkpoint agree, whatever a kill leaves.
//!
//! At the end of each epoch the trainer writes `best.safetensors`, then
//! `last.safetensors`, then the history, each atomically (a temporary
//! `NAME.tmp` renamed over `NAME`). A kill therefore leaves every file
//! whole, from this epoch or the one before, perhaps beside a partial
//! `.tmp`. These tests build each such state from the files of an
//! uninterrupted run, resume from it, and check that the history file then
//! holds exactly the checkpoint's epochs and that the run ends as the
//! uninterrupted one did; and they make a real write fail between the
//! checkpoint and the history.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{blobs, cpu, weight_bits, Mlp, Scratch};
use lam::loss::cross_entropy;
use lam::nn::Module;
use lam::optim::{Adam, StepLr};
use lam::prelude::*;
use lam_train::data::DataLoader;
use lam_train::trainer::*;

const EPOCHS: u64 = 3;

/// The files of a checkpoint directory, by name.
type Files = BTreeMap<String, Vec<u8>>;

/// Every parameter's bits, by name.
type Weights = Vec<(String, Vec<u32>)>;

fn files(dir: &Path) -> Files {
    fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("read"))
        })
        .collect()
}

fn config(dir: &Path) -> TrainConfig {
    TrainConfig {
        epochs: EPOCHS,
        seed: 5,
        quiet: true,
        sync_every: 2,
        checkpoint_dir: Some(dir.to_path_buf()),
        resume: true,
        history_path: Some(dir.join("history.jsonl")),
        ..TrainConfig::default()
    }
}

fn loader(dev: &Device) -> Result<DataLoader> {
    Ok(DataLoader::new(blobs(12, 8), 8, dev)?.shuffle(true).seed(2))
}

/// The epochs a history file lists.
fn history_epochs(path: &Path) -> Vec<u64> {
    let text = fs::read_to_string(path).expect("history file");
    History::from_jsonl(&text)
        .expect("a whole history")
        .records
        .iter()
        .map(|r| r.epoch)
        .collect()
}

/// Checks, when the first resumed epoch starts, that the history file
/// holds exactly the epochs before it.
struct HistoryAtStart<'a> {
    path: &'a Path,
    seen: Option<Vec<u64>>,
}

impl Callback for HistoryAtStart<'_> {
    fn on_epoch_start(&mut self, epoch: u64) -> Result<()> {
        if self.seen.is_none() {
            let found = history_epochs(self.path);
            assert_eq!(
                found,
                (1..epoch).collect::<Vec<_>>(),
                "history at the start"
            );
            self.seen = Some(found);
        }
        Ok(())
    }
}

/// Saves a copy of the directory as each epoch starts: the files of the
/// epochs before it.
struct Snapshots<'a> {
    dir: &'a Path,
    taken: Vec<Files>,
}

impl Callback for Snapshots<'_> {
    fn on_epoch_start(&mut self, _epoch: u64) -> Result<()> {
        self.taken.push(files(self.dir));
        Ok(())
    }
}

/// A model with fixed starting weights (not drawn from lam's process-wide
/// generator, which other tests of this binary draw from in parallel).
fn fresh_model(dev: &Device) -> Result<Mlp> {
    let model = Mlp::new(2, 6, 3, dev)?;
    for (k, p) in model.parameters().iter().enumerate() {
        let values: Vec<f32> = (0..p.numel())
            .map(|i| ((i * 37 + k * 11) % 17) as f32 / 20.0 - 0.4)
            .collect();
        p.set_data(&Tensor::from_vec(values, p.dims(), dev)?)?;
    }
    Ok(model)
}

/// Resumes from `dir` with a fresh model and optimizer; returns the report
/// and the final weights.
fn resume(dir: &Path, dev: &Device) -> Result<(FitReport, Weights)> {
    let model = fresh_model(dev)?;
    let mut opt = Adam::new(model.parameters(), 0.3)?;
    let path = dir.join("history.jsonl");
    let mut check = HistoryAtStart {
        path: &path,
        seen: None,
    };
    let report = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config(dir))
        .scheduler(StepLr::new(0.05, 2, 0.5)?)
        .callback(&mut check)
        .fit(&loader(dev)?, None)?;
    Ok((report, weight_bits(&model)))
}

fn losses(r: &FitReport) -> Vec<(u64, f64)> {
    r.history
        .records
        .iter()
        .map(|e| (e.epoch, e.train_loss))
        .collect()
}

#[test]
fn every_state_a_kill_can_leave_resumes_with_history_and_checkpoint_agreeing() -> Result<()> {
    let dev = cpu();
    // The uninterrupted run, with the files after each epoch.
    let reference = Scratch::new("history-reference");
    let model = fresh_model(&dev)?;
    let mut opt = Adam::new(model.parameters(), 0.05)?;
    let mut snaps = Snapshots {
        dir: &reference.0,
        taken: Vec::new(),
    };
    let full = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config(&reference.0))
        .scheduler(StepLr::new(0.05, 2, 0.5)?)
        .callback(&mut snaps)
        .fit(&loader(&dev)?, None)?;
    let full_weights = weight_bits(&model);
    let mut after: Vec<Files> = snaps.taken;
    after.push(files(&reference.0));
    // after[k]: the files once k epochs are done (after[0]: an empty history only).
    assert_eq!(after.len() as u64, EPOCHS + 1);
    assert_eq!(
        history_epochs(&reference.path("history.jsonl")),
        vec![1, 2, 3]
    );

    let file = |k: usize, name: &str| after[k].get(name).cloned();
    let mut states = 0;
    for k in 1..after.len() {
        // (best, last, history) from epoch k or k - 1, in every mix, and
        // the partial temporary file a kill mid-write leaves.
        for (best, last, hist) in [
            (k - 1, k - 1, k - 1),
            (k, k - 1, k - 1),
            (k, k, k - 1),
            (k, k - 1, k),
            (k, k, k),
        ] {
            for partial in [None, Some("best"), Some("last"), Some("history")] {
                let dir = Scratch::new("history-kill");
                let parts = [
                    ("best.safetensors", best),
                    ("last.safetensors", last),
                    ("history.jsonl", hist),
                ];
                for (name, from) in parts {
                    if let Some(bytes) = file(from, name) {
                        fs::write(dir.path(name), bytes).expect("write");
                    }
                }
                if let Some(stem) = partial {
                    let (name, _) = parts
                        .iter()
                        .find(|(n, _)| n.starts_with(stem))
                        .expect("a file");
                    let whole = file(k, name).expect("written at epoch k");
                    fs::write(dir.path(&format!("{name}.tmp")), &whole[..whole.len() / 2])
                        .expect("write");
                }
                let (report, weights) = resume(&dir.0, &dev)?;
                let label = format!(
                    "epoch {k}: best {best}, last {last}, history {hist}, partial {partial:?}"
                );
                let resumed = report.resumed_from.unwrap_or(0);
                assert_eq!(resumed, (last as u64), "{label}");
                assert_eq!(losses(&report), losses(&full), "{label}");
                assert_eq!(weights, full_weights, "{label}");
                assert_eq!(
                    history_epochs(&dir.path("history.jsonl")),
                    vec![1, 2, 3],
                    "{label}"
                );
                states += 1;
            }
        }
    }
    assert_eq!(states, 3 * 5 * 4);
    Ok(())
}

/// Turns the history file into a directory as epoch 2 starts, so that
/// writing the history after epoch 2 fails.
struct BlockHistory<'a>(&'a Path);

impl Callback for BlockHistory<'_> {
    fn on_epoch_start(&mut self, epoch: u64) -> Result<()> {
        if epoch == 2 {
            fs::remove_file(self.0).expect("the history of epoch 1 exists");
            fs::create_dir_all(self.0.join("blocker")).expect("a directory in its place");
        }
        Ok(())
    }
}

#[test]
fn a_failed_history_write_finds_the_checkpoint_saved_and_resume_rewrites_it() -> Result<()> {
    let dev = cpu();
    let dir = Scratch::new("history-fail");
    let history = dir.path("history.jsonl");
    let model = Mlp::new(2, 6, 3, &dev)?;
    let mut opt = Adam::new(model.parameters(), 0.05)?;
    let err = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config(&dir.0))
        .callback(BlockHistory(&history))
        .fit(&loader(&dev)?, None)
        .expect_err("the history cannot be written");
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("history.jsonl")),
        "{err}"
    );
    // The checkpoint of epoch 2 was written before the history failed,
    // and no temporary file is left behind.
    let checkpoint = dir.path("last.safetensors");
    let other = Mlp::new(2, 6, 3, &dev)?;
    let mut other_opt = Adam::new(other.parameters(), 0.05)?;
    let saved = lam::checkpoint::load_training(&checkpoint, &other, &mut other_opt)?;
    assert_eq!(saved.epoch, 2);
    assert_eq!(weight_bits(&other), weight_bits(&model));
    assert!(!dir.path("history.jsonl.tmp").exists());
    // Unblocked, the resumed run first rewrites the history from the checkpoint.
    fs::remove_dir_all(&history).expect("unblock");
    let (report, _) = resume(&dir.0, &dev)?;
    assert_eq!(report.resumed_from, Some(2));
    assert_eq!(history_epochs(&history), vec![1, 2, 3]);
    Ok(())
}

#[test]
fn an_unwritable_history_path_fails_before_the_first_epoch() -> Result<()> {
    let dev = cpu();
    let dir = Scratch::new("history-unwritable");
    fs::create_dir_all(dir.path("history.csv/blocker")).expect("a directory");
    let model = Mlp::new(2, 6, 3, &dev)?;
    let before = weight_bits(&model);
    let mut opt = Adam::new(model.parameters(), 0.05)?;
    let config = TrainConfig {
        history_path: Some(dir.path("history.csv")),
        checkpoint_dir: None,
        ..config(&dir.0)
    };
    let err = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config)
        .fit(&loader(&dev)?, None)
        .expect_err("unwritable");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(weight_bits(&model), before, "no epoch ran");
    Ok(())
}

#[test]
fn history_writes_replace_the_file_whole() -> Result<()> {
    let dir = Scratch::new("history-atomic");
    let path = dir.path("h.csv");
    let record = |epoch| EpochRecord {
        epoch,
        train_loss: 0.5,
        train_accuracy: Some(0.75),
        train_regression: None,
        val_loss: None,
        val_accuracy: None,
        val_regression: None,
        lr: 0.01,
        seconds: 1.0,
        samples_per_sec: 10.0,
    };
    let one = History {
        records: vec![record(1)],
    };
    one.write(&path)?;
    let two = History {
        records: vec![record(1), record(2)],
    };
    two.write(&path)?;
    assert_eq!(fs::read_to_string(&path).expect("file"), two.to_csv());
    assert_eq!(
        fs::read_dir(&dir.0).expect("dir").count(),
        1,
        "a temporary file is left"
    );
    // A write that fails leaves the previous file as it was.
    fs::create_dir(dir.path("h.csv.tmp")).expect("blocker");
    assert!(one.write(&path).is_err());
    assert_eq!(fs::read_to_string(&path).expect("file"), two.to_csv());
    Ok(())
}
