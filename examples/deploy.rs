//! Ship the digits model: f32, pruned, int8, weight-shared and ONNX.
//!
//! ```sh
//! cargo run --release --example deploy
//! ```
//!
//! Trains the 64 → 128 → 10 digits MLP (as `digits` does: stratified
//! 80/20 split, standardized pixels, Adam), then makes each deployable
//! variant and prints its size on disk, test accuracy and latency:
//!
//! - **f32**: the trained model (`model.safetensors`);
//! - **pruned**: half of the hidden neurons removed by structured pruning
//!   (L1 norm of their weights), the layers really shrunk to 64 → 64 → 10,
//!   then fine-tuned (`pruned.safetensors`);
//! - **int8**: both layers quantized as `quantize_dynamic` does
//!   (`int8.safetensors`: int8 weights and their scales);
//! - **shared**: weights clustered into 16 shared values (4-bit indices and
//!   a codebook; the size is that compressed form);
//! - **onnx**: `model.onnx`, for ONNX Runtime (accuracy and latency there).
//!
//! Latency is one sample at a time (the app that answers one request) and
//! the whole test split in one call. The lean path at the end loads the int8
//! checkpoint and classifies with the `lam` crate alone
//! (`lam::infer::Predictor`). Files go to `target/lam-out/deploy/` (or
//! `$LAM_OUT_DIR/deploy`). `--quick` trains for two epochs.

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::{Path, PathBuf};
use std::time::Instant;

use lam::checkpoint::save_model;
use lam::infer::Predictor;
use lam::loss::cross_entropy;
use lam::nn::prune::shrink::{kept_channels, shrink_linear};
use lam::nn::prune::{Norm, Pruning};
use lam::nn::quant::sharing::share_weights;
use lam::nn::quant::{save_quantized, QuantizedLinear};
use lam::nn::{Linear, Module};
use lam::optim::Adam;
use lam::prelude::*;
use lam_train::data::split::stratified_split;
use lam_train::data::{DataLoader, TensorDataset};
use lam_train::preprocess::{Scaler, Standardizer};
use lam_train::trainer::{TrainConfig, Trainer};

/// What to run.
pub struct Options {
    pub epochs: u64,
    pub fine_tune_epochs: u64,
    pub out_dir: PathBuf,
    pub quiet: bool,
}

impl Options {
    pub fn from_args(mut args: args::Args) -> lam::Result<Options> {
        let quick = args.quick();
        let mut epochs = if quick { 2 } else { 40 };
        if let Some(n) = args.value("--epochs")? {
            epochs = n;
        }
        args.finish()?;
        Ok(Options {
            epochs,
            fine_tune_epochs: if quick { 1 } else { 10 },
            out_dir: args::out_dir("deploy"),
            quiet: false,
        })
    }
}

/// The digits MLP, as a struct so its layers can be replaced.
#[derive(Module)]
pub struct Mlp<L> {
    fc1: L,
    fc2: L,
}

impl<L: Module> Module for Mlp<L> {
    fn forward(&self, x: &Tensor) -> lam::Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: &'static str,
    pub bytes: u64,
    pub accuracy: Option<f64>,
    /// Microseconds per single-sample call, and for the whole test split.
    pub latency_us: Option<(f64, f64)>,
}

/// Every variant, in the order printed.
pub type Outcome = Vec<Variant>;

