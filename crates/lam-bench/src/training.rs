//! The training loop shared by the `mlp` and `cnn` scenarios, as in
//! `bench/torch_bench.py`: 3 warm-up steps, then `steps` timed steps
//! of zero_grad / forward / cross-entropy / backward / Adam step, the loss
//! read back at the end (inside the timed region, as `loss.item()` is there).
//!
//! With `LAM_PROFILE=1` the profiler restarts with the timed steps and its
//! table follows the result line, with the share of the steps' wall time
//! that the ops (and, on a GPU with timestamp queries, the kernels) account for.

use std::time::Instant;

use lam_core::nn::Module;
use lam_core::optim::{Adam, Optimizer};
use lam_core::{profile, Device, Tensor};

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
    // The profiler measures exactly the timed steps (a no-op when it is off).
    profile::reset();
    let start = Instant::now();
    let loss = run(steps)?;
    let elapsed = start.elapsed();
    let report = profile::is_enabled().then(profile::report);
    let dt = elapsed.as_secs_f64();
    let samples = (steps * batch) as f64 / dt;
    let peak = match crate::status_mib("VmHWM") {
        Some(mib) => format!(" peak_rss={mib:.1} MiB"),
        None => String::new(),
    };
    println!(
        "lam {name} batch={batch} steps={steps}: {:.1} steps/s {samples:.0} samples/s loss={loss:.4}{peak}",
        steps as f64 / dt
    );
    if let Some(report) = report {
        print_profile(name, &report, elapsed);
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
