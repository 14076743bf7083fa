//! A trainer's own generator: trainers on two threads at once end bitwise
//! where each ends alone, a run resumed while another thread draws random
//! numbers ends bitwise where a lone uninterrupted run ends, checkpoints
//! carry the generator's state, and loaders draw from the generator they
//! are given or the current one.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{blobs, cpu, weight_bits, Scratch};
use lam::checkpoint::load_training;
use lam::loss::cross_entropy;
use lam::nn::{Dropout, Linear, Module, ReLU, Sequential};
use lam::optim::{Adam, StepLr};
use lam::prelude::*;
use lam::rng::{self, Generator};
use lam_train::data::{DataLoader, HostBatch};
use lam_train::trainer::*;

type Bits = Vec<(String, Vec<u32>)>;

#[test]
fn two_trainers_on_two_threads_match_one_after_the_other() -> Result<()> {
    let alone = [train_job(1, None)?, train_job(2, None)?];
    assert_ne!(alone[0], alone[1]);
    let turnstile = Arc::new(Turnstile::default());
    let together = std::thread::scope(|s| {
        let a = s.spawn(|| train_job(1, Some(turnstile.clone())));
        let b = s.spawn(|| train_job(2, Some(turnstile.clone())));
        [a.join().expect("thread 1"), b.join().expect("thread 2")]
    });
    let [a, b] = together;
    assert!(
        a? == alone[0],
        "trainer 1 differs when run beside trainer 2"
    );
    assert!(
        b? == alone[1],
        "trainer 2 differs when run beside trainer 1"
    );
    Ok(())
}

#[test]
fn a_resume_while_another_thread_draws_ends_bitwise_where_a_lone_run_ends() -> Result<()> {
    let dev = cpu();
    let (dir_a, dir_b) = (Scratch::new("gen-resume-a"), Scratch::new("gen-resume-b"));
    let config = |dir: &Scratch| TrainConfig {
        epochs: 5,
        seed: 42,
        quiet: true,
        sync_every: 3,
        checkpoint_dir: Some(dir.0.clone()),
        resume: true,
        ..TrainConfig::default()
    };
    let val = DataLoader::new(blobs(10, 6), 16, &dev)?;
    let fit = |model: &Sequential, dir: &Scratch, crash: bool| -> Result<FitReport> {
        let mut opt = Adam::new(model.parameters(), 0.01)?;
        let mut trainer = Trainer::new(model, &mut opt, cross_entropy)
            .config(config(dir))
            .scheduler(StepLr::new(0.01, 2, 0.5)?);
        if crash {
            trainer = trainer.callback(Crash);
        }
        trainer.fit(&noisy_loader(&dev)?, Some(&val))
    };

    // Uninterrupted, alone.
    let model_a = dropout_net(7)?;
    let full = fit(&model_a, &dir_a, false)?;

    // Crashed in epoch 3 and resumed into a fresh model, while another
    // thread reseeds the default generator and draws from it throughout.
    let stop = AtomicBool::new(false);
    let draws = AtomicU64::new(0);
    let (model_c, resumed) = std::thread::scope(|s| -> Result<_> {
        s.spawn(|| {
            let dev = cpu();
            let mask = Dropout::new(0.5).expect("p");
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                manual_seed(i);
                let x = Tensor::randn(&[64], &dev).expect("randn");
                mask.forward(&x).expect("dropout");
                draws.fetch_add(1, Ordering::Relaxed);
            }
        });
        let _stop = StopOnDrop(&stop);
        let model_b = dropout_net(7)?;
        let err = fit(&model_b, &dir_b, true).expect_err("the callback crashes the run");
        assert!(err.to_string().contains("simulated crash"), "{err}");
        let model_c = dropout_net(999)?;
        let resumed = fit(&model_c, &dir_b, false)?;
        Ok((model_c, resumed))
    })?;
    assert!(
        draws.load(Ordering::Relaxed) > 0,
        "the other thread drew nothing"
    );
    assert_eq!(resumed.resumed_from, Some(2));
    let losses = |r: &FitReport| {
        r.history
            .records
            .iter()
            .map(|e| (e.train_loss, e.val_loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&resumed), losses(&full));
    assert!(
        weight_bits(&model_c) == weight_bits(&model_a),
        "the resumed weights differ"
    );
    Ok(())
}

#[test]
fn checkpoints_carry_the_trainers_generator_and_its_seed_repeats_a_run() -> Result<()> {
    let dev = cpu();
    let dir = Scratch::new("gen-state");
    let g = Generator::new(99);
    let model = dropout_net(3)?;
    let mut opt = Adam::new(model.parameters(), 0.01)?;
    let config = TrainConfig {
        epochs: 2,
        quiet: true,
        checkpoint_dir: Some(dir.0.clone()),
        ..TrainConfig::default()
    };
    Trainer::new(&model, &mut opt, cross_entropy)
        .config(config)
        .generator(&g)
        .fit(&noisy_loader(&dev)?, None)?;
    // Dropout, shuffles and transforms drew from it: one seed per loader
    // epoch and one per dropout mask.
    let batches = noisy_loader(&dev)?.num_batches() as u64;
    assert_eq!(g.state().seed, 99);
    assert_eq!(g.state().offset, 2 * (1 + batches));
    let other = dropout_net(4)?;
    let mut other_opt = Adam::new(other.parameters(), 0.01)?;
    let saved = load_training(dir.path("last.safetensors"), &other, &mut other_opt)?;
    assert_eq!(saved.generator, Some(g.state()));

    // Without one given, a trainer seeds its own from the config's seed.
    let run = |seed: u64| -> Result<Bits> {
        let model = dropout_net(3)?;
        let mut opt = Adam::new(model.parameters(), 0.01)?;
        let config = TrainConfig {
            epochs: 2,
            seed,
            quiet: true,
            ..TrainConfig::default()
        };
        Trainer::new(&model, &mut opt, cross_entropy)
            .config(config)
            .fit(&noisy_loader(&dev)?, None)?;
        Ok(weight_bits(&model))
    };
    assert_eq!(run(5)?, run(5)?);
    assert_ne!(run(5)?, run(6)?);
    Ok(())
}

