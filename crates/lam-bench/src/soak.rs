//! Memory over a long run: a small MLP (64-128-10, ReLU, cross-entropy,
//! Adam) trained from a lam-train `DataLoader` — a new batch uploaded every
//! step and the loss read back every step, as a real training loop does —
//! printing the process's resident memory (`VmRSS`) and the device's pool
//! every 1,000 steps. After the first report the figures must stay flat: a
//! step that keeps memory shows up here as steady growth long before it
//! exhausts a machine. Not a timed benchmark: the step rate is printed so
//! that a run's length can be planned.
//!
//! The data are 1,000 seeded samples (64 features, 10 classes) in batches
//! of 64, shuffled each epoch: 16 batches per epoch, the last one short, so
//! the run also crosses many epochs and their prefetch threads.

use std::time::Instant;

use lam_core::nn::{Linear, Module, ReLU, Sequential};
use lam_core::optim::{Adam, Optimizer};
use lam_core::{manual_seed, Device};
use lam_train::data::{DataLoader, TensorDataset};

use crate::{arg, Outcome};

/// Steps between two memory reports.
const REPORT_EVERY: usize = 1000;

const SAMPLES: usize = 1000;
const FEATURES: usize = 64;
const CLASSES: usize = 10;
const BATCH: usize = 64;

/// `soak [STEPS]`: 20,000 steps by default on the CPU, 2,000 on a GPU.
pub fn run(args: &[String], device: &Device) -> Outcome {
    let steps: usize = if args.is_empty() {
        if device.is_gpu() {
            2000
        } else {
            20_000
        }
    } else {
        arg(args, 0, "STEPS")?
    };
    manual_seed(0);
    let model = Sequential::new()
        .add(Linear::new(FEATURES, 128, device)?)
        .add(ReLU)
        .add(Linear::new(128, CLASSES, device)?);
    let mut opt = Adam::new(model.parameters(), 1e-3)?;
    let loader = DataLoader::new(dataset()?, BATCH, device)?
        .shuffle(true)
        .seed(7);

    let start = Instant::now();
    let mut first: Option<f64> = None;
    let mut last = 0.0;
    let mut step = 0;
    let mut epoch = 0;
    while step < steps {
        for batch in loader.epoch(epoch) {
            let (x, y) = batch?;
            opt.zero_grad();
            let l = model.forward(&x)?.cross_entropy(&y)?;
            l.backward()?;
            opt.step()?;
            let loss = l.item()?;
            step += 1;
            if step % REPORT_EVERY == 0 || step == steps {
                let rss = crate::status_mib("VmRSS");
                println!(
                    "lam soak step={step}: rss={} {} loss={loss:.4} {:.1} steps/s",
                    rss.map_or("?".into(), |r| format!("{r:.1} MiB")),
                    pools(device),
                    step as f64 / start.elapsed().as_secs_f64()
                );
                if let Some(r) = rss {
                    first.get_or_insert(r);
                    last = r;
                }
            }
            if step == steps {
                break;
            }
        }
        epoch += 1;
    }
    if let Some(first) = first {
        println!(
            "lam soak steps={steps}: rss first={first:.1} MiB last={last:.1} MiB ({:+.1} MiB) {:.1} steps/s",
            last - first,
            steps as f64 / start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Seeded features in [-1, 1) and a label that depends on them (the
/// feature with the largest value among the first ten), so the loss falls.
fn dataset() -> lam_core::Result<TensorDataset> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        // xorshift64*: plenty for synthetic data, and no extra dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    };
    let features: Vec<f32> = (0..SAMPLES * FEATURES).map(|_| uniform()).collect();
    let labels = features
        .chunks(FEATURES)
        .map(|row| {
            let head = &row[..CLASSES];
            let best = (0..CLASSES).fold(0, |b, i| if head[i] > head[b] { i } else { b });
            best as i32
        })
        .collect();
    TensorDataset::from_classes(features, &[FEATURES], labels)
}

/// What the device's pools hold: on a GPU its counters (bytes of live
/// tensors and their peak so far, bytes it keeps besides them, buffers ever
/// created); on the CPU
/// the process-wide vector pool.
fn pools(device: &Device) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let s = device.stats();
    if device.is_gpu() {
        format!(
            "live={:.2} MiB peak_live={:.2} MiB pooled={:.2} MiB buffers_allocated={}",
            mib(s.bytes_live),
            mib(s.bytes_live_peak),
            mib(s.bytes_pooled),
            s.buffers_allocated
        )
    } else {
        let p = lam_cpu::pool_stats();
        format!(
            "pooled={:.2} MiB pool_fresh={} pool_reused={}",
            mib(s.bytes_pooled),
            p.fresh,
            p.reused
        )
    }
}
