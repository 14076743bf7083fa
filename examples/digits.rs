//! Handwritten digits with a multilayer perceptron.
//!
//! ```sh
//! cargo run --release --example digits
//! ```
//!
//! The 1,797 8×8 images of `examples/data/digits.csv.gz` (UCI / scikit-learn)
//! are split 80/20, stratified and seeded; pixels are standardized with
//! statistics fitted on the training split (saved as `scaler.json`); a
//! 64 → 128 → 10 ReLU network is trained with Adam. It prints the device,
//! per-epoch progress, the test accuracy, macro F1 and confusion matrix,
//! and writes the history, checkpoints and plots under `target/lam-out/digits/`
//! (or `$LAM_OUT_DIR/digits`), with a TensorBoard log of every epoch and the
//! plots in `tensorboard/` (`tensorboard --logdir target/lam-out`).
//! `--quick` runs two epochs, `--epochs N` any number. The device is
//! `Device::auto()`'s choice; `LAM_DEVICE=cpu` forces the CPU.

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::PathBuf;

use lam::loss::cross_entropy;
use lam::nn::{Linear, Module, ReLU, Sequential};
use lam::optim::Adam;
use lam::prelude::*;
use lam_train::data::split::stratified_split;
use lam_train::data::DataLoader;
use lam_train::preprocess::{Scaler, Standardizer};
use lam_train::report::{report_classifier, ClassifierReport};
use lam_train::tensorboard::{SummaryWriter, TensorBoardLogger};
use lam_train::trainer::{Monitor, TrainConfig, Trainer};

/// What to run.
pub struct Options {
    /// Training epochs.
    pub epochs: u64,
    /// Where the history, checkpoints and plots go.
    pub out_dir: PathBuf,
    /// No progress output (tests).
    pub quiet: bool,
}

impl Options {
    /// The full run, or two epochs with `--quick`; `--epochs N` sets them.
    pub fn from_args(mut args: args::Args) -> lam::Result<Options> {
        let mut epochs = if args.quick() { 2 } else { 40 };
        if let Some(n) = args.value("--epochs")? {
            epochs = n;
        }
        args.finish()?;
        Ok(Options {
            epochs,
            out_dir: args::out_dir("digits"),
            quiet: false,
        })
    }
}

/// What a run measured: test accuracy, macro F1, confusion matrix, plot files.
pub type Outcome = ClassifierReport;

/// Trains and evaluates the MLP on `device`.
pub fn run(opts: &Options, device: &Device) -> lam::Result<Outcome> {
    manual_seed(0);
    let data = lam_train::datasets::digits(lam_train::datasets::digits_path())?;
    let labels = data.labels().unwrap_or_default().to_vec();
    let (train_idx, test_idx) = stratified_split(&labels, 0.2, 0)?;
    let (mut train, mut test) = (data.select(&train_idx)?, data.select(&test_idx)?);

    // Statistics from the training split only, saved beside the model.
    args::create_dir(&opts.out_dir)?;
    let mut scaler = Standardizer::new();
    scaler.fit_slice(train.features().as_f32()?, &[64])?;
    scaler.transform_slice(train.features_mut().as_f32_mut()?)?;
    scaler.transform_slice(test.features_mut().as_f32_mut()?)?;
    scaler.save(&opts.out_dir.join("scaler.json"))?;

    let model = Sequential::new()
        .add(Linear::new(64, 128, device)?)
        .add(ReLU)
        .add(Linear::new(128, 10, device)?);
    if !opts.quiet {
        println!("{}", model.summary(&[1, 64])?);
    }
    let mut opt = Adam::new(model.parameters(), 1e-3)?;
    let train_loader = DataLoader::new(train, 32, device)?.shuffle(true).seed(0);
    let test_loader = DataLoader::new(test, 360, device)?;
    let config = TrainConfig {
        epochs: opts.epochs,
        quiet: opts.quiet,
        // The test split is shown per epoch but never used to pick weights.
        monitor: Monitor::TrainLoss,
        checkpoint_dir: Some(opts.out_dir.join("checkpoints")),
        history_path: Some(opts.out_dir.join("history.csv")),
        ..TrainConfig::default()
    };
    let mut logger =
        TensorBoardLogger::new(SummaryWriter::new(opts.out_dir.join("tensorboard"))?).model(&model);
    let fit = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config)
        .callback(&mut logger)
        .fit(&train_loader, Some(&test_loader))?;

    let outcome = report_classifier(
        &model,
        &test_loader,
        &fit.history,
        &opts.out_dir,
        !opts.quiet,
    )?;
    for file in outcome
        .files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        let name = file
            .file_stem()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        logger
            .writer()
            .add_image_file(&format!("plots/{name}"), file, opts.epochs as i64)?;
    }
    Ok(outcome)
}

fn main() -> lam::Result<()> {
    let opts = Options::from_args(args::Args::from_env("digits"))?;
    let device = Device::auto()?;
    println!("device: {device}");
    let started = std::time::Instant::now();
    run(&opts, &device)?;
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
