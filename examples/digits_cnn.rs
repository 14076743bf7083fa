//! Handwritten digits with a small convolutional network and augmentation.
//!
//! ```sh
//! cargo run --release --example digits_cnn
//! ```
//!
//! The same stratified, seeded 80/20 split as `digits`, with each image
//! reshaped to `[1, 8, 8]` and scaled to `[0, 1]`. Training batches are
//! augmented on the fly (small rotations, zoom and sub-pixel shifts, seeded
//! per epoch and batch). The network: conv 3×3 (16) → ReLU → conv 3×3 (32)
//! → ReLU → max-pool 2 → dropout → linear 512 → 128 → ReLU → linear 10,
//! trained with Adam and a cosine schedule. It prints the device, progress,
//! test accuracy, macro F1 and confusion matrix, and writes history,
//! checkpoints and plots under `target/lam-out/digits_cnn/` (or
//! `$LAM_OUT_DIR/digits_cnn`). `--quick` runs two epochs, `--epochs N`
//! any number. The device is `Device::auto()`'s choice; `LAM_DEVICE=cpu`
//! forces the CPU.

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::PathBuf;

use lam::loss::cross_entropy;
use lam::nn::{
    Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential,
};
use lam::optim::{Adam, CosineAnnealing};
use lam::prelude::*;
use lam_train::data::split::stratified_split;
use lam_train::data::DataLoader;
use lam_train::preprocess::Augment;
use lam_train::report::{report_classifier, ClassifierReport};
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
        let mut epochs = if args.quick() { 2 } else { 30 };
        if let Some(n) = args.value("--epochs")? {
            epochs = n;
        }
        args.finish()?;
        Ok(Options {
            epochs,
            out_dir: args::out_dir("digits_cnn"),
            quiet: false,
        })
    }
}

/// What a run measured: test accuracy, macro F1, confusion matrix, plot files.
pub type Outcome = ClassifierReport;

fn network(device: &Device) -> lam::Result<Sequential> {
    let same = Conv2dConfig::default().padding(1);
    Ok(Sequential::new()
        .add(Conv2d::with_config(1, 16, 3, same, device)?)
        .add(ReLU)
        .add(Conv2d::with_config(16, 32, 3, same, device)?)
        .add(ReLU)
        .add(MaxPool2d::new(2)?)
        .add(Dropout::new(0.25)?)
        .add(Flatten::new())
        .add(Linear::new(32 * 4 * 4, 128, device)?)
        .add(ReLU)
        .add(Linear::new(128, 10, device)?))
}

/// Trains and evaluates the CNN on `device`.
pub fn run(opts: &Options, device: &Device) -> lam::Result<Outcome> {
    manual_seed(0);
    let data = lam_train::datasets::digits(lam_train::datasets::digits_path())?;
    let labels = data.labels().unwrap_or_default().to_vec();
    let (train_idx, test_idx) = stratified_split(&labels, 0.2, 0)?;
    let images = |idx: &[usize]| -> lam::Result<lam_train::data::TensorDataset> {
        let mut d = data.select(idx)?.reshape_samples(&[1, 8, 8])?;
        d.features_mut().iter_mut().for_each(|p| *p /= 16.0);
        Ok(d)
    };
    let (train, test) = (images(&train_idx)?, images(&test_idx)?);

    let model = network(device)?;
    if !opts.quiet {
        println!("{}", model.summary(&[1, 1, 8, 8])?);
    }
    let mut opt = Adam::new(model.parameters(), 2e-3)?;
    let augment = Augment::new().rotate(10.0).scale(0.9, 1.1).translate(0.08);
    let train_loader = DataLoader::new(train, 32, device)?
        .shuffle(true)
        .seed(0)
        .transform(augment);
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
    let fit = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config)
        .scheduler(CosineAnnealing::new(2e-3, opts.epochs).eta_min(1e-5))
        .fit(&train_loader, Some(&test_loader))?;

    report_classifier(
        &model,
        &test_loader,
        &fit.history,
        &opts.out_dir,
        !opts.quiet,
    )
}

fn main() -> lam::Result<()> {
    let opts = Options::from_args(args::Args::from_env("digits_cnn"))?;
    let device = Device::auto()?;
    println!("device: {device}");
    let started = std::time::Instant::now();
    run(&opts, &device)?;
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
