//! `Trainer::distributed` on a local group of two CPU replicas: the same
//! metrics everywhere, files from rank 0 only, resume on every replica,
//! and a failing replica that stops the other with an error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lam::nn::{Linear, Module, ReLU, Sequential};
use lam::optim::Sgd;
use lam::prelude::*;
use lam::Generator;
use lam_dist::{launch, DdpConfig, DeviceSpec, DistributedDataParallel, LaunchConfig, Replica};
use lam_train::data::{DataLoader, Dataset, TensorDataset};
use lam_train::trainer::{FitReport, TrainConfig, Trainer};

/// A fresh directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lam-dist-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dataset(n: usize, seed: u64) -> Arc<dyn Dataset> {
    let g = Generator::new(seed);
    let cpu = Device::cpu();
    let x = Tensor::randn_with(&[n, 4], &cpu, &g).unwrap();
    let y = Tensor::randn_with(&[n, 2], &cpu, &g).unwrap();
    Arc::new(TensorDataset::new(&x, &y).unwrap())
}

fn two_cpus() -> LaunchConfig {
    LaunchConfig::from_env()
        .unwrap()
        .devices(vec![DeviceSpec::Cpu, DeviceSpec::Cpu])
        .timeout(Duration::from_secs(30))
}

/// One replica's run: `epochs` epochs, checkpoints in `dir`, history at
/// `history_r{rank}.json`; the loss fails on rank 1's `fail_at`-th call.
fn fit(
    replica: Replica,
    dir: &Path,
    epochs: u64,
    resume: bool,
    fail_at: Option<usize>,
) -> Result<FitReport> {
    let device = replica.device().clone();
    let model = lam::rng::with_generator(&Generator::new(3), || -> Result<Sequential> {
        Ok(Sequential::new()
            .add(Linear::new(4, 8, &device)?)
            .add(ReLU)
            .add(Linear::new(8, 2, &device)?))
    })?;
    let ddp = DistributedDataParallel::new(model, replica.comm(), DdpConfig::default())?;
    let mut opt = Sgd::new(ddp.parameters(), 0.05)?;
    let train = DataLoader::from_arc(dataset(30, 1), 4, &device)?
        .shuffle(true)
        .distributed(replica.sampler()?);
    let val = DataLoader::from_arc(dataset(11, 2), 4, &device)?.distributed(replica.sampler()?);
    let calls = AtomicUsize::new(0);
    let rank = replica.rank();
    let loss = move |out: &Tensor, y: &Tensor| {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        if rank == 1 && Some(n) == fail_at {
            return Err(Error::invalid("loss", "rank 1 fails on purpose"));
        }
        lam::loss::mse_loss(out, y)
    };
    let config = TrainConfig {
        epochs,
        quiet: true,
        resume,
        checkpoint_dir: Some(dir.to_path_buf()),
        history_path: Some(dir.join(format!("history_r{rank}.json"))),
        ..TrainConfig::default()
    };
    let report = Trainer::new(&ddp, &mut opt, loss)
        .config(config)
        .distributed(replica.comm().clone())
        .fit(&train, Some(&val));
    report
}

#[test]
fn replicas_agree_on_metrics_rank_0_writes_and_every_replica_resumes() {
    let dir = Scratch::new("trainer");
    let reports = launch(&two_cpus(), |r| fit(r, &dir.0, 2, false, None)).unwrap();
    let losses = |r: &FitReport| -> Vec<(f64, Option<f64>)> {
        r.history
            .records
            .iter()
            .map(|e| (e.train_loss, e.val_loss))
            .collect()
    };
    assert_eq!(losses(&reports[0]), losses(&reports[1]));
    assert_eq!(reports[0].history.records.len(), 2);
    assert!(dir.0.join("history_r0.json").exists());
    assert!(
        !dir.0.join("history_r1.json").exists(),
        "rank 1 wrote a file"
    );
    assert!(dir.0.join("last.safetensors").exists());

    let resumed = launch(&two_cpus(), |r| fit(r, &dir.0, 3, true, None)).unwrap();
    for r in &resumed {
        assert_eq!(r.resumed_from, Some(2));
        assert_eq!(r.history.records.len(), 3);
    }
    assert_eq!(losses(&resumed[0]), losses(&resumed[1]));
    assert_eq!(losses(&resumed[0])[..2], losses(&reports[0])[..]);

    // The same run uninterrupted ends where the resumed one ends.
    let other = Scratch::new("trainer-straight");
    let straight = launch(&two_cpus(), |r| fit(r, &other.0, 3, false, None)).unwrap();
    assert_eq!(losses(&straight[0]), losses(&resumed[0]));
}

#[test]
fn a_replica_whose_fit_fails_stops_the_other_with_an_error() {
    let dir = Scratch::new("trainer-fail");
    let started = Instant::now();
    let outcomes: Vec<Result<FitReport>> = std::thread::scope(|s| {
        let comms = lam_dist::local_group(2, Duration::from_secs(30)).unwrap();
        let handles: Vec<_> = comms
            .into_iter()
            .enumerate()
            .map(|(local, comm)| {
                let dir = &dir.0;
                s.spawn(move || {
                    fit(
                        Replica::new(local, Device::cpu(), comm),
                        dir,
                        2,
                        false,
                        Some(3),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let e1 = outcomes[1].as_ref().unwrap_err().to_string();
    assert!(e1.contains("on purpose"), "{e1}");
    let e0 = outcomes[0].as_ref().unwrap_err().to_string();
    assert!(
        e0.contains("distributed") && e0.contains("on purpose"),
        "{e0}"
    );
    // Told at once by the failing replica, not after the 30 s timeout.
    assert!(started.elapsed() < Duration::from_secs(10));
}