pub fn run(opts: &Options, device: &Device) -> lam::Result<Outcome> {
    manual_seed(0);
    let data = lam_train::datasets::digits(lam_train::datasets::digits_path())?;
    let labels = data.labels().unwrap_or_default().to_vec();
    let (train_idx, test_idx) = stratified_split(&labels, 0.2, 0)?;
    let (mut train, mut test) = (data.select(&train_idx)?, data.select(&test_idx)?);
    args::create_dir(&opts.out_dir)?;
    let mut scaler = Standardizer::new();
    scaler.fit_slice(train.features().as_f32()?, &[64])?;
    scaler.transform_slice(train.features_mut().as_f32_mut()?)?;
    scaler.transform_slice(test.features_mut().as_f32_mut()?)?;
    let x_test = test.features_tensor(device)?;
    let y_test: Vec<usize> = test
        .labels()
        .unwrap_or_default()
        .iter()
        .map(|&c| c as usize)
        .collect();

    let model = Mlp {
        fc1: Linear::new(64, 128, device)?,
        fc2: Linear::new(128, 10, device)?,
    };
    fit(&model, &train, &test, opts.epochs, opts, device)?;
    let mut rows = Vec::new();
    let f32_path = opts.out_dir.join("model.safetensors");
    save_model(&model, &f32_path)?;
    rows.push(measure(
        "f32",
        &model,
        file_size(&f32_path),
        &x_test,
        &y_test,
    )?);

    // Structured pruning, on a copy (pruning writes the masks into the
    // weights): half of the hidden neurons by the L1 norm of their
    // weights; the pair is rebuilt without them, then fine-tuned.
    let copy = Mlp {
        fc1: Linear::new(64, 128, device)?,
        fc2: Linear::new(128, 10, device)?,
    };
    lam::checkpoint::load_model(&copy, &f32_path)?;
    let mut pruning = Pruning::new();
    pruning.ln_structured(&copy, "fc1.weight", 0.5, Norm::L1, 0)?;
    let keep = match pruning.mask("fc1.weight") {
        Some(mask) => kept_channels(mask, 0)?,
        None => (0..128).collect(),
    };
    let (fc1, fc2) = shrink_linear(&copy.fc1, &copy.fc2, &keep)?;
    let pruned = Mlp { fc1, fc2 };
    fit(&pruned, &train, &test, opts.fine_tune_epochs, opts, device)?;
    let pruned_path = opts.out_dir.join("pruned.safetensors");
    save_model(&pruned, &pruned_path)?;
    rows.push(measure(
        "pruned",
        &pruned,
        file_size(&pruned_path),
        &x_test,
        &y_test,
    )?);

    // int8, from the f32 model.
    let int8 = Mlp {
        fc1: QuantizedLinear::from_linear(&model.fc1)?,
        fc2: QuantizedLinear::from_linear(&model.fc2)?,
    };
    let int8_path = opts.out_dir.join("int8.safetensors");
    save_quantized(&int8, &int8_path)?;
    rows.push(measure(
        "int8",
        &int8,
        file_size(&int8_path),
        &x_test,
        &y_test,
    )?);

    // Weight sharing, on a copy loaded from the f32 checkpoint.
    let shared = Predictor::load(
        Mlp {
            fc1: Linear::new(64, 128, device)?,
            fc2: Linear::new(128, 10, device)?,
        },
        &f32_path,
    )?;
    let clustered = share_weights(shared.model(), &["fc1.weight", "fc2.weight"], 4)?;
    let bias_bytes = 4 * (128 + 10);
    let shared_bytes = clustered
        .iter()
        .map(|c| c.compressed_bytes())
        .sum::<usize>()
        + bias_bytes;
    rows.push(measure(
        "shared 4-bit",
        shared.model(),
        shared_bytes as u64,
        &x_test,
        &y_test,
    )?);

    let onnx_path = opts.out_dir.join("model.onnx");
    lam::onnx::export(&model, &x_test.narrow(0, 0, 1)?, &onnx_path)?;
    rows.push(Variant {
        name: "onnx",
        bytes: file_size(&onnx_path),
        accuracy: None,
        latency_us: None,
    });

    // The lean path: the int8 checkpoint, the `lam` crate, nothing else.
    let lean = Predictor::load_quantized(
        Mlp {
            fc1: QuantizedLinear::new(64, 128, true, device)?,
            fc2: QuantizedLinear::new(128, 10, true, device)?,
        },
        &int8_path,
    )?
    .batch_size(64);
    let classes = lean.classify(&x_test)?;
    let lean_acc = accuracy(&classes, &y_test);
    if !opts.quiet {
        print_table(&rows);
        println!(
            "lean path (lam::infer::Predictor on int8.safetensors): accuracy {:.2}%",
            100.0 * lean_acc
        );
        println!("files in {}", opts.out_dir.display());
    }
    Ok(rows)
}

