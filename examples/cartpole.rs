//! Cart-pole balancing learned by policy gradient.
//!
//! ```sh
//! cargo run --release --example cartpole              # train, evaluate, save
//! cargo run --release --example cartpole -- --render  # ... then watch one episode
//! cargo run --release --example cartpole -- --play    # watch the saved policy
//! ```
//!
//! The environment is Gymnasium's `CartPole-v1` (`cartpole/env.rs`). A
//! 4 → 64 → 2 policy network gives the probabilities of pushing left or
//! right; it is trained by REINFORCE with a learned value baseline: run a
//! batch of episodes (several cart-poles in lockstep, so each step is one
//! forward pass and one read-back of the probabilities, which are sampled
//! on the host), then raise the log-probability of each action in
//! proportion to its advantage — the discounted return that followed it
//! minus the value network's estimate, normalised over the batch. Training
//! stops once a greedy check passes; the policy is then evaluated on 100
//! fresh episodes with greedy (most probable) actions and saved to
//! `target/lam-out/cartpole/policy.safetensors` (or `$LAM_OUT_DIR/cartpole`).
//!
//! Flags: `--episodes N` (training budget), `--seed S`, `--render`, `--play`,
//! `--quick` (a tiny run for smoke tests).

#[path = "cartpole/env.rs"]
pub mod env;

// Test binaries that include two examples load it twice, as two modules.
#[allow(clippy::duplicate_mod)]
#[path = "common/args.rs"]
pub mod args;

use std::path::PathBuf;
use std::time::Instant;

use env::CartPole;
use lam::checkpoint;
use lam::loss::mse_loss;
use lam::nn::{Linear, ReLU, Sequential};
use lam::optim::Adam;
use lam::prelude::*;
use lam::rng::Generator;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most training episodes; training stops earlier once solved.
    pub episodes: usize,
    /// Episodes per policy update, played in lockstep.
    pub batch: usize,
    /// Hidden units of the policy and value networks.
    pub hidden: usize,
    /// Adam learning rate (policy and value network).
    pub lr: f32,
    /// Discount of future rewards.
    pub gamma: f64,
    /// Greedy episodes in the final evaluation.
    pub eval_episodes: usize,
    /// Seeds the networks, the environments and the action sampling.
    pub seed: u64,
    /// Draw one greedy episode after training.
    pub render: bool,
    /// Only draw an episode of the saved policy.
    pub play: bool,
    /// Where the policy is saved.
    pub out_dir: PathBuf,
}

impl Config {
    /// The full run.
    pub fn full() -> Config {
        Config {
            episodes: 3000,
            batch: 16,
            hidden: 64,
            lr: 0.005,
            gamma: 0.99,
            eval_episodes: 100,
            seed: 0,
            render: false,
            play: false,
            out_dir: args::out_dir("cartpole"),
        }
    }

    /// A run of seconds, for smoke tests: it learns little.
    pub fn quick() -> Config {
        Config {
            episodes: 16,
            batch: 4,
            hidden: 16,
            eval_episodes: 4,
            ..Config::full()
        }
    }

    /// The full run adjusted by the command-line flags.
    pub fn from_args(mut args: args::Args) -> Result<Config> {
        let mut cfg = if args.quick() {
            Config::quick()
        } else {
            Config::full()
        };
        if let Some(n) = args.value("--episodes")? {
            cfg.episodes = n;
        }
        if let Some(s) = args.value("--seed")? {
            cfg.seed = s;
        }
        cfg.render = args.flag("--render");
        cfg.play = args.flag("--play");
        args.finish()?;
        Ok(cfg)
    }

    /// The saved policy's path.
    pub fn policy_path(&self) -> PathBuf {
        self.out_dir.join("policy.safetensors")
    }
}

/// What a run achieved.
#[derive(Debug, Clone)]
pub struct Report {
    /// Episodes played while training.
    pub episodes_trained: usize,
    /// Mean return of the greedy policy over the evaluation episodes.
    pub eval_mean: f64,
    /// Shortest evaluation episode.
    pub eval_min: f64,
    /// Seconds spent training (evaluation excluded).
    pub train_seconds: f64,
    /// Where the policy was saved.
    pub policy_path: PathBuf,
}

/// The policy: state `[n, 4]` → action logits `[n, 2]` (softmax gives probabilities).
pub fn policy_net(hidden: usize, dev: &Device) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(4, hidden, dev)?)
        .add(ReLU)
        .add(Linear::new(hidden, 2, dev)?))
}

