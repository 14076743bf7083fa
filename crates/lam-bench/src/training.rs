//! The training loop shared by the `mlp` and `cnn` scenarios, as in
//! `shared/bench/torch_bench.py`: 3 warm-up steps, then `steps` timed steps
//! of zero_grad / forward / cross-entropy / backward / Adam step, the loss
//! read back at the end (inside the timed region, as `loss.item()` is there).

use std::time::Instant;

use lam_core::nn::Module;
use lam_core::optim::{Adam, Optimizer};
use lam_core::{Device, Tensor};

use crate::Outcome;

/// Trains `model` on the fixed batch `(x, y)` and prints the result line
/// `lam {name} batch={batch} steps={steps}: ...` with the peak resident memory.
pub fn bench(
    name: &str,
    model: &dyn Module,
    x: &Tensor,
    y: &Tensor,
    steps: usize,
    device: &Device,
) -> Outcome {
    let batch = x.dims()[0];
    let mut opt = Adam::new(model.parameters(), 1e-3)?;
    let mut run = |n: usize| -> Result<f32, lam_core::Error> {
        let mut loss = None;
        for _ in 0..n {
            opt.zero_grad();
            let l = model.forward(x)?.cross_entropy(y)?;
            l.backward()?;
            opt.step()?;
            loss = Some(l);
        }
        match loss {
            Some(l) => l.item(),
            None => Ok(f32::NAN),
        }
    };
    run(3)?;
    device.synchronize()?;
    let start = Instant::now();
    let loss = run(steps)?;
    let dt = start.elapsed().as_secs_f64();
    let samples = (steps * batch) as f64 / dt;
    let peak = match peak_rss_mib() {
        Some(mib) => format!(" peak_rss={mib:.1} MiB"),
        None => String::new(),
    };
    println!(
        "lam {name} batch={batch} steps={steps}: {:.1} steps/s {samples:.0} samples/s loss={loss:.4}{peak}",
        steps as f64 / dt
    );
    Ok(())
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`) in MiB,
/// or `None` where that file is missing (not Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
