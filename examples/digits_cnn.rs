//! Handwritten digits with a small convolutional network and augmentation.
//!
//! ```sh
//! cargo run --release --example digits_cnn [-- --explain]
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
//! `$LAM_OUT_DIR/digits_cnn`), with a TensorBoard log of every epoch
//! (losses, accuracies, learning rate, weight and gradient histograms) and
//! the plots in `tensorboard/` (`tensorboard --logdir target/lam-out`).
//!
//! `--explain` also draws `explain.png` / `explain.svg`: for the first test
//! image of a few classes, the Integrated Gradients of the predicted class
//! (from a black image, 32 Gauss–Legendre steps) as a heat map beside the
//! digit — red pixels pushed the prediction up, blue ones down.
//!
//! `--quick` runs two epochs, `--epochs N` any number. The device is
//! `Device::auto()`'s choice; `LAM_DEVICE=cpu` forces the CPU.

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::{Path, PathBuf};

use lam::loss::cross_entropy;
use lam::nn::{
    Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential,
};
use lam::optim::{Adam, CosineAnnealing};
use lam::prelude::*;
use lam_train::data::split::stratified_split;
use lam_train::data::{DataLoader, TensorDataset};
use lam_train::explain::{Attribution, IntegratedGradients, Target};
use lam_train::metrics::predicted_classes;
use lam_train::plot::{plot_heatmaps, Explained};
use lam_train::preprocess::Augment;
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
    /// Draw attribution heat maps of a few test digits (`--explain`).
    pub explain: bool,
}

impl Options {
    /// The full run, or two epochs with `--quick`; `--epochs N` sets them;
    /// `--explain` draws attribution heat maps.
    pub fn from_args(mut args: args::Args) -> lam::Result<Options> {
        let mut epochs = if args.quick() { 2 } else { 30 };
        if let Some(n) = args.value("--epochs")? {
            epochs = n;
        }
        let explain = args.flag("--explain");
        args.finish()?;
        Ok(Options {
            epochs,
            out_dir: args::out_dir("digits_cnn"),
            quiet: false,
            explain,
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
        d.features_mut()
            .as_f32_mut()?
            .iter_mut()
            .for_each(|p| *p /= 16.0);
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
    let test_loader = DataLoader::new(test.clone(), 360, device)?;
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
        .scheduler(CosineAnnealing::new(2e-3, opts.epochs).eta_min(1e-5))
        .callback(&mut logger)
        .fit(&train_loader, Some(&test_loader))?;

    let mut outcome = report_classifier(
        &model,
        &test_loader,
        &fit.history,
        &opts.out_dir,
        !opts.quiet,
    )?;
    if opts.explain {
        outcome
            .files
            .extend(explain(&model, &test, device, &opts.out_dir)?);
    }
    let step = opts.epochs as i64;
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
            .add_image_file(&format!("plots/{name}"), file, step)?;
    }
    Ok(outcome)
}

/// Integrated Gradients of the predicted class for the first test image of
/// a few classes, drawn as heat maps (`explain.png`, `explain.svg`).
pub fn explain(
    model: &dyn Module,
    test: &TensorDataset,
    device: &Device,
    out_dir: &Path,
) -> lam::Result<Vec<PathBuf>> {
    model.eval();
    let labels = test.labels().unwrap_or_default();
    let picked: Vec<usize> = [0, 3, 4, 7, 8]
        .iter()
        .filter_map(|&c| labels.iter().position(|&l| l == c))
        .collect();
    let x = test.select(&picked)?.features_tensor(device)?;
    let predicted = predicted_classes(&no_grad(|| model.forward(&x))?)?;
    let target = Target::PerSample(predicted.iter().map(|&p| p as usize).collect());
    let attributions = IntegratedGradients::new(model)
        .n_steps(32)
        .attribute(&x, &target)?
        .to_vec()?;
    let images = x.to_vec()?;
    let captions: Vec<String> = picked
        .iter()
        .zip(&predicted)
        .map(|(&i, p)| format!("digit {}, predicted {p}", labels[i]))
        .collect();
    let samples: Vec<Explained<'_>> = captions
        .iter()
        .enumerate()
        .map(|(k, label)| Explained {
            label,
            image: &images[k * 64..(k + 1) * 64],
            attribution: &attributions[k * 64..(k + 1) * 64],
        })
        .collect();
    let mut written = Vec::new();
    for ext in ["png", "svg"] {
        let path = out_dir.join(format!("explain.{ext}"));
        plot_heatmaps(&path, 8, 8, &samples)?;
        written.push(path);
    }
    Ok(written)
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
