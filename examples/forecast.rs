//! Time-series forecasting: next year's sunspot number from the last 20.
//!
//! ```sh
//! cargo run --release --example forecast
//! cargo run --release --example forecast -- --quick   # a tiny run
//! ```
//!
//! The yearly sunspot numbers 1700–2008 (`examples/data/sunspots.csv`) are
//! split in time: the last 20% of the years are the test years, never seen in
//! training. Values are standardised with the training years' mean and
//! standard deviation; each input is a window of `window` consecutive years
//! and its target the year after. An LSTM reads the window and a linear head
//! turns its last hidden state into the forecast (Adam, MSE).
//!
//! The test RMSE, in sunspot units, is printed next to two baselines: the
//! naive forecast ("same as last year") and a linear autoregression on the
//! same window, fitted by least squares in closed form (normal equations).
//! Prediction and truth over the test years are plotted to
//! `target/lam-out/forecast/forecast.svg` (or `$LAM_OUT_DIR/forecast`).

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::{Path, PathBuf};
use std::time::Instant;

use lam::loss::mse_loss;
use lam::nn::{Linear, RnnConfig, LSTM};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;
use lam::rng::Generator;

/// The data, the model and the training schedule.
#[derive(Debug, Clone)]
pub struct Config {
    /// The CSV of `YEAR,SUNACTIVITY`.
    pub data: PathBuf,
    /// Years in each input window.
    pub window: usize,
    /// Fraction of the years (the last ones) held out for testing.
    pub test_fraction: f64,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per minibatch.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Seeds the model and the shuffling.
    pub seed: u64,
    /// Where the plot goes.
    pub out_dir: PathBuf,
}

impl Config {
    /// The full run.
    pub fn full() -> Config {
        Config {
            data: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sunspots.csv"),
            window: 20,
            test_fraction: 0.2,
            hidden: 32,
            epochs: 50,
            batch: 32,
            lr: 0.005,
            seed: 0,
            out_dir: args::out_dir("forecast"),
        }
    }

    /// A run of seconds, for smoke tests.
    pub fn quick() -> Config {
        Config {
            hidden: 16,
            epochs: 5,
            ..Config::full()
        }
    }

    /// The full run, or the quick one with `--quick`; `--epochs N` and `--seed S` adjust it.
    pub fn from_args(mut args: args::Args) -> Result<Config> {
        let mut cfg = if args.quick() {
            Config::quick()
        } else {
            Config::full()
        };
        if let Some(n) = args.value("--epochs")? {
            cfg.epochs = n;
        }
        if let Some(s) = args.value("--seed")? {
            cfg.seed = s;
        }
        args.finish()?;
        Ok(cfg)
    }
}

/// An LSTM over the window, and a linear head on its last hidden state.
#[derive(Module)]
pub struct Forecaster {
    /// `1 → hidden`, batch first.
    pub lstm: LSTM,
    /// `hidden → 1`.
    pub head: Linear,
}

impl Forecaster {
    /// A fresh model.
    pub fn new(hidden: usize, dev: &Device) -> Result<Forecaster> {
        let config = RnnConfig::default().batch_first(true);
        Ok(Forecaster {
            lstm: LSTM::with_config(1, hidden, config, dev)?,
            head: Linear::new(hidden, 1, dev)?,
        })
    }
}

impl Module for Forecaster {
    /// Windows `[B, T]` → forecasts `[B]`.
    fn forward(&self, windows: &Tensor) -> Result<Tensor> {
        let (out, _) = self.lstm.forward(&windows.unsqueeze(-1)?, None)?; // [B, T, H]
        let last = out.narrow(1, windows.dims()[1] - 1, 1)?.squeeze(1)?; // [B, H]
        self.head.forward(&last)?.squeeze(1)
    }
}

/// Test RMSEs in sunspot units, and the time spent training.
#[derive(Debug, Clone)]
pub struct Report {
    /// The LSTM.
    pub rmse: f64,
    /// "Same as last year".
    pub naive_rmse: f64,
    /// Linear autoregression on the same window.
    pub ar_rmse: f64,
    /// First test year.
    pub first_test_year: i32,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// The plot.
    pub plot: PathBuf,
}

impl Report {
    /// How much lower the LSTM's RMSE is than the naive one, in percent.
    pub fn improvement_over_naive(&self) -> f64 {
        100.0 * (1.0 - self.rmse / self.naive_rmse)
    }
}

