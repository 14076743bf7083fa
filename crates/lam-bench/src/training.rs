//! The training loop shared by the training scenarios (`mlp`, `cnn`, `gpt`,
//! `lstm`, `resnet`), as in `bench/torch_bench.py`: 3 warm-up steps, then
//! `steps` timed steps of zero_grad / forward and loss / backward /
//! optimizer step, the loss read back at the end (inside the timed region,
//! as `loss.item()` is there).
//!
//! With `--amp` (see [`set_mixed_precision`]) each step runs as PyTorch
//! AMP's does: forward and loss under `amp::autocast(F16)`, the loss scaled
//! by a `GradScaler` for backward, the optimizer stepped through the scaler.
//! The result line then names the scenario `NAME-amp`, as
//! `bench/torch_bench_cuda.py --amp` does.
//!
//! With `--infer` (see [`set_inference`]) each step is a forward pass and the
//! loss only, the model in evaluation mode (BatchNorm's running statistics)
//! under `no_grad`, as a deployed model runs: no backward and no optimizer.
//! The result line names the scenario `NAME-infer` (`NAME-amp-infer` with
//! `--amp`: autocast forward passes), as `bench/torch_bench.py --infer`
//! does (`torch.inference_mode()`, `model.eval()`).
//!
//! With `LAM_PROFILE=1` the profiler restarts with the timed steps and its
//! table follows the result line, with the share of the steps' wall time
//! that the ops (and, on a GPU with timestamp queries, the kernels) account for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use lam_core::amp::{self, GradScaler};
use lam_core::nn::Module;
use lam_core::optim::{Adam, Optimizer};
use lam_core::{no_grad, profile, DType, Device, Tensor};

use crate::Outcome;

/// Whether the training scenarios run in mixed precision (`--amp`).
static MIXED_PRECISION: AtomicBool = AtomicBool::new(false);

/// Whether the training scenarios time forward passes only (`--infer`).
static INFERENCE: AtomicBool = AtomicBool::new(false);

/// Makes every training scenario of this run use mixed precision
/// (autocast to `F16` plus a `GradScaler`), as `--amp` asks.
pub fn set_mixed_precision(on: bool) {
    MIXED_PRECISION.store(on, Ordering::Relaxed);
}

/// Makes every training scenario of this run time inference instead: the
/// model in evaluation mode, forward and loss under `no_grad`, as `--infer`
/// asks.
pub fn set_inference(on: bool) {
    INFERENCE.store(on, Ordering::Relaxed);
}

/// What one scenario trains and how its throughput is counted.
pub struct Workload<'a> {
    /// The scenario's name in the result line.
    pub name: &'a str,
    /// The batch size printed in the result line.
    pub batch: usize,
    /// Items one step processes (samples, or tokens for `gpt`).
    pub items_per_step: usize,
    /// What the items are called in the result line: `samples` or `tokens`.
    pub unit: &'a str,
    /// The model, switched to evaluation mode for `--infer`.
    pub model: &'a dyn Module,
}

/// Trains `model` with Adam (lr 1e-3) and cross-entropy on the fixed batch
/// `(x, y)` and prints the result line `lam {name} batch={batch}
/// steps={steps}: ...` with samples/s and the peak resident memory.
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
    let workload = Workload {
        name,
        batch,
        items_per_step: batch,
        unit: "samples",
        model,
    };
    bench_with(&workload, &mut opt, steps, device, || {
        model.forward(x)?.cross_entropy(y)
    })
}

