//! Handwritten digits, data parallel: the `digits` example's MLP trained by
//! several replicas at once with lam-dist.
//!
//! ```sh
//! # One process (a world of one): the same program, unchanged.
//! cargo run --release --example ddp_digits
//! # Two processes on this machine, over MPI:
//! cargo build --release --example ddp_digits --features lam-dist/mpi
//! mpirun -np 2 target/release/examples/ddp_digits
//! # Two replicas on two devices of this process, reducing through host memory:
//! LAM_DIST_DEVICES=gpu:0,gpu:1 cargo run --release --example ddp_digits
//! ```
//!
//! Each replica trains on its `DistributedSampler` share of the training
//! split (32 images per replica per step, so the global batch grows with
//! the replicas), gradients averaged by all-reduce. Every replica prints
//! where it runs; rank 0 alone shows progress and writes the history and
//! checkpoints under `target/lam-out/ddp_digits/` (or
//! `$LAM_OUT_DIR/ddp_digits`). The test accuracy is over every replica's
//! share of the test split. `--quick` runs two epochs, `--epochs N` any
//! number, `--sync-bn` adds a SyncBatchNorm after the hidden layer;
//! `LAM_DEVICE`/`LAM_DIST_DEVICES` choose devices.

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::PathBuf;

use lam::loss::cross_entropy;
use lam::nn::{BatchNorm1d, Linear, Module, ReLU, Sequential};
use lam::optim::Adam;
use lam_dist::{launch, DdpConfig, DistributedDataParallel, LaunchConfig, Replica, SyncBatchNorm};
use lam_train::data::split::stratified_split;
use lam_train::data::DataLoader;
use lam_train::preprocess::{Scaler, Standardizer};
use lam_train::trainer::{FitReport, Monitor, TrainConfig, Trainer};

/// What to run.
#[derive(Clone)]
pub struct Options {
    /// Training epochs.
    pub epochs: u64,
    /// Where rank 0 writes the history and checkpoints.
    pub out_dir: PathBuf,
    /// No progress output (tests).
    pub quiet: bool,
    /// A SyncBatchNorm after the hidden layer.
    pub sync_bn: bool,
}

impl Options {
    /// The full run, or two epochs with `--quick`; `--epochs N`, `--sync-bn`.
    pub fn from_args(mut args: args::Args) -> lam::Result<Options> {
        let mut epochs = if args.quick() { 2 } else { 40 };
        if let Some(n) = args.value("--epochs")? {
            epochs = n;
        }
        let sync_bn = args.flag("--sync-bn");
        args.finish()?;
        Ok(Options {
            epochs,
            out_dir: args::out_dir("ddp_digits"),
            quiet: false,
            sync_bn,
        })
    }
}

/// One replica's run: its fit report (the same on every replica).
pub fn run(opts: &Options, replica: &Replica) -> lam::Result<FitReport> {
    let (device, comm) = (replica.device(), replica.comm());
    let data = lam_train::datasets::digits(lam_train::datasets::digits_path())?;
    let labels = data.labels().unwrap_or_default().to_vec();
    // The same seeded split and statistics on every replica.
    let (train_idx, test_idx) = stratified_split(&labels, 0.2, 0)?;
    let (mut train, mut test) = (data.select(&train_idx)?, data.select(&test_idx)?);
    let mut scaler = Standardizer::new();
    scaler.fit_slice(train.features().as_f32()?, &[64])?;
    scaler.transform_slice(train.features_mut().as_f32_mut()?)?;
    scaler.transform_slice(test.features_mut().as_f32_mut()?)?;
    if replica.is_main() {
        args::create_dir(&opts.out_dir)?;
        scaler.save(&opts.out_dir.join("scaler.json"))?;
    }

    // Built the same on every replica; DistributedDataParallel copies rank
    // 0's weights to the others anyway.
    let mut model = Sequential::new().add(Linear::new(64, 128, device)?);
    if opts.sync_bn {
        model = model.add(SyncBatchNorm::new(BatchNorm1d::new(128, device)?, comm));
    }
    let model = model.add(ReLU).add(Linear::new(128, 10, device)?);
    let model = DistributedDataParallel::new(model, comm, DdpConfig::default())?;
    let mut opt = Adam::new(model.parameters(), 1e-3)?;
    let train_loader = DataLoader::new(train, 32, device)?
        .shuffle(true)
        .seed(0)
        .distributed(replica.sampler()?);
    let test_loader = DataLoader::new(test, 360, device)?.distributed(replica.sampler()?);
    let config = TrainConfig {
        epochs: opts.epochs,
        quiet: opts.quiet,
        monitor: Monitor::TrainLoss,
        checkpoint_dir: Some(opts.out_dir.join("checkpoints")),
        history_path: Some(opts.out_dir.join("history.csv")),
        ..TrainConfig::default()
    };
    let report = Trainer::new(&model, &mut opt, cross_entropy)
        .config(config)
        .distributed(comm.clone())
        .fit(&train_loader, Some(&test_loader));
    report
}

fn main() -> lam::Result<()> {
    let opts = Options::from_args(args::Args::from_env("ddp_digits"))?;
    let started = std::time::Instant::now();
    let reports = launch(&LaunchConfig::from_env()?, |replica| {
        println!(
            "rank {} of {} ({}): {}",
            replica.rank(),
            replica.world_size(),
            replica.comm().kind(),
            replica.device()
        );
        let report = run(&opts, &replica)?;
        Ok(replica.is_main().then_some(report))
    })?;
    if let Some(Some(report)) = reports.first() {
        if let Some(last) = report.history.records.last() {
            println!(
                "test accuracy {:.3} (loss {:.4}) after {} epochs",
                last.val_accuracy.unwrap_or(f64::NAN),
                last.val_loss.unwrap_or(f64::NAN),
                last.epoch
            );
        }
        println!("done in {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
