//! A character-level language model of *Alice's Adventures in Wonderland*.
//!
//! ```sh
//! cargo run --release --example char_lm
//! cargo run --release --example char_lm -- --temperature 0.5
//! cargo run --release --example char_lm -- --transformer   # attention instead of the LSTM
//! cargo run --release --example char_lm -- --quick         # a tiny run
//! ```
//!
//! Where the only GPU adapter is a software one (llvmpipe), `LAM_DEVICE=cpu`
//! is an order of magnitude faster.
//!
//! The vocabulary is every character of the text; the first 90% of the text
//! trains, the last 10% validates. The model embeds each character, runs an
//! LSTM (or, with `--transformer`, causally masked Transformer encoder layers
//! with learned positional embeddings) and predicts the next character with a
//! linear head. Training is truncated backpropagation through time: the
//! training text is cut into `batch` parallel streams, read `seq_len`
//! characters at a time, and the LSTM's state is carried from one chunk to the
//! next but detached, so gradients flow back at most `seq_len` steps. Adam
//! with gradient-norm clipping.
//!
//! Each epoch prints the validation perplexity next to the perplexity of
//! add-one-smoothed bigram counts from the training text; the model should
//! end well below it. Last, it samples `sample_len` characters at
//! `--temperature T` (default 0.8), seeded by `--seed S`.

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::{Path, PathBuf};
use std::time::Instant;

use lam::loss::cross_entropy;
use lam::nn::{
    causal_mask, AttnMask, Embedding, Linear, RnnConfig, TransformerEncoderLayer,
    TransformerEncoderLayerConfig, LSTM,
};
use lam::optim::{clip_grad_norm, Adam};
use lam::rng::Generator;
use lam_train::prelude::*;

/// The data, the model and the training schedule.
#[derive(Debug, Clone)]
pub struct Config {
    /// The text.
    pub data: PathBuf,
    /// Use Transformer encoder layers instead of the LSTM.
    pub transformer: bool,
    /// Embedding width (and the Transformer's `d_model`).
    pub embed: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Stacked LSTM or Transformer layers.
    pub layers: usize,
    /// Characters per chunk: the BPTT horizon (the Transformer's context).
    pub seq_len: usize,
    /// Parallel streams per step.
    pub batch: usize,
    /// Passes over the training text.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Largest gradient norm.
    pub clip: f32,
    /// Characters to sample at the end.
    pub sample_len: usize,
    /// Divides the logits before sampling.
    pub temperature: f32,
    /// Seeds the model and the sampling.
    pub seed: u64,
}

impl Config {
    /// The full run.
    pub fn full() -> Config {
        Config {
            data: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/alice.txt"),
            transformer: false,
            embed: 64,
            hidden: 128,
            layers: 1,
            seq_len: 64,
            batch: 32,
            epochs: 8,
            lr: 0.005,
            clip: 1.0,
            sample_len: 300,
            temperature: 0.8,
            seed: 0,
        }
    }

    /// A run of seconds on the smaller text, for smoke tests.
    pub fn quick() -> Config {
        Config {
            data: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/data/constitution.txt"),
            embed: 16,
            hidden: 32,
            seq_len: 32,
            batch: 16,
            epochs: 1,
            sample_len: 40,
            ..Config::full()
        }
    }

    /// The full run, or the quick one with `--quick`; `--transformer`,
    /// `--temperature T`, `--epochs N` and `--seed S` adjust it.
    pub fn from_args(mut args: args::Args) -> Result<Config> {
        let quick = args.quick();
        let mut cfg = if quick {
            Config::quick()
        } else {
            Config::full()
        };
        if args.flag("--transformer") {
            cfg.transformer = true;
            if !quick {
                // A step costs a third of the LSTM's here, so attention gets
                // more width, depth and epochs in the same few minutes.
                cfg.embed = 96;
                cfg.layers = 2;
                cfg.epochs = 9;
            }
        }
        if let Some(t) = args.value("--temperature")? {
            cfg.temperature = t;
        }
        if let Some(n) = args.value("--epochs")? {
            cfg.epochs = n;
        }
        if let Some(s) = args.value("--seed")? {
            cfg.seed = s;
        }
        args.finish()?;
        if cfg.temperature.is_nan() || cfg.temperature <= 0.0 {
            return Err(Error::invalid("char_lm", "--temperature must be > 0"));
        }
        Ok(cfg)
    }
}