/// Times `steps` steps of `loss` (forward and loss, a scalar), backward and
/// `opt`, after 3 warm-up steps, and prints the result line with
/// `{unit}/s` and the peak resident memory — on a GPU also the peak of
/// live tensor bytes over the timed steps (`gpu_peak_live`) and the device
/// memory held by lam's pool (`gpu_pool`) — and the profile, when enabled.
pub fn bench_with(
    workload: &Workload<'_>,
    opt: &mut dyn Optimizer,
    steps: usize,
    device: &Device,
    loss: impl Fn() -> lam_core::Result<Tensor>,
) -> Outcome {
    let mixed = MIXED_PRECISION.load(Ordering::Relaxed);
    let inference = INFERENCE.load(Ordering::Relaxed);
    let mut scaler = GradScaler::new().enabled(mixed);
    // Forward and loss, under autocast with `--amp`.
    let forward = || match mixed {
        true => {
            let _autocast = amp::autocast(device, DType::F16)?;
            loss()
        }
        false => loss(),
    };
    if inference {
        workload.model.eval();
    }
    let mut run = |n: usize| -> Result<f32, lam_core::Error> {
        let mut last = None;
        for _ in 0..n {
            if inference {
                last = Some(no_grad(forward)?);
                continue;
            }
            opt.zero_grad();
            let l = forward()?;
            scaler.scale(&l)?.backward()?;
            scaler.step(opt)?;
            scaler.update()?;
            // Only the value: a loss keeps its step's whole graph (every
            // tensor its gradient rules saved) alive until it drops, which
            // PyTorch's backward frees; held into the next step, it would
            // double the live memory.
            last = Some(l.detach());
        }
        match last {
            Some(l) => l.item(),
            None => Ok(f32::NAN),
        }
    };
    if mixed && !amp::autocast(device, DType::F16)?.enabled() {
        eprintln!("lam-bench: {device} has no native f16, so --amp trains in f32 here");
    }
    run(3)?;
    device.synchronize()?;
    // The profiler and the peak of live bytes measure exactly the timed
    // steps (the profiler's reset is a no-op when it is off).
    profile::reset();
    device.reset_peak_stats();
    let start = Instant::now();
    let loss = run(steps)?;
    let elapsed = start.elapsed();
    let report = profile::is_enabled().then(profile::report);
    let dt = elapsed.as_secs_f64();
    let items = (steps * workload.items_per_step) as f64 / dt;
    let mut peak = match crate::status_mib("VmHWM") {
        Some(mib) => format!(" peak_rss={mib:.1} MiB"),
        None => String::new(),
    };
    if device.is_gpu() {
        // The pool keeps every buffer the steps needed, so live plus pooled
        // bytes after them is the device memory the steps took at their peak
        // (PyTorch's reserved memory); the peak of live bytes is what its
        // max_memory_allocated counts.
        let s = device.stats();
        let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        peak.push_str(&format!(
            " gpu_peak_live={:.1} MiB gpu_pool={:.1} MiB",
            mib(s.bytes_live_peak),
            mib(s.bytes_live + s.bytes_pooled)
        ));
    }
    let Workload {
        name, batch, unit, ..
    } = workload;
    let name = format!(
        "{name}{}{}",
        if mixed { "-amp" } else { "" },
        if inference { "-infer" } else { "" }
    );
    println!(
        "lam {name} batch={batch} steps={steps}: {:.1} steps/s {items:.0} {unit}/s loss={loss:.4}{peak}",
        steps as f64 / dt
    );
    if let Some(report) = report {
        print_profile(&name, &report, elapsed);
    }
    Ok(())
}

/// The profiler's table and what share of the steps' wall time it covers.
fn print_profile(name: &str, report: &profile::ProfileReport, steps_time: std::time::Duration) {
    println!("{report}");
    let share = |part: std::time::Duration| 100.0 * part.as_secs_f64() / steps_time.as_secs_f64();
    let mut line = format!(
        "lam {name} profile: ops account for {:.1}% of the measured step time ({:.1} of {:.1} ms)",
        share(report.host_total()),
        report.host_total().as_secs_f64() * 1e3,
        steps_time.as_secs_f64() * 1e3,
    );
    if !report.gpu_total().is_zero() {
        line.push_str(&format!(
            "; GPU kernels (timestamps) for {:.1}%",
            share(report.gpu_total())
        ));
    }
    println!("{line}");
}
