//! Generators: random ops, dropout and initialisation that draw from a
//! named stream instead of the process's default one, so that models
//! trained on several threads at once get exactly the numbers they get
//! alone; and the generator state a training checkpoint carries.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Barrier;

use common::close;
use lam::checkpoint::{load_training, save_training};
use lam::nn::functional::dropout_with;
use lam::nn::{Dropout, Linear, Module, ReLU, Sequential};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;
use lam::rng::{self, nth_seed, Generator, GeneratorState};

conformance!(
    generator_streams_are_the_same_numbers_on_every_backend,
    |dev| {
        // Call k of a generator seeded with s fills with the stream nth_seed(s, k).
        let g = Generator::new(5);
        let u = Tensor::rand_with(&[257], dev, &g)?.to_vec()?;
        let n = Tensor::randn_with(&[100], dev, &g)?.to_vec()?;
        let want_u: Vec<f32> = (0..257)
            .map(|i| rng::uniform01(nth_seed(5, 1), i))
            .collect();
        let want_n: Vec<f32> = (0..100)
            .map(|i| rng::standard_normal(nth_seed(5, 2), i))
            .collect();
        close(&u, &want_u, 0.0);
        close(&n, &want_n, 1e-5);
        assert_eq!(g.state(), GeneratorState { seed: 5, offset: 2 });
        Ok(())
    }
);

#[test]
fn the_forms_without_a_generator_draw_from_the_current_one() -> Result<()> {
    let dev = Device::cpu();
    type Draws = (Vec<f32>, Vec<i32>, Vec<f32>, Vec<f32>);
    let draw = |g: Option<&Generator>| -> Result<Draws> {
        Ok(match g {
            None => (
                Tensor::randn(&[9], &dev)?.to_vec()?,
                Tensor::randint(-3, 4, &[9], &dev)?.to_vec_i32()?,
                Tensor::bernoulli(&[9], 0.3, &dev)?.to_vec()?,
                Tensor::normal(&[9], 1.0, 2.0, &dev)?.to_vec()?,
            ),
            Some(g) => (
                Tensor::randn_with(&[9], &dev, g)?.to_vec()?,
                Tensor::randint_with(-3, 4, &[9], &dev, g)?.to_vec_i32()?,
                Tensor::bernoulli_with(&[9], 0.3, &dev, g)?.to_vec()?,
                Tensor::normal_with(&[9], 1.0, 2.0, &dev, g)?.to_vec()?,
            ),
        })
    };
    let scoped = Generator::new(11);
    let a = rng::with_generator(&scoped, || draw(None))?;
    let named = Generator::new(11);
    let b = draw(Some(&named))?;
    assert_eq!(a, b);
    assert_eq!(scoped.state(), named.state());
    assert_eq!(scoped.state().offset, 4);
    Ok(())
}

#[test]
fn a_call_that_fails_draws_nothing() {
    let dev = Device::cpu();
    let g = Generator::new(1);
    assert!(Tensor::uniform_with(&[3], 2.0, 1.0, &dev, &g).is_err());
    assert!(Tensor::normal_with(&[3], 0.0, -1.0, &dev, &g).is_err());
    assert!(Tensor::randint_with(3, 3, &[3], &dev, &g).is_err());
    assert!(Tensor::bernoulli_with(&[3], 1.5, &dev, &g).is_err());
    assert!(Tensor::rand_with(&[usize::MAX, 2], &dev, &g).is_err());
    assert_eq!(g.state().offset, 0);
}

#[test]
fn dropout_draws_from_its_own_generator_else_the_current_one() -> Result<()> {
    let dev = Device::cpu();
    let x = Tensor::ones(&[256], &dev)?;
    let scope = Generator::new(4);
    let own = Generator::new(3);
    let layer = Dropout::new(0.5)?.with_generator(&own);
    let a = rng::with_generator(&scope, || layer.forward(&x))?.to_vec()?;
    assert_eq!((own.state().offset, scope.state().offset), (1, 0));
    assert_eq!(
        a,
        dropout_with(&x, 0.5, true, &Generator::new(3))?.to_vec()?
    );

    let plain = Dropout::new(0.5)?;
    let b = rng::with_generator(&scope, || plain.forward(&x))?.to_vec()?;
    assert_eq!(scope.state().offset, 1);
    assert_eq!(
        b,
        dropout_with(&x, 0.5, true, &Generator::new(4))?.to_vec()?
    );
    assert_ne!(a, b);
    // Evaluation mode draws nothing.
    layer.eval();
    layer.forward(&x)?;
    assert_eq!(own.state().offset, 1);
    Ok(())
}

