//! Hyper-parameter search with cross-validation on the handwritten digits.
//!
//! ```sh
//! cargo run --release --example digits_search
//! ```
//!
//! The training split of `digits` (stratified 80/20, seeded; pixels scaled
//! to `[0, 1]`) is cut into 3 stratified folds. A random search draws 8
//! candidates for a 64 → hidden → 10 MLP with dropout — learning rate
//! log-uniform in `[1e-3, 3e-2)`, hidden size, dropout, weight decay and
//! batch size — and scores each on every fold by validation accuracy, as
//! scikit-learn's `RandomizedSearchCV`. It prints the `cv_results_`-style
//! table (best first), refits the best candidate on the whole training
//! split, and prints its test accuracy and the search's time. Under
//! `target/lam-out/digits_search/` (or `$LAM_OUT_DIR/digits_search`):
//! `results.csv`, and one TensorBoard run per candidate with its
//! hyper-parameters and mean score (the HPARAMS tab of `tensorboard --logdir
//! target/lam-out`). `--quick` runs a small search.

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::PathBuf;
use std::time::Instant;

use lam::loss::cross_entropy;
use lam::nn::{Dropout, Linear, Module, ReLU, Sequential};
use lam::optim::Adam;
use lam::prelude::*;
use lam_train::data::split::{stratified_k_fold, stratified_split};
use lam_train::data::{DataLoader, TensorDataset};
use lam_train::search::{random_search, Params, SearchResults, Space, Value};
use lam_train::tensorboard::{HParam, SummaryWriter};
use lam_train::trainer::{evaluate, TrainConfig, Trainer};

/// What to run.
pub struct Options {
    /// Candidates drawn.
    pub candidates: usize,
    /// Cross-validation folds.
    pub folds: usize,
    /// Training epochs of every fit.
    pub epochs: u64,
    /// Where the table and logs go.
    pub out_dir: PathBuf,
    /// No progress output (tests).
    pub quiet: bool,
}

impl Options {
    /// The full search, or a small one with `--quick`.
    pub fn from_args(mut args: args::Args) -> lam::Result<Options> {
        let quick = args.quick();
        args.finish()?;
        Ok(Options {
            candidates: if quick { 2 } else { 8 },
            folds: if quick { 2 } else { 3 },
            epochs: if quick { 1 } else { 15 },
            out_dir: args::out_dir("digits_search"),
            quiet: false,
        })
    }
}

/// What a search found.
pub struct Outcome {
    /// Every candidate, best first.
    pub results: SearchResults,
    /// Test accuracy of the best candidate refit on the training split.
    pub test_accuracy: f64,
    /// Seconds the cross-validated search took (not the refit).
    pub search_seconds: f64,
}

/// The searched space.
pub fn space() -> Space {
    Space::new()
        .log_uniform("lr", 1e-3, 3e-2)
        .values("hidden", [32usize, 64, 128])
        .uniform("dropout", 0.0, 0.5)
        .values("weight_decay", [0.0, 1e-4, 1e-3])
        .values("batch_size", [32usize, 64])
}

/// Trains a fresh MLP with `params` on `train` and returns its accuracy on `val`.
fn fit_and_score(
    params: &Params,
    train: TensorDataset,
    val: TensorDataset,
    epochs: u64,
    device: &Device,
) -> lam::Result<f64> {
    manual_seed(0);
    let hidden = params.usize("hidden")?;
    let model = Sequential::new()
        .add(Linear::new(64, hidden, device)?)
        .add(ReLU)
        .add(Dropout::new(params.f64("dropout")? as f32)?)
        .add(Linear::new(hidden, 10, device)?);
    let mut opt = Adam::new(model.parameters(), params.f64("lr")? as f32)?
        .weight_decay(params.f64("weight_decay")? as f32);
    let train = DataLoader::new(train, params.usize("batch_size")?, device)?
        .shuffle(true)
        .seed(0);
    let val = DataLoader::new(val, 512, device)?;
    Trainer::new(&model, &mut opt, cross_entropy)
        .config(TrainConfig {
            epochs,
            quiet: true,
            ..TrainConfig::default()
        })
        .fit(&train, None)?;
    let scores = evaluate(&model, &val, &cross_entropy)?;
    scores
        .accuracy
        .ok_or_else(|| Error::invalid("digits_search", "a classifier has an accuracy"))
}

/// Searches, refits the best and scores it on the test split.
pub fn run(opts: &Options, device: &Device) -> lam::Result<Outcome> {
    let mut data = lam_train::datasets::digits(lam_train::datasets::digits_path())?;
    data.features_mut()
        .as_f32_mut()?
        .iter_mut()
        .for_each(|p| *p /= 16.0);
    let labels = data.labels().unwrap_or_default().to_vec();
    let (train_idx, test_idx) = stratified_split(&labels, 0.2, 0)?;
    let train = data.select(&train_idx)?;
    let test = data.select(&test_idx)?;
    let folds = stratified_k_fold(train.labels().unwrap_or_default(), opts.folds, 0)?;

    let started = Instant::now();
    let results = random_search(&space(), opts.candidates, 0, &folds, |params, fold| {
        let score = fit_and_score(
            params,
            train.select(&fold.train)?,
            train.select(&fold.validation)?,
            opts.epochs,
            device,
        )?;
        if !opts.quiet {
            println!("  {params}: fold accuracy {score:.4}");
        }
        Ok(score)
    })?;
    let search_seconds = started.elapsed().as_secs_f64();
    let test_accuracy = results
        .refit(|best| fit_and_score(best, train.clone(), test.clone(), opts.epochs, device))?;

    results.write_csv(opts.out_dir.join("results.csv"))?;
    for (i, row) in results.rows.iter().enumerate() {
        let hparams: Vec<(&str, HParam)> = row
            .params
            .iter()
            .map(|(name, v)| {
                let h = match v {
                    Value::Float(x) => HParam::Number(*x),
                    Value::Int(n) => HParam::Number(*n as f64),
                    Value::Text(s) => HParam::Text(s.clone()),
                    Value::Bool(b) => HParam::Bool(*b),
                };
                (name, h)
            })
            .collect();
        let dir = opts
            .out_dir
            .join("tensorboard")
            .join(format!("rank{:02}_{i}", row.rank));
        SummaryWriter::new(dir)?.add_hparams(&hparams, &[("hparam/cv_accuracy", row.mean)])?;
    }
    if !opts.quiet {
        println!("\n{results}");
        println!("best: {}", results.best().params);
        println!("refit on the training split: test accuracy {test_accuracy:.4}");
        println!(
            "search: {} candidates × {} folds × {} epochs in {search_seconds:.1}s",
            results.rows.len(),
            folds.len(),
            opts.epochs
        );
        println!("table and logs in {}", opts.out_dir.display());
    }
    Ok(Outcome {
        results,
        test_accuracy,
        search_seconds,
    })
}

fn main() -> lam::Result<()> {
    let opts = Options::from_args(args::Args::from_env("digits_search"))?;
    let device = Device::auto()?;
    println!("device: {device}");
    run(&opts, &device)?;
    Ok(())
}