#[test]
fn loaders_draw_one_seed_an_epoch_from_their_generator_or_the_current_one() -> Result<()> {
    let dev = cpu();
    let g = Generator::new(3);
    let own = noisy_loader(&dev)?.generator(&g);
    let first = host_epoch(&own)?;
    let second = host_epoch(&own)?;
    assert_eq!(g.state().offset, 2);
    assert_ne!(first, second, "each epoch draws a new seed");

    // A loader without one takes the current generator's seed.
    let scope = Generator::new(3);
    let plain = noisy_loader(&dev)?;
    assert_eq!(rng::with_generator(&scope, || host_epoch(&plain))?, first);
    assert_eq!(scope.state().offset, 1);

    // A fixed seed draws nothing, and neither does an epoch without
    // shuffle or transform.
    let fixed = noisy_loader(&dev)?.seed(3);
    let in_order = DataLoader::new(blobs(4, 1), 4, &dev)?;
    rng::with_generator(&scope, || -> Result<()> {
        assert_eq!(host_epoch(&fixed)?, host_epoch(&fixed)?);
        in_order.epoch(0).count();
        Ok(())
    })?;
    assert_eq!(scope.state().offset, 1);
    Ok(())
}

/// Linear → ReLU → Dropout → Linear, initialised from a generator seeded with `seed`.
fn dropout_net(seed: u64) -> Result<Sequential> {
    let dev = cpu();
    rng::with_generator(&Generator::new(seed), || {
        Ok(Sequential::new()
            .add(Linear::new(2, 12, &dev)?)
            .add(ReLU)
            .add(Dropout::new(0.2)?)
            .add(Linear::new(12, 3, &dev)?))
    })
}

/// Shuffled blobs with seeded noise, no seed of its own: its shuffles and
/// transforms draw from the current generator.
fn noisy_loader(dev: &Device) -> Result<DataLoader> {
    let noise = |b: &mut HostBatch, seed: u64| -> Result<()> {
        for (i, x) in b.x.as_f32_mut()?.iter_mut().enumerate() {
            *x += 0.01 * lam::rng::standard_normal(seed, i as u32);
        }
        Ok(())
    };
    Ok(DataLoader::new(blobs(30, 5), 8, dev)?
        .shuffle(true)
        .prefetch(0)
        .transform(noise))
}

/// The batches of one epoch of `loader`, read back.
fn host_epoch(loader: &DataLoader) -> Result<Vec<(Vec<f32>, Vec<i32>)>> {
    loader
        .epoch(0)
        .map(|b| {
            let (x, y) = b?;
            Ok((x.to_vec()?, y.to_vec_i32()?))
        })
        .collect()
}

/// Trains a model initialised from `seed` with a trainer seeded with
/// `seed`, its loaders without seeds; with a turnstile, each batch waits
/// for the other trainer's, so the two interleave batch by batch.
fn train_job(seed: u64, turnstile: Option<Arc<Turnstile>>) -> Result<Bits> {
    let dev = cpu();
    let model = dropout_net(seed)?;
    let mut opt = Adam::new(model.parameters(), 0.01)?;
    let config = TrainConfig {
        epochs: 3,
        seed,
        quiet: true,
        sync_every: 2,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&model, &mut opt, cross_entropy).config(config);
    if let Some(t) = turnstile {
        trainer = trainer.callback(Lockstep(t));
    }
    let val = DataLoader::new(blobs(10, 6), 16, &dev)?;
    trainer.fit(&noisy_loader(&dev)?, Some(&val))?;
    Ok(weight_bits(&model))
}

/// Fails at batch 2 of epoch 3, as a killed process would lose that epoch.
struct Crash;

impl Callback for Crash {
    fn on_batch_end(&mut self, epoch: u64, batch: usize) -> Result<()> {
        if epoch == 3 && batch == 2 {
            return Err(Error::invalid("test", "simulated crash"));
        }
        Ok(())
    }
}

/// Waits at the turnstile after every batch.
struct Lockstep(Arc<Turnstile>);

impl Callback for Lockstep {
    fn on_batch_end(&mut self, _epoch: u64, _batch: usize) -> Result<()> {
        self.0.wait()
    }
}

/// A barrier for two threads whose wait gives up after 60 s, so that a
/// trainer that stopped early fails the test instead of hanging it.
#[derive(Default)]
struct Turnstile {
    /// (threads waiting, generation)
    state: Mutex<(usize, u64)>,
    turned: Condvar,
}

impl Turnstile {
    fn wait(&self) -> Result<()> {
        let mut state = self.state.lock().expect("lock");
        let generation = state.1;
        state.0 += 1;
        if state.0 == 2 {
            *state = (0, generation + 1);
            self.turned.notify_all();
            return Ok(());
        }
        let (_state, waited) = self
            .turned
            .wait_timeout_while(state, Duration::from_secs(60), |s| s.1 == generation)
            .expect("lock");
        if waited.timed_out() {
            return Err(Error::invalid("test", "the other trainer stopped"));
        }
        Ok(())
    }
}

/// Tells the drawing thread to stop, also when the test fails early.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