/// Builds a model with dropout and trains it for `STEPS` steps on random
/// batches, everything drawn from a generator seeded with `seed`. With a
/// barrier, each step waits for the other thread's, so the two interleave
/// step by step (every thread reaches every wait, also after an error).
fn train_with_dropout(seed: u64, barrier: Option<&Barrier>) -> Result<Vec<Vec<u32>>> {
    const STEPS: usize = 12;
    let dev = Device::cpu();
    rng::with_generator(&Generator::new(seed), || {
        let model = Sequential::new()
            .add(Linear::new(4, 16, &dev)?)
            .add(ReLU)
            .add(Dropout::new(0.3)?)
            .add(Linear::new(16, 3, &dev)?);
        let mut opt = Adam::new(model.parameters(), 0.05)?;
        let mut step = || -> Result<()> {
            let x = Tensor::randn(&[8, 4], &dev)?;
            let y = Tensor::randint(0, 3, &[8], &dev)?;
            opt.zero_grad();
            lam::loss::cross_entropy(&model.forward(&x)?, &y)?.backward()?;
            opt.step()
        };
        let mut first_error = Ok(());
        for _ in 0..STEPS {
            if let Some(b) = barrier {
                b.wait();
            }
            if first_error.is_ok() {
                first_error = step();
            }
        }
        first_error?;
        model
            .parameters()
            .iter()
            .map(|p| Ok(p.to_vec()?.into_iter().map(f32::to_bits).collect()))
            .collect()
    })
}

#[test]
fn two_models_with_dropout_trained_on_two_threads_match_one_after_the_other() -> Result<()> {
    let alone = [train_with_dropout(1, None)?, train_with_dropout(2, None)?];
    assert_ne!(alone[0], alone[1]);
    let barrier = Barrier::new(2);
    let together = std::thread::scope(|s| {
        let a = s.spawn(|| train_with_dropout(1, Some(&barrier)));
        let b = s.spawn(|| train_with_dropout(2, Some(&barrier)));
        [a.join().expect("thread 1"), b.join().expect("thread 2")]
    });
    let [a, b] = together;
    assert!(
        a? == alone[0],
        "model 1 differs when trained beside model 2"
    );
    assert!(
        b? == alone[1],
        "model 2 differs when trained beside model 1"
    );
    Ok(())
}

#[test]
fn training_checkpoints_carry_the_generator_state() -> Result<()> {
    let dev = Device::cpu();
    let dir = Scratch::new();
    let path = dir.0.join("train.safetensors");
    let g = Generator::new(21);
    let model = rng::with_generator(&g, || Linear::new(3, 2, &dev))?;
    let mut opt = Adam::new(model.parameters(), 0.1)?;
    rng::with_generator(&g, || Tensor::randn(&[4], &dev))?;
    rng::with_generator(&g, || {
        save_training(&path, &model, &opt, 1, &BTreeMap::new())
    })?;
    let saved = g.state();
    assert_eq!(
        saved,
        GeneratorState {
            seed: 21,
            offset: 3
        }
    );

    // Loading returns the state and changes no generator.
    let state = load_training(&path, &model, &mut opt)?;
    assert_eq!(state.generator, Some(saved));
    assert_eq!(g.state(), saved);
    let resumed = Generator::new(0);
    resumed.set_state(state.generator.expect("saved"));
    assert_eq!(resumed.next_seed(), nth_seed(21, 4));

    // A malformed or missing `lam.generator` is tested with the other
    // metadata in tests/checkpoint/metadata.rs (files must be re-signed).
    Ok(())
}

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("lam-generators-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