/// The recurrent state `(h, c)`, each `[layers, B, H]`.
pub type State = (Tensor, Tensor);

/// Embedding → an LSTM, or positional embeddings and causally masked
/// encoder layers → linear head over the vocabulary. The two bodies are
/// optional fields, so the derive names their weights as PyTorch would
/// (`lstm.weight_ih_l0`, `positions.weight`, `layers.0.linear1.bias`).
#[derive(Module)]
pub struct CharModel {
    /// `[vocab, embed]`.
    pub embed: Embedding,
    /// The LSTM, batch first (absent with `--transformer`).
    pub lstm: Option<LSTM>,
    /// `[seq_len, embed]` (with `--transformer`).
    pub positions: Option<Embedding>,
    /// The encoder layers, batch first (with `--transformer`).
    pub layers: Vec<TransformerEncoderLayer>,
    /// `width → vocab`.
    pub head: Linear,
}

impl CharModel {
    /// A fresh model over `vocab` characters.
    pub fn new(vocab: usize, cfg: &Config, dev: &Device) -> Result<CharModel> {
        let embed = Embedding::new(vocab, cfg.embed, dev)?;
        Ok(if cfg.transformer {
            let config = TransformerEncoderLayerConfig {
                dim_feedforward: 4 * cfg.embed,
                dropout: 0.0,
                batch_first: true,
                norm_first: true,
                ..Default::default()
            };
            let positions = Embedding::new(cfg.seq_len, cfg.embed, dev)?;
            // N(0, 1) embeddings would swamp the pre-norm residual stream.
            for table in [&embed, &positions] {
                let small = Tensor::normal(&table.weight.shape(), 0.0, 0.1, dev)?;
                table.weight.set_data(&small)?;
            }
            let layers = (0..cfg.layers)
                .map(|_| TransformerEncoderLayer::with_config(cfg.embed, 4, config, dev))
                .collect::<Result<_>>()?;
            CharModel {
                embed,
                lstm: None,
                positions: Some(positions),
                layers,
                head: Linear::new(cfg.embed, vocab, dev)?,
            }
        } else {
            let config = RnnConfig::default()
                .batch_first(true)
                .num_layers(cfg.layers);
            CharModel {
                embed,
                lstm: Some(LSTM::with_config(cfg.embed, cfg.hidden, config, dev)?),
                positions: None,
                layers: Vec::new(),
                head: Linear::new(cfg.hidden, vocab, dev)?,
            }
        })
    }

    /// Characters `[B, T]` (`I32`) → next-character logits `[B, T, vocab]`,
    /// continuing from `state` (LSTM only; the Transformer has none).
    pub fn step(&self, chars: &Tensor, state: Option<&State>) -> Result<(Tensor, Option<State>)> {
        let x = self.embed.forward(chars)?; // [B, T, E]
        let (y, state) = match (&self.lstm, &self.positions) {
            (Some(lstm), _) => {
                let (y, (h, c)) = lstm.forward(&x, state.map(|(h, c)| (h, c)))?;
                (y, Some((h, c)))
            }
            (None, positions) => {
                let t = chars.dims()[1];
                let dev = chars.device();
                let mut y = x;
                if let Some(positions) = positions {
                    let pos = Tensor::from_vec_i32((0..t as i32).collect(), &[t], &dev)?;
                    y = (&y + &positions.forward(&pos)?)?; // [B, T, E] + [T, E]
                }
                let mask = causal_mask(t, &dev)?;
                for layer in &self.layers {
                    y = layer.forward(&y, Some(AttnMask::Bool(&mask)), None)?;
                }
                (y, None)
            }
        };
        Ok((self.head.forward(&y)?, state))
    }
}

impl Module for CharModel {
    /// Characters `[B, T]` → logits `[B, T, vocab]` from a fresh state.
    fn forward(&self, chars: &Tensor) -> Result<Tensor> {
        Ok(self.step(chars, None)?.0)
    }
}

/// Validation perplexities and the sample.
#[derive(Debug, Clone)]
pub struct Report {
    /// Distinct characters.
    pub vocab: usize,
    /// The model's validation perplexity after each epoch.
    pub perplexities: Vec<f64>,
    /// Add-one-smoothed bigram counts' validation perplexity.
    pub bigram_perplexity: f64,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// The sampled text.
    pub sample: String,
}

