//! Recommendation by matrix factorisation, on ratings whose truth is known.
//!
//! ```sh
//! cargo run --release --example recommend
//! cargo run --release --example recommend -- --quick   # a tiny run
//! ```
//!
//! The ratings come from a documented generator ([`generate`]), so the best
//! possible error is known: user `u` and item `i` have hidden factor
//! vectors `p_u, q_i` (rank 8, each entry `N(0, 1/√rank)` in variance, so
//! `p_u·q_i` has variance 1) and biases `b_u ~ N(0, 0.3²)`,
//! `b_i ~ N(0, 0.5²)`, and
//!
//! ```text
//! rating(u, i) = μ + b_u + b_i + p_u·q_i + ε,   μ = 3.5,  ε ~ N(0, σ²),  σ = 0.3
//! ```
//!
//! A random 60% of the 500 × 300 pairs is rated, and the ratings are split
//! 80/20 into training and held-out sets. Each user then has ~144 training
//! ratings for 9 unknowns (8 factors and a bias); the error of estimating
//! them adds ~5% to the noise here, but already ~9% with 80 ratings each and
//! ~15% with 50. The model has the
//! generator's form: two `nn::Embedding` factor tables, user and item bias
//! embeddings and a global bias, trained with Adam, a little weight decay
//! and a cosine-annealed step size on shuffled minibatches of ratings.
//! No model can beat σ on held-out ratings; it prints how close it gets, next
//! to the global-mean and item-mean baselines, and saves the model to
//! `target/lam-out/recommend/model.safetensors` (or `$LAM_OUT_DIR/recommend`).

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::PathBuf;
use std::time::Instant;

use lam::checkpoint;
use lam::loss::mse_loss;
use lam::nn::Embedding;
use lam::optim::{Adam, CosineAnnealing, Scheduler};
use lam::rng::{standard_normal, Generator};
use lam_train::data::HostTargets;
use lam_train::prelude::*;

/// What to generate and how to train.
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of users.
    pub users: usize,
    /// Number of items.
    pub items: usize,
    /// Rank of the hidden factors, and of the model's.
    pub rank: usize,
    /// Fraction of all (user, item) pairs that are rated.
    pub density: f64,
    /// Standard deviation σ of the rating noise: the best achievable RMSE.
    pub noise: f64,
    /// Passes over the training ratings.
    pub epochs: usize,
    /// Ratings per minibatch.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Adam's L2 penalty on all parameters.
    pub weight_decay: f32,
    /// Seeds the data and the model.
    pub seed: u64,
    /// Where the model is saved.
    pub out_dir: PathBuf,
}

impl Config {
    /// The full run.
    pub fn full() -> Config {
        Config {
            users: 500,
            items: 300,
            rank: 8,
            density: 0.6,
            noise: 0.3,
            epochs: 20,
            batch: 4096,
            lr: 0.03,
            weight_decay: 1e-5,
            seed: 0,
            out_dir: args::out_dir("recommend"),
        }
    }

    /// A run of seconds, for smoke tests.
    pub fn quick() -> Config {
        Config {
            users: 200,
            items: 100,
            rank: 4,
            density: 0.5,
            epochs: 20,
            batch: 1024,
            ..Config::full()
        }
    }