/// Trains, evaluates and saves a policy on `dev`.
pub fn run(cfg: &Config, dev: &Device) -> Result<Report> {
    manual_seed(cfg.seed);
    let mut rng = Generator::new(cfg.seed);
    let policy = policy_net(cfg.hidden, dev)?;
    // The value network estimates the discounted return scaled by 1 - γ (about 0..1).
    let value = Sequential::new()
        .add(Linear::new(4, cfg.hidden, dev)?)
        .add(ReLU)
        .add(Linear::new(cfg.hidden, 1, dev)?);
    let mut policy_opt = Adam::new(policy.parameters(), cfg.lr)?;
    let mut value_opt = Adam::new(value.parameters(), cfg.lr)?;

    println!(
        "training: REINFORCE with a value baseline, {} episodes per update, up to {} episodes",
        cfg.batch, cfg.episodes
    );
    let started = Instant::now();
    let mut episodes = 0;
    let mut recent = Vec::new(); // Returns since the last progress line.
    while episodes < cfg.episodes {
        let batch = play(&policy, cfg.batch, &mut rng, Act::Sample)?;
        episodes += batch.len();
        recent.extend(batch.iter().map(Episode::total));
        update(
            &policy,
            &value,
            &mut policy_opt,
            &mut value_opt,
            &batch,
            cfg.gamma,
        )?;

        let batch_mean = mean_return(&batch);
        if recent.len() >= 10 * cfg.batch || episodes >= cfg.episodes {
            println!(
                "episodes {:5}: mean return {:6.1} over the last {}",
                episodes,
                mean(&recent),
                recent.len()
            );
            recent.clear();
        }
        // Solved when near-perfect sampled play is confirmed by greedy play.
        if batch_mean >= 475.0 {
            let check = play(&policy, 20, &mut rng, Act::Greedy)?;
            let check_mean = mean_return(&check);
            if check_mean >= 495.0 {
                println!("episodes {episodes:5}: solved (greedy check: {check_mean:.1} over 20)");
                break;
            }
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    println!("trained for {episodes} episodes in {train_seconds:.1}s");

    // Fresh episodes from a stream training never used.
    let mut eval_rng = Generator::new(cfg.seed ^ 0x5eed_e7a1);
    let eval = play(&policy, cfg.eval_episodes, &mut eval_rng, Act::Greedy)?;
    let returns: Vec<f64> = eval.iter().map(Episode::total).collect();
    let (eval_mean, eval_min) = (
        mean(&returns),
        returns.iter().copied().fold(f64::MAX, f64::min),
    );
    println!(
        "evaluation: mean return {eval_mean:.1} (min {eval_min}) over {} episodes, greedy actions",
        returns.len()
    );

    args::create_dir(&cfg.out_dir)?;
    let policy_path = cfg.policy_path();
    checkpoint::save_model(&policy, &policy_path)?;
    println!("saved the policy to {}", policy_path.display());
    if cfg.render {
        render(&policy, cfg.seed)?;
    }
    Ok(Report {
        episodes_trained: episodes,
        eval_mean,
        eval_min,
        train_seconds,
        policy_path,
    })
}

/// How [`play`] picks actions from the policy's probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Draw from them (training).
    Sample,
    /// Take the most probable (evaluation).
    Greedy,
}

/// One episode: what was seen, done and received at each step.
#[derive(Debug, Clone, Default)]
pub struct Episode {
    /// Observations, `[steps][4]`.
    pub states: Vec<[f32; 4]>,
    /// 0 (left) or 1 (right) per step.
    pub actions: Vec<i32>,
    /// Reward per step.
    pub rewards: Vec<f64>,
}

impl Episode {
    /// The undiscounted return.
    pub fn total(&self) -> f64 {
        self.rewards.iter().sum()
    }
}

/// Plays one episode on each of `n` fresh cart-poles in lockstep: one
/// forward pass over all unfinished ones per step, one read-back.
pub fn play(policy: &Sequential, n: usize, rng: &mut Generator, act: Act) -> Result<Vec<Episode>> {
    let dev = policy.parameters()[0].device();
    let mut envs: Vec<CartPole> = (0..n).map(|_| CartPole::new(rng)).collect();
    let mut episodes = vec![Episode::default(); n];
    let mut live: Vec<usize> = (0..n).collect(); // Cart-poles still playing.
    let mut over = vec![false; n];
    while !live.is_empty() {
        let obs: Vec<f32> = live.iter().flat_map(|&i| envs[i].observation()).collect();
        let x = Tensor::from_vec(obs, &[live.len(), 4], &dev)?;
        let probs = no_grad(|| policy.forward(&x)?.softmax(-1))?.to_vec()?; // [live, 2]
        for (row, &i) in live.iter().enumerate() {
            let p_right = probs[2 * row + 1] as f64;
            let action = match act {
                Act::Sample => usize::from(rng.uniform() < p_right),
                Act::Greedy => usize::from(p_right > 0.5),
            };
            episodes[i].states.push(envs[i].observation());
            episodes[i].actions.push(action as i32);
            let outcome = envs[i].step(action);
            episodes[i].rewards.push(outcome.reward);
            over[i] = outcome.done();
        }
        live.retain(|&i| !over[i]);
    }
    Ok(episodes)
}

/// One REINFORCE step on `batch`, and one regression step of the baseline.
fn update(
    policy: &Sequential,
    value: &Sequential,
    policy_opt: &mut Adam,
    value_opt: &mut Adam,
    batch: &[Episode],
    gamma: f64,
) -> Result<()> {
    let dev = policy.parameters()[0].device();
    let (mut states, mut actions, mut returns) = (Vec::new(), Vec::new(), Vec::new());
    for ep in batch {
        states.extend(ep.states.iter().flatten());
        actions.extend(&ep.actions);
        // G_t = r_t + γ G_{t+1}, from the end of the episode backwards.
        let mut g = 0.0;
        let mut ep_returns: Vec<f32> = ep
            .rewards
            .iter()
            .rev()
            .map(|r| {
                g = r + gamma * g;
                (g * (1.0 - gamma)) as f32
            })
            .collect();
        ep_returns.reverse();
        returns.extend(ep_returns);
    }
    let n = actions.len();
    let x = Tensor::from_vec(states, &[n, 4], &dev)?;
    let actions = Tensor::from_vec_i32(actions, &[n, 1], &dev)?;
    let returns = Tensor::from_vec(returns, &[n, 1], &dev)?;

    // Advantage: how much better than expected each action turned out,
    // normalised to mean 0 and deviation 1 over the batch.
    let baseline = no_grad(|| value.forward(&x))?;
    let mut adv = (&returns - &baseline)?.to_vec()?;
    let m = mean(&adv.iter().map(|&a| a as f64).collect::<Vec<_>>());
    let sd = (adv.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / n as f64).sqrt();
    adv.iter_mut()
        .for_each(|a| *a = ((*a as f64 - m) / (sd + 1e-8)) as f32);
    let adv = Tensor::from_vec(adv, &[n, 1], &dev)?;

    // Policy gradient: maximise mean(log π(a|s) · advantage).
    let log_probs = policy.forward(&x)?.log_softmax(-1)?.gather(1, &actions)?; // [n, 1]
    let policy_loss = (&log_probs * &adv)?.mean_all()?.neg()?;
    policy_opt.zero_grad();
    policy_loss.backward()?;
    policy_opt.step()?;

    let value_loss = mse_loss(&value.forward(&x)?, &returns)?;
    value_opt.zero_grad();
    value_loss.backward()?;
    value_opt.step()
}

/// Draws one greedy episode in the terminal, in real time (50 frames a second).
pub fn render(policy: &Sequential, seed: u64) -> Result<()> {
    let dev = policy.parameters()[0].device();
    let mut env = CartPole::new(&mut Generator::new(seed ^ 0xd1a9));
    let frame = std::time::Duration::from_secs_f64(env::TAU);
    loop {
        // Clear the screen, home the cursor, draw.
        println!("\x1b[2J\x1b[H{}", env::draw(&env));
        let x = Tensor::from_vec(env.observation().to_vec(), &[1, 4], &dev)?;
        let probs = no_grad(|| policy.forward(&x)?.softmax(-1))?.to_vec()?;
        let outcome = env.step(usize::from(probs[1] > 0.5));
        std::thread::sleep(frame);
        if outcome.done() {
            println!("\x1b[2J\x1b[H{}", env::draw(&env));
            let why = if outcome.terminated {
                "the pole fell"
            } else {
                "500-step limit"
            };
            println!("episode over after {} steps ({why})", env.steps);
            return Ok(());
        }
    }
}

fn mean_return(episodes: &[Episode]) -> f64 {
    mean(&episodes.iter().map(Episode::total).collect::<Vec<_>>())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn main() -> Result<()> {
    let cfg = Config::from_args(args::Args::from_env("cartpole"))?;
    let dev = Device::auto()?;
    println!("device: {dev}");
    if cfg.play {
        let policy = policy_net(cfg.hidden, &dev)?;
        checkpoint::load_model(&policy, cfg.policy_path())?;
        return render(&policy, cfg.seed);
    }
    let report = run(&cfg, &dev)?;
    println!(
        "done: mean evaluation return {:.1}, {} training episodes in {:.1}s",
        report.eval_mean, report.episodes_trained, report.train_seconds
    );
    Ok(())
}