fn fit(
    model: &dyn Module,
    train: &TensorDataset,
    test: &TensorDataset,
    epochs: u64,
    opts: &Options,
    device: &Device,
) -> lam::Result<()> {
    let mut opt = Adam::new(model.parameters(), 1e-3)?;
    let train_loader = DataLoader::new(train.clone(), 32, device)?
        .shuffle(true)
        .seed(0);
    let test_loader = DataLoader::new(test.clone(), 360, device)?;
    let config = TrainConfig {
        epochs,
        quiet: opts.quiet,
        ..TrainConfig::default()
    };
    Trainer::new(model, &mut opt, cross_entropy)
        .config(config)
        .fit(&train_loader, Some(&test_loader))?;
    Ok(())
}

fn measure(
    name: &'static str,
    model: &dyn Module,
    bytes: u64,
    x: &Tensor,
    y: &[usize],
) -> lam::Result<Variant> {
    model.eval();
    let classes = Predictor::new(Borrowed(model)).classify(x)?;
    let single = no_grad(|| -> lam::Result<f64> {
        let n = x.dims()[0].min(100);
        model.forward(&x.narrow(0, 0, 1)?)?.to_vec()?;
        let start = Instant::now();
        for i in 0..n {
            model.forward(&x.narrow(0, i, 1)?)?.to_vec()?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
    })?;
    // The whole split in one call: the median of five, after a warm-up.
    let all = no_grad(|| -> lam::Result<f64> {
        model.forward(x)?.to_vec()?;
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            model.forward(x)?.to_vec()?;
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[2])
    })?;
    Ok(Variant {
        name,
        bytes,
        accuracy: Some(accuracy(&classes, y)),
        latency_us: Some((single, all)),
    })
}

/// A borrowed model as a `Module` (the predictor owns what it runs).
struct Borrowed<'a>(&'a dyn Module);

impl lam::nn::Visit for Borrowed<'_> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, lam::nn::Entry<'_>)) {
        self.0.visit(prefix, f)
    }
}

impl Module for Borrowed<'_> {
    fn forward(&self, x: &Tensor) -> lam::Result<Tensor> {
        self.0.forward(x)
    }
}

fn accuracy(pred: &[usize], truth: &[usize]) -> f64 {
    let right = pred.iter().zip(truth).filter(|(a, b)| a == b).count();
    right as f64 / truth.len().max(1) as f64
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn print_table(rows: &[Variant]) {
    println!(
        "{:<13} {:>10} {:>10} {:>16} {:>18}",
        "variant", "size", "accuracy", "1 sample (us)", "test split (us)"
    );
    for r in rows {
        let acc = r
            .accuracy
            .map_or("in ORT".to_string(), |a| format!("{:.2}%", 100.0 * a));
        let (one, all) = r
            .latency_us
            .map_or(("-".to_string(), "-".to_string()), |(a, b)| {
                (format!("{a:.1}"), format!("{b:.0}"))
            });
        println!(
            "{:<13} {:>10} {:>10} {:>16} {:>18}",
            r.name,
            format!("{:.1} KB", r.bytes as f64 / 1024.0),
            acc,
            one,
            all
        );
    }
}

fn main() -> lam::Result<()> {
    let opts = Options::from_args(args::Args::from_env("deploy"))?;
    let device = Device::auto()?;
    println!("device: {device}");
    let started = Instant::now();
    run(&opts, &device)?;
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