/// Loads the series, fits the baselines and the LSTM on `dev`, and reports.
pub fn run(cfg: &Config, dev: &Device) -> Result<Report> {
    manual_seed(cfg.seed);
    let (years, values) = load_csv(&cfg.data)?;
    let w = cfg.window;
    // Targets at index t ≥ first_test are test targets; their windows may
    // reach back into the training years, as a forecaster's would.
    let first_test = values.len() - (values.len() as f64 * cfg.test_fraction).round() as usize;
    let train = &values[..first_test];
    let mean = train.iter().sum::<f64>() / train.len() as f64;
    let std = (train.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / train.len() as f64).sqrt();
    let scaled: Vec<f64> = values.iter().map(|v| (v - mean) / std).collect();
    let train_targets: Vec<usize> = (w..first_test).collect();
    let test_targets: Vec<usize> = (first_test..values.len()).collect();
    println!(
        "{} years {}–{}: {} training windows of {w} years, test years {}–{} ({} forecasts)",
        values.len(),
        years[0],
        years[years.len() - 1],
        train_targets.len(),
        years[first_test],
        years[years.len() - 1],
        test_targets.len()
    );

    let truth: Vec<f64> = test_targets.iter().map(|&t| values[t]).collect();
    let naive: Vec<f64> = test_targets.iter().map(|&t| values[t - 1]).collect();
    let coef = fit_autoregression(&scaled, &train_targets, w)?;
    let ar: Vec<f64> = test_targets
        .iter()
        .map(|&t| mean + std * predict_autoregression(&coef, &scaled[t - w..t]))
        .collect();
    let naive_rmse = rmse(&naive, &truth);
    let ar_rmse = rmse(&ar, &truth);
    println!("baselines: naive RMSE {naive_rmse:.2}, linear AR({w}) RMSE {ar_rmse:.2}");

    let model = Forecaster::new(cfg.hidden, dev)?;
    println!("{model}");
    let mut opt = Adam::new(model.parameters(), cfg.lr)?;
    let (test_x, _) = windows(&scaled, &test_targets, w, dev)?;
    let rng = Generator::new(cfg.seed ^ 0x5a17);
    let started = Instant::now();
    let mut predicted = Vec::new();
    for epoch in 1..=cfg.epochs {
        let mut sum = 0.0;
        for batch in rng.permutation(train_targets.len()).chunks(cfg.batch) {
            let targets: Vec<usize> = batch.iter().map(|&k| train_targets[k]).collect();
            let (x, y) = windows(&scaled, &targets, w, dev)?;
            let loss = mse_loss(&model.forward(&x)?, &y)?;
            opt.zero_grad();
            loss.backward()?;
            opt.step()?;
            sum += loss.item()? as f64 * batch.len() as f64;
        }
        if epoch % 10 == 0 || epoch == cfg.epochs {
            predicted = no_grad(|| model.forward(&test_x))?
                .to_vec()?
                .iter()
                .map(|&p| mean + std * p as f64)
                .collect();
            println!(
                "epoch {epoch:3}: train RMSE {:.2}, test RMSE {:.2}  ({:.1}s)",
                std * (sum / train_targets.len() as f64).sqrt(),
                rmse(&predicted, &truth),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let lstm_rmse = rmse(&predicted, &truth);

    let test_years: Vec<f64> = test_targets.iter().map(|&t| years[t] as f64).collect();
    let plot = cfg.out_dir.join("forecast.svg");
    write_svg_chart(
        &plot,
        &format!(
            "Sunspots: forecasts for {}–{}",
            years[first_test],
            years[years.len() - 1]
        ),
        &test_years,
        &[
            ("truth", "#222222", &truth),
            ("LSTM", "#d62728", &predicted),
            ("linear AR", "#1f77b4", &ar),
        ],
    )?;
    let report = Report {
        rmse: lstm_rmse,
        naive_rmse,
        ar_rmse,
        first_test_year: years[first_test],
        train_seconds,
        plot,
    };
    println!("test RMSE after {train_seconds:.1}s of training:");
    println!("  naive (last year) {naive_rmse:7.2}");
    println!(
        "  linear AR({w})     {ar_rmse:7.2}  ({:+.1}% vs naive)",
        100.0 * (1.0 - ar_rmse / naive_rmse)
    );
    println!(
        "  LSTM              {lstm_rmse:7.2}  ({:+.1}% vs naive)",
        report.improvement_over_naive()
    );
    println!("plotted the test years to {}", report.plot.display());
    Ok(report)
}

/// `(years, values)` from a `YEAR,VALUE` CSV with a header line.
pub fn load_csv(path: &Path) -> Result<(Vec<i32>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut years = Vec::new();
    let mut values = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let bad = || Error::invalid("forecast", format!("bad line {line:?}"));
        let (year, value) = line.split_once(',').ok_or_else(bad)?;
        years.push(year.trim().parse::<f64>().map_err(|_| bad())? as i32);
        values.push(value.trim().parse::<f64>().map_err(|_| bad())?);
    }
    Ok((years, values))
}

/// Least-squares coefficients `[intercept, a_1 .. a_w]` of
/// `x_t ≈ c + Σ_k a_k x_{t-w+k-1}`, from the normal equations
/// `(XᵀX) β = Xᵀy` (`(w+1) × (w+1)`), solved by Gaussian elimination.
pub fn fit_autoregression(series: &[f64], targets: &[usize], w: usize) -> Result<Vec<f64>> {
    let n = w + 1;
    let mut a = vec![0.0; n * (n + 1)]; // [n, n+1]: XᵀX augmented with Xᵀy.
    for &t in targets {
        let row: Vec<f64> = std::iter::once(1.0)
            .chain(series[t - w..t].iter().copied())
            .collect();
        for i in 0..n {
            for j in 0..n {
                a[i * (n + 1) + j] += row[i] * row[j];
            }
            a[i * (n + 1) + n] += row[i] * series[t];
        }
    }
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&p, &q| {
                a[p * (n + 1) + col]
                    .abs()
                    .total_cmp(&a[q * (n + 1) + col].abs())
            })
            .unwrap_or(col);
        if a[pivot * (n + 1) + col].abs() < 1e-12 {
            return Err(Error::invalid("forecast", "singular normal equations"));
        }
        for j in 0..=n {
            a.swap(col * (n + 1) + j, pivot * (n + 1) + j);
        }
        for r in (0..n).filter(|&r| r != col) {
            let factor = a[r * (n + 1) + col] / a[col * (n + 1) + col];
            for j in col..=n {
                a[r * (n + 1) + j] -= factor * a[col * (n + 1) + j];
            }
        }
    }
    Ok((0..n)
        .map(|i| a[i * (n + 1) + n] / a[i * (n + 1) + i])
        .collect())
}