    /// The full run, or the quick one with `--quick`; `--seed S` and `--epochs N` adjust it.
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

/// Observed ratings: `values[k]` is user `users[k]`'s rating of item `items[k]`.
#[derive(Debug, Clone, Default)]
pub struct Ratings {
    /// User of each rating.
    pub users: Vec<i32>,
    /// Item of each rating.
    pub items: Vec<i32>,
    /// The rating, noise included.
    pub values: Vec<f32>,
    /// The rating without its noise (what a perfect model would predict).
    pub truth: Vec<f32>,
}

impl Ratings {
    /// Number of ratings.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(user, item)` pairs (`I32 [n, 2]` features) rated with their values
    /// (`F32 [n, 1]` targets).
    pub fn dataset(&self) -> Result<TensorDataset> {
        let pairs = self
            .users
            .iter()
            .zip(&self.items)
            .flat_map(|(&u, &i)| [u, i]);
        let values = HostTargets::Values {
            data: self.values.clone(),
            width: 1,
        };
        TensorDataset::from_parts(pairs.collect::<Vec<_>>(), &[2], values)
    }
}

/// Draws hidden factors and biases, observes a random `density` of the
/// pairs, and splits them 80/20 into (training, held-out) ratings.
pub fn generate(cfg: &Config) -> (Ratings, Ratings) {
    let rng = Generator::new(cfg.seed);
    let normals = |n: usize, std: f64| {
        let seed = rng.next_seed();
        (0..n)
            .map(|i| std * standard_normal(seed, i as u32) as f64)
            .collect::<Vec<f64>>()
    };
    let factor_std = (cfg.rank as f64).powf(-0.25); // Variance 1/√rank.
    let p = normals(cfg.users * cfg.rank, factor_std); // [users, rank]
    let q = normals(cfg.items * cfg.rank, factor_std); // [items, rank]
    let user_bias = normals(cfg.users, 0.3);
    let item_bias = normals(cfg.items, 0.5);

    let noise_seed = rng.next_seed();
    let mut all = Ratings::default();
    for u in 0..cfg.users {
        for i in 0..cfg.items {
            if rng.uniform() >= cfg.density {
                continue;
            }
            let dot: f64 = (0..cfg.rank)
                .map(|r| p[u * cfg.rank + r] * q[i * cfg.rank + r])
                .sum();
            let truth = 3.5 + user_bias[u] + item_bias[i] + dot;
            let noise = cfg.noise * standard_normal(noise_seed, all.len() as u32) as f64;
            all.users.push(u as i32);
            all.items.push(i as i32);
            all.truth.push(truth as f32);
            all.values.push((truth + noise) as f32);
        }
    }
    let order = rng.permutation(all.len());
    let cut = all.len() * 4 / 5;
    (pick(&all, &order[..cut]), pick(&all, &order[cut..]))
}

/// `rating ≈ global + user_bias[u] + item_bias[i] + users[u]·items[i]`.
#[derive(Module)]
pub struct Factorization {
    /// User factors `[users, rank]`.
    pub users: Embedding,
    /// Item factors `[items, rank]`.
    pub items: Embedding,
    /// `[users, 1]`.
    pub user_bias: Embedding,
    /// `[items, 1]`.
    pub item_bias: Embedding,
    /// `[1]`.
    #[module(param)]
    pub global: Tensor,
}

impl Factorization {
    /// Small random factors, zero biases, and the global bias at `mean`.
    pub fn new(users: usize, items: usize, rank: usize, mean: f32, dev: &Device) -> Result<Self> {
        let model = Factorization {
            users: Embedding::new(users, rank, dev)?,
            items: Embedding::new(items, rank, dev)?,
            user_bias: Embedding::new(users, 1, dev)?,
            item_bias: Embedding::new(items, 1, dev)?,
            global: Tensor::full(&[1], mean, dev)?.requires_grad_()?,
        };
        // Embedding's N(0, 1) start would make every prediction far off.
        for table in [&model.users, &model.items] {
            table
                .weight
                .set_data(&Tensor::normal(&table.weight.shape(), 0.0, 0.1, dev)?)?;
        }
        for table in [&model.user_bias, &model.item_bias] {
            table
                .weight
                .set_data(&Tensor::zeros(&table.weight.shape(), dev)?)?;
        }
        Ok(model)
    }
}

impl Factorization {
    /// Predicted ratings `[n]` of users `[n]` for items `[n]` (both `I32`).
    pub fn predict(&self, users: &Tensor, items: &Tensor) -> Result<Tensor> {
        let (u, i) = (self.users.forward(users)?, self.items.forward(items)?); // [n, rank]
        let dot = (&u * &i)?.sum(-1, false)?; // [n]
        let biases = (self.user_bias.forward(users)? + self.item_bias.forward(items)?)?; // [n, 1]
        &(&dot + &biases.squeeze(1)?)? + &self.global
    }
}

impl Module for Factorization {
    /// `(user, item)` pairs `[n, 2]` (`I32`) → predicted ratings `[n, 1]`.
    fn forward(&self, pairs: &Tensor) -> Result<Tensor> {
        let users = pairs.narrow(1, 0, 1)?.squeeze(1)?;
        let items = pairs.narrow(1, 1, 1)?.squeeze(1)?;
        self.predict(&users, &items)?.unsqueeze(1)
    }
}

/// What a run achieved: held-out RMSEs.
#[derive(Debug, Clone)]
pub struct Report {
    /// The trained model.
    pub rmse: f64,
    /// σ, the noise in the ratings: no model can do better on average.
    pub noise: f64,
    /// The generator's own noise-free ratings (σ measured on this split).
    pub oracle_rmse: f64,
    /// Predicting the training mean for everything.
    pub global_mean_rmse: f64,
    /// Predicting each item's training mean (the global mean for unseen items).
    pub item_mean_rmse: f64,
    /// Seconds spent training.
    pub train_seconds: f64,
}

/// Generates the ratings, trains a factorisation on `dev`, and reports.
pub fn run(cfg: &Config, dev: &Device) -> Result<Report> {
    manual_seed(cfg.seed);
    let (train, test) = generate(cfg);
    println!(
        "{} users × {} items, rank {}: {} training and {} held-out ratings, noise σ = {}",
        cfg.users,
        cfg.items,
        cfg.rank,
        train.len(),
        test.len(),
        cfg.noise
    );

    // Baselines, fitted on the training ratings only.
    let mean = train.values.iter().map(|&v| v as f64).sum::<f64>() / train.len() as f64;
    let mut item_sum = vec![(0.0, 0usize); cfg.items];
    for (&i, &v) in train.items.iter().zip(&train.values) {
        item_sum[i as usize].0 += v as f64;
        item_sum[i as usize].1 += 1;
    }
    let item_mean = |i: i32| match item_sum[i as usize] {
        (_, 0) => mean,
        (sum, n) => sum / n as f64,
    };
    let global_mean_rmse = rmse(test.values.iter().map(|&v| v as f64 - mean));
    let item_mean_rmse = rmse(
        test.items
            .iter()
            .zip(&test.values)
            .map(|(&i, &v)| v as f64 - item_mean(i)),
    );
    let oracle_rmse = rmse(
        test.values
            .iter()
            .zip(&test.truth)
            .map(|(&v, &t)| (v - t) as f64),
    );
    println!("held-out RMSE of the global mean {global_mean_rmse:.4}, of item means {item_mean_rmse:.4}, of the true model {oracle_rmse:.4}");

    let model = Factorization::new(cfg.users, cfg.items, cfg.rank, mean as f32, dev)?;
    let mut opt = Adam::new(model.parameters(), cfg.lr)?.weight_decay(cfg.weight_decay);
    // Anneal the step size so the factors settle instead of jittering.
    let mut schedule = CosineAnnealing::new(cfg.lr, cfg.epochs as u64);
    let test_loader = DataLoader::new(test.dataset()?, test.len().max(1), dev)?;
    // Each pass over the loader is the next epoch, reshuffled from its generator.
    let loader = DataLoader::new(train.dataset()?, cfg.batch, dev)?
        .shuffle(true)
        .generator(&Generator::new(cfg.seed ^ 0xba7c));
    let started = Instant::now();
    let mut held_out = f64::NAN;
    for epoch in 1..=cfg.epochs {
        let mut squared = 0.0;
        for batch in &loader {
            let (pairs, values) = batch?;
            let loss = mse_loss(&model.forward(&pairs)?, &values)?;
            opt.zero_grad();
            loss.backward()?;
            opt.step()?;
            squared += loss.item()? as f64 * values.dims()[0] as f64;
        }
        opt.set_lr(schedule.step());
        held_out = evaluate(&model, &test_loader, &mse_loss)?.loss.sqrt();
        model.train();
        println!(
            "epoch {epoch:3}: train RMSE {:.4}, held-out RMSE {held_out:.4} ({:.3} σ)",
            (squared / train.len() as f64).sqrt(),
            held_out / cfg.noise
        );
    }
    let train_seconds = started.elapsed().as_secs_f64();

    println!("held-out RMSE after {train_seconds:.1}s of training:");
    println!("  global mean   {global_mean_rmse:.4}");
    println!("  item means    {item_mean_rmse:.4}");
    println!(
        "  this model    {held_out:.4}  ({:.3} × the noise floor)",
        held_out / cfg.noise
    );
    println!(
        "  noise floor σ {:.4}  (the true model scores {oracle_rmse:.4} on this split)",
        cfg.noise
    );
    args::create_dir(&cfg.out_dir)?;
    let path = cfg.out_dir.join("model.safetensors");
    checkpoint::save_model(&model, &path)?;
    println!("saved the model to {}", path.display());
    Ok(Report {
        rmse: held_out,
        noise: cfg.noise,
        oracle_rmse,
        global_mean_rmse,
        item_mean_rmse,
        train_seconds,
    })
}

/// The ratings at `ks`.
fn pick(all: &Ratings, ks: &[usize]) -> Ratings {
    Ratings {
        users: ks.iter().map(|&k| all.users[k]).collect(),
        items: ks.iter().map(|&k| all.items[k]).collect(),
        values: ks.iter().map(|&k| all.values[k]).collect(),
        truth: ks.iter().map(|&k| all.truth[k]).collect(),
    }
}

/// Root mean square of `errors`.
fn rmse(errors: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = errors.fold((0.0, 0usize), |(s, n), e| (s + e * e, n + 1));
    (sum / n.max(1) as f64).sqrt()
}

fn main() -> Result<()> {
    let cfg = Config::from_args(args::Args::from_env("recommend"))?;
    let dev = Device::auto()?;
    println!("device: {dev}");
    let report = run(&cfg, &dev)?;
    println!(
        "done: held-out RMSE {:.4} = {:.3} σ (≤ 1.1 σ is the goal)",
        report.rmse,
        report.rmse / report.noise
    );
    Ok(())
}