/// Loads the text, computes the bigram baseline, trains on `dev`, samples.
pub fn run(cfg: &Config, dev: &Device) -> Result<Report> {
    manual_seed(cfg.seed);
    let text = std::fs::read_to_string(&cfg.data).map_err(|e| Error::io(&cfg.data, e))?;
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let ids: Vec<i32> = text
        .chars()
        .map(|c| chars.binary_search(&c).unwrap_or(0) as i32)
        .collect();
    let cut = ids.len() * 9 / 10;
    let (train, valid) = (&ids[..cut], &ids[cut..]);
    println!(
        "{}: {} characters, vocabulary {}, {} train / {} validation",
        cfg.data.file_name().unwrap_or_default().to_string_lossy(),
        ids.len(),
        chars.len(),
        train.len(),
        valid.len()
    );

    let bigram_perplexity = bigram_perplexity(train, valid, chars.len());
    println!("bigram baseline (add-one smoothing): validation perplexity {bigram_perplexity:.2}");

    let model = CharModel::new(chars.len(), cfg, dev)?;
    let kind = if cfg.transformer {
        format!("{} Transformer layer(s), d_model {}", cfg.layers, cfg.embed)
    } else {
        format!("{}-layer LSTM, hidden {}", cfg.layers, cfg.hidden)
    };
    println!(
        "model: {kind}, {} parameters; chunks of {} × {} characters",
        model.num_parameters(),
        cfg.batch,
        cfg.seq_len
    );
    let params = model.parameters();
    let mut opt = Adam::new(params.clone(), cfg.lr)?;
    let started = Instant::now();
    let mut perplexities = Vec::new();
    for epoch in 1..=cfg.epochs {
        model.train();
        let (mut sum, mut steps) = (0.0, 0);
        let mut state: Option<State> = None;
        // A bar with the steps per second and the time left, on a terminal.
        let batches = progress(chunks(train, cfg.batch, cfg.seq_len, dev)?);
        for (x, y) in batches.desc(format!("epoch {epoch}")) {
            let (logits, next) = model.step(&x, state.as_ref())?;
            let loss = cross_entropy(&flatten(&logits)?, &y.reshape(&[-1])?)?;
            opt.zero_grad();
            loss.backward()?;
            clip_grad_norm(&params, cfg.clip, 2.0)?;
            opt.step()?;
            // Carry the state on, but cut the graph: truncated BPTT.
            state = next.map(|(h, c)| (h.detach(), c.detach()));
            sum += loss.item()? as f64;
            steps += 1;
        }
        let ppl = evaluate(&model, valid, cfg, dev)?;
        perplexities.push(ppl);
        println!(
            "epoch {epoch}: {steps} steps, train perplexity {:.2}, validation perplexity {ppl:.2} \
             (bigram {bigram_perplexity:.2})  [{:.0}s]",
            (sum / steps.max(1) as f64).exp(),
            started.elapsed().as_secs_f64()
        );
    }
    let train_seconds = started.elapsed().as_secs_f64();

    let sample = sample(&model, &chars, "Alice ", cfg, dev)?;
    println!(
        "sample at temperature {} (seed {}):\n{sample}",
        cfg.temperature, cfg.seed
    );
    Ok(Report {
        vocab: chars.len(),
        perplexities,
        bigram_perplexity,
        train_seconds,
        sample,
    })
}

/// Perplexity on `valid` of add-one-smoothed bigram counts from `train`:
/// `P(b | a) = (n(a, b) + 1) / (n(a) + V)`.
pub fn bigram_perplexity(train: &[i32], valid: &[i32], vocab: usize) -> f64 {
    let mut counts = vec![0u32; vocab * vocab]; // [a, b]
    let mut totals = vec![0u32; vocab];
    for pair in train.windows(2) {
        let (a, b) = (pair[0] as usize, pair[1] as usize);
        counts[a * vocab + b] += 1;
        totals[a] += 1;
    }
    let nll: f64 = valid
        .windows(2)
        .map(|pair| {
            let (a, b) = (pair[0] as usize, pair[1] as usize);
            let p = (counts[a * vocab + b] as f64 + 1.0) / (totals[a] as f64 + vocab as f64);
            -p.ln()
        })
        .sum();
    (nll / (valid.len() - 1).max(1) as f64).exp()
}