/// The autoregression's forecast from a window.
pub fn predict_autoregression(coef: &[f64], window: &[f64]) -> f64 {
    coef[0]
        + coef[1..]
            .iter()
            .zip(window)
            .map(|(a, x)| a * x)
            .sum::<f64>()
}

/// Root mean square of `predicted - truth`.
pub fn rmse(predicted: &[f64], truth: &[f64]) -> f64 {
    let sum: f64 = predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum();
    (sum / truth.len().max(1) as f64).sqrt()
}

/// The windows `[n, w]` before each target index and the targets `[n]`.
fn windows(series: &[f64], targets: &[usize], w: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let x = targets
        .iter()
        .flat_map(|&t| series[t - w..t].iter().map(|&v| v as f32))
        .collect();
    let y = targets.iter().map(|&t| series[t] as f32).collect();
    Ok((
        Tensor::from_vec(x, &[targets.len(), w], dev)?,
        Tensor::from_vec(y, &[targets.len()], dev)?,
    ))
}

/// A line chart as a hand-written SVG: one polyline per `(name, colour, ys)`
/// over `xs`, with the y range, the first and last x, and a legend.
fn write_svg_chart(
    path: &Path,
    title: &str,
    xs: &[f64],
    series: &[(&str, &str, &[f64])],
) -> Result<()> {
    let (w, h, margin) = (800.0, 400.0, 50.0);
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let ys = series.iter().flat_map(|(_, _, ys)| ys.iter().copied());
    let y1 = ys.fold(f64::NEG_INFINITY, f64::max).max(1.0);
    let y0 = 0.0_f64.min(
        series
            .iter()
            .flat_map(|s| s.2.iter().copied())
            .fold(0.0, f64::min),
    );
    let px = |x: f64| margin + (x - x0) / (x1 - x0).max(1.0) * (w - 2.0 * margin);
    let py = |y: f64| h - margin - (y - y0) / (y1 - y0) * (h - 2.0 * margin);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"25\" text-anchor=\"middle\" font-size=\"16\">{title}</text>\n\
         <rect x=\"{margin}\" y=\"{margin}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n",
        w / 2.0,
        w - 2.0 * margin,
        h - 2.0 * margin
    );
    let label = |x: f64, y: f64, anchor: &str, text: String| {
        format!("<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\">{text}</text>\n")
    };
    svg += &label(margin - 5.0, py(y1) + 4.0, "end", format!("{y1:.0}"));
    svg += &label(margin - 5.0, py(y0) + 4.0, "end", format!("{y0:.0}"));
    svg += &label(px(x0), h - margin + 18.0, "middle", format!("{x0:.0}"));
    svg += &label(px(x1), h - margin + 18.0, "middle", format!("{x1:.0}"));
    for (i, (name, colour, ys)) in series.iter().enumerate() {
        let points: Vec<String> = xs
            .iter()
            .zip(ys.iter())
            .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            points.join(" ")
        );
        let ly = margin + 18.0 + 16.0 * i as f64;
        svg += &format!(
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
            w - margin - 110.0,
            w - margin - 90.0
        );
        svg += &label(w - margin - 85.0, ly + 4.0, "start", name.to_string());
    }
    svg += "</svg>\n";
    if let Some(dir) = path.parent() {
        args::create_dir(dir)?;
    }
    std::fs::write(path, svg).map_err(|e| Error::io(path, e))
}

fn main() -> Result<()> {
    let cfg = Config::from_args(args::Args::from_env("forecast"))?;
    let dev = Device::auto()?;
    println!("device: {dev}");
    let report = run(&cfg, &dev)?;
    println!(
        "done: LSTM test RMSE {:.2} vs naive {:.2} ({:.1}% better; the goal is ≥ 15%)",
        report.rmse,
        report.naive_rmse,
        report.improvement_over_naive()
    );
    Ok(())
}
