//! Which measurements tell wines apart: permutation feature importance of
//! a small classifier on tabular data.
//!
//! ```sh
//! cargo run --release --example wine_importance
//! ```
//!
//! The 178 wines of `examples/data/wine.csv` (UCI, scikit-learn's
//! `load_wine`: 13 chemical measurements, three cultivars) are split 75/25,
//! stratified and seeded, standardized with the training split's
//! statistics, and a 13 → 32 → 3 ReLU network is trained with Adam. Then
//! each feature of the test split is shuffled 30 times (as scikit-learn's
//! `permutation_importance`), and the drop in test accuracy is its
//! importance: the program prints them, largest first, with their
//! standard deviations, and draws them as bars with error bars in
//! `importances.png` / `importances.svg` under `target/lam-out/wine_importance/`
//! (or `$LAM_OUT_DIR/wine_importance`). `--quick` runs a short version.

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
use lam_train::explain::{permutation_importance, Importances};
use lam_train::metrics::{accuracy, predicted_classes};
use lam_train::plot::plot_importances;
use lam_train::preprocess::{Scaler, Standardizer};
use lam_train::trainer::{TrainConfig, Trainer};

/// What to run.
pub struct Options {
    /// Training epochs.
    pub epochs: u64,
    /// Shuffles of each feature.
    pub n_repeats: usize,
    /// Where the pictures go.
    pub out_dir: PathBuf,
    /// No progress output (tests).
    pub quiet: bool,
}

impl Options {
    /// The full run, or a short one with `--quick`.
    pub fn from_args(mut args: args::Args) -> lam::Result<Options> {
        let quick = args.quick();
        args.finish()?;
        Ok(Options {
            epochs: if quick { 5 } else { 30 },
            n_repeats: if quick { 3 } else { 30 },
            out_dir: args::out_dir("wine_importance"),
            quiet: false,
        })
    }
}

/// What a run measured.
pub struct Outcome {
    /// Test accuracy of the trained model.
    pub accuracy: f64,
    /// The feature names, in column order.
    pub names: Vec<String>,
    /// Their permutation importances.
    pub importances: Importances,
    /// The pictures written.
    pub files: Vec<PathBuf>,
}

/// Trains the classifier on `device` and measures its feature importances.
pub fn run(opts: &Options, device: &Device) -> lam::Result<Outcome> {
    manual_seed(0);
    let (data, names) = lam_train::datasets::wine(lam_train::datasets::wine_path())?;
    let labels = data.labels().unwrap_or_default().to_vec();
    let (train_idx, test_idx) = stratified_split(&labels, 0.25, 0)?;
    let (mut train, mut test) = (data.select(&train_idx)?, data.select(&test_idx)?);
    let mut scaler = Standardizer::new();
    scaler.fit_slice(train.features().as_f32()?, &[13])?;
    scaler.transform_slice(train.features_mut().as_f32_mut()?)?;
    scaler.transform_slice(test.features_mut().as_f32_mut()?)?;

    let model = Sequential::new()
        .add(Linear::new(13, 32, device)?)
        .add(ReLU)
        .add(Linear::new(32, 3, device)?);
    let mut opt = Adam::new(model.parameters(), 1e-2)?.weight_decay(1e-3);
    let loader = DataLoader::new(train, 16, device)?.shuffle(true).seed(0);
    Trainer::new(&model, &mut opt, cross_entropy)
        .config(TrainConfig {
            epochs: opts.epochs,
            quiet: true,
            ..TrainConfig::default()
        })
        .fit(&loader, None)?;
    model.eval();

    let x = test.features_tensor(device)?;
    let y_test = test.labels().unwrap_or_default().to_vec();
    let score = |x: &Tensor| -> lam::Result<f64> {
        let predicted = predicted_classes(&no_grad(|| model.forward(x))?)?;
        accuracy(&y_test, &predicted)
    };
    let test_accuracy = score(&x)?;
    let importances = permutation_importance(&x, score, opts.n_repeats, 0)?;
    if !opts.quiet {
        println!("test accuracy: {test_accuracy:.4}");
        println!(
            "permutation importance (drop in test accuracy, {} shuffles):",
            opts.n_repeats
        );
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| importances.mean[b].total_cmp(&importances.mean[a]));
        for i in order {
            println!(
                "  {:<30} {:>7.4} ± {:.4}",
                names[i], importances.mean[i], importances.std[i]
            );
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut files = Vec::new();
    for ext in ["png", "svg"] {
        let path = opts.out_dir.join(format!("importances.{ext}"));
        plot_importances(
            &path,
            "Permutation importance (test accuracy drop)",
            &refs,
            &importances.mean,
            &importances.std,
        )?;
        files.push(path);
    }
    if !opts.quiet {
        println!("pictures in {}", opts.out_dir.display());
    }
    Ok(Outcome {
        accuracy: test_accuracy,
        names,
        importances,
        files,
    })
}

fn main() -> lam::Result<()> {
    let opts = Options::from_args(args::Args::from_env("wine_importance"))?;
    let device = Device::auto()?;
    println!("device: {device}");
    run(&opts, &device)?;
    Ok(())
}