/// The model's perplexity on `text`, read as in training (streams and
/// carried state) but without gradients.
pub fn evaluate(model: &CharModel, text: &[i32], cfg: &Config, dev: &Device) -> Result<f64> {
    model.eval();
    let mut state: Option<State> = None;
    let (mut sum, mut n) = (0.0, 0usize);
    for (x, y) in chunks(
        text,
        cfg.batch.min(text.len() / (cfg.seq_len + 1)).max(1),
        cfg.seq_len,
        dev,
    )? {
        let (logits, next) = no_grad(|| model.step(&x, state.as_ref()))?;
        let loss = no_grad(|| cross_entropy(&flatten(&logits)?, &y.reshape(&[-1])?))?;
        sum += loss.item()? as f64 * y.numel() as f64;
        n += y.numel();
        state = next;
    }
    model.train();
    Ok((sum / n.max(1) as f64).exp())
}

/// Cuts `ids` into `batch` contiguous streams and returns consecutive
/// chunks: inputs `[batch, seq_len]` and targets (the next characters), so
/// row `b` of chunk `k + 1` continues row `b` of chunk `k`.
fn chunks(
    ids: &[i32],
    batch: usize,
    seq_len: usize,
    dev: &Device,
) -> Result<Vec<(Tensor, Tensor)>> {
    let stream = (ids.len() - 1) / batch;
    (0..stream / seq_len)
        .map(|k| {
            let mut x = Vec::with_capacity(batch * seq_len);
            let mut y = Vec::with_capacity(batch * seq_len);
            for b in 0..batch {
                let start = b * stream + k * seq_len;
                x.extend_from_slice(&ids[start..start + seq_len]);
                y.extend_from_slice(&ids[start + 1..start + seq_len + 1]);
            }
            Ok((
                Tensor::from_vec_i32(x, &[batch, seq_len], dev)?,
                Tensor::from_vec_i32(y, &[batch, seq_len], dev)?,
            ))
        })
        .collect()
}

/// `[B, T, V]` → `[B·T, V]`.
fn flatten(logits: &Tensor) -> Result<Tensor> {
    let v = logits.dims()[2] as isize;
    logits.reshape(&[-1, v])
}

/// Feeds `prompt`, then draws `cfg.sample_len` characters one at a time from
/// `softmax(logits / temperature)`.
fn sample(
    model: &CharModel,
    chars: &[char],
    prompt: &str,
    cfg: &Config,
    dev: &Device,
) -> Result<String> {
    model.eval();
    let rng = Generator::new(cfg.seed ^ 0xc4a2);
    let mut context: Vec<i32> = prompt
        .chars()
        .filter_map(|c| chars.binary_search(&c).ok())
        .map(|i| i as i32)
        .collect();
    if context.is_empty() {
        context.push(0);
    }
    let mut out: String = context.iter().map(|&i| chars[i as usize]).collect();
    let mut state: Option<State> = None;
    let mut feed = context.clone();
    for _ in 0..cfg.sample_len {
        // The LSTM carries its state and needs only the new characters; the
        // Transformer rereads its last `seq_len` characters each time.
        if model.lstm.is_none() {
            feed = context[context.len().saturating_sub(cfg.seq_len)..].to_vec();
        }
        let x = Tensor::from_vec_i32(feed.clone(), &[1, feed.len()], dev)?;
        let (logits, next) = no_grad(|| model.step(&x, state.as_ref()))?;
        state = next;
        let last = logits
            .narrow(1, feed.len() - 1, 1)?
            .reshape(&[-1])?
            .to_vec()?;
        let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> = last
            .iter()
            .map(|&l| (((l - max) / cfg.temperature) as f64).exp())
            .collect();
        let mut u = rng.uniform() * weights.iter().sum::<f64>();
        let mut pick = weights.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                pick = i;
                break;
            }
            u -= w;
        }
        out.push(chars[pick]);
        context.push(pick as i32);
        feed = vec![pick as i32];
    }
    model.train();
    Ok(out)
}

fn main() -> Result<()> {
    let cfg = Config::from_args(args::Args::from_env("char_lm"))?;
    let dev = Device::auto()?;
    println!("device: {dev}");
    let report = run(&cfg, &dev)?;
    let best = report
        .perplexities
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    println!(
        "done in {:.0}s: validation perplexity {best:.2} vs bigram {:.2} (vocabulary {})",
        report.train_seconds, report.bigram_perplexity, report.vocab
    );
    Ok(())
}
