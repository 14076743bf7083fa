//! The application examples, run in their tiny configurations on the CPU,
//! and the cart-pole physics checked against Gymnasium's formulas.
//!
//! Each example is compiled into this test as a module (its `main` unused),
//! so its `run` is called directly with its `quick` configuration.

#[allow(dead_code)]
#[path = "../examples/cartpole.rs"]
mod cartpole;

#[allow(dead_code)]
#[path = "../examples/recommend.rs"]
mod recommend;

use std::path::PathBuf;

use cartpole::env::{CartPole, THETA_THRESHOLD};
use lam::prelude::*;
use lam::rng::Generator;

fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lam-examples-smoke-{name}-{}", std::process::id()))
}

fn assert_state(actual: [f64; 4], expected: [f64; 4]) {
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() < 1e-12,
            "state {actual:?}, expected {expected:?}"
        );
    }
}

/// One step from `[x, ẋ, θ, θ̇] = [0.1, -0.2, 0.05, 0.3]`, by Gymnasium's
/// `CartPoleEnv.step` (masses 1.0 and 0.1, half-length 0.5, force ±10, τ 0.02):
///
/// ```text
/// temp = (F + 0.05 · 0.3² · sin 0.05) / 1.1
/// θ̈    = (9.8 sin 0.05 − cos 0.05 · temp) / (0.5 (4/3 − 0.1 cos² 0.05 / 1.1))
/// ẍ    = temp − 0.05 θ̈ cos 0.05 / 1.1
/// push right (F = +10): temp = 9.0911136, θ̈ = −13.8252074, ẍ = 9.7187467
/// push left  (F = −10): temp = −9.0907046, θ̈ = 15.4011657, ẍ = −9.7898827
/// ```
///
/// and Euler: `x += τ ẋ, ẋ += τ ẍ, θ += τ θ̇, θ̇ += τ θ̈` (old velocities first).
#[test]
fn cartpole_step_matches_gymnasium() {
    let start = [0.1, -0.2, 0.05, 0.3];
    let mut env = CartPole {
        state: start,
        steps: 0,
    };
    let outcome = env.step(1);
    assert_state(
        env.state,
        [
            0.096,
            -0.2 + 0.02 * 9.718746710911015,
            0.056,
            0.3 + 0.02 * -13.825207424073673,
        ],
    );
    assert_eq!(
        (outcome.reward, outcome.terminated, outcome.truncated),
        (1.0, false, false)
    );

    let mut env = CartPole {
        state: start,
        steps: 0,
    };
    env.step(0);
    assert_state(
        env.state,
        [
            0.096,
            -0.2 + 0.02 * -9.78988273219813,
            0.056,
            0.3 + 0.02 * 15.401165680307574,
        ],
    );
}

#[test]
fn cartpole_ends_at_the_thresholds_and_the_time_limit() {
    // Leaning past 12° (0.2095 rad) after the step terminates the episode.
    let mut env = CartPole {
        state: [0.0, 0.0, THETA_THRESHOLD, 0.1],
        steps: 0,
    };
    assert!(env.step(1).terminated);
    // The cart moving past x = 2.4 terminates it too.
    let mut env = CartPole {
        state: [2.39, 1.0, 0.0, 0.0],
        steps: 0,
    };
    assert!(env.step(1).terminated);
    // The 500th step truncates.
    let mut env = CartPole {
        state: [0.0; 4],
        steps: 499,
    };
    let last = env.step(1);
    assert!(last.truncated && !last.terminated);
    // Resets start within ±0.05.
    let mut rng = Generator::new(7);
    for _ in 0..100 {
        let obs = CartPole::new(&mut rng).observation();
        assert!(obs.iter().all(|v| v.abs() <= 0.05), "{obs:?}");
    }
}

#[test]
fn cartpole_quick_run_trains_evaluates_and_saves() -> Result<()> {
    let dev = Device::cpu();
    let cfg = cartpole::Config {
        out_dir: scratch_dir("cartpole"),
        ..cartpole::Config::quick()
    };
    let report = cartpole::run(&cfg, &dev)?;
    assert_eq!(report.episodes_trained, cfg.episodes);
    // Even a poor policy keeps the pole up a few steps; none exceeds the cap.
    assert!((5.0..=500.0).contains(&report.eval_mean), "{report:?}");
    assert!(report.eval_min >= 1.0 && report.eval_min <= report.eval_mean);
    // The saved policy loads into a fresh network of the same shape.
    let policy = cartpole::policy_net(cfg.hidden, &dev)?;
    lam::checkpoint::load_model(&policy, &report.policy_path)?;
    let episodes = cartpole::play(&policy, 3, &mut Generator::new(1), cartpole::Act::Greedy)?;
    assert!(episodes
        .iter()
        .all(|e| e.states.len() == e.actions.len() && !e.rewards.is_empty()));
    std::fs::remove_dir_all(&cfg.out_dir).ok();
    Ok(())
}

#[test]
fn recommend_quick_run_beats_the_baselines() -> Result<()> {
    let cfg = recommend::Config {
        out_dir: scratch_dir("recommend"),
        ..recommend::Config::quick()
    };
    let report = recommend::run(&cfg, &Device::cpu())?;
    assert!(report.rmse < report.item_mean_rmse, "{report:?}");
    assert!(
        report.item_mean_rmse < report.global_mean_rmse,
        "{report:?}"
    );
    // The noise-free ratings score about σ: the generator is what it says.
    assert!(
        (report.oracle_rmse / report.noise - 1.0).abs() < 0.15,
        "{report:?}"
    );
    std::fs::remove_dir_all(&cfg.out_dir).ok();
    Ok(())
}

/// The examples' shared command line: known flags parse, anything else is
/// an error that lists what the example knows.
#[test]
fn example_flags_parse_or_say_what_is_known() -> Result<()> {
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let cfg = cartpole::Config::from_args(cartpole::args::Args::new(
        "cartpole",
        words("--quick --seed 7 --render"),
    ))?;
    assert_eq!((cfg.seed, cfg.render, cfg.play), (7, true, false));
    assert_eq!(cfg.episodes, cartpole::Config::quick().episodes);

    let err =
        recommend::Config::from_args(recommend::args::Args::new("recommend", words("--epoch 3")))
            .expect_err("a misspelt flag");
    let msg = err.to_string();
    assert!(
        msg.contains("\"--epoch\"") && msg.contains("--epochs VALUE"),
        "{msg}"
    );
    let err =
        recommend::Config::from_args(recommend::args::Args::new("recommend", words("--seed x")))
            .expect_err("not a number");
    assert!(err.to_string().contains("--seed"), "{err}");
    let err =
        recommend::Config::from_args(recommend::args::Args::new("recommend", words("--seed")))
            .expect_err("no value");
    assert!(err.to_string().contains("needs a value"), "{err}");
    Ok(())
}
