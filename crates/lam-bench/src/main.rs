//! `lam-bench`: lam's reference workloads, one file per scenario, each
//! printing one line per measurement in the format of
//! `bench/torch_bench.py` (with the prefix `lam`), so the two can be
//! run alternately on the same machine and compared line by line.
//!
//! ```text
//! cargo run --release -p lam-bench -- matmul N|MxKxN ITERS [--device cpu|gpu] [--kernel K] [--precision P] [--dtype f32|f16]
//! cargo run --release -p lam-bench -- matmul-sweep [--device cpu|gpu]
//! cargo run --release -p lam-bench -- elementwise N ITERS [--device cpu|gpu]
//! cargo run --release -p lam-bench -- mlp BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
//! cargo run --release -p lam-bench -- cnn BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
//! cargo run --release -p lam-bench -- gpt BATCH STEPS [--layers N] [--d-model N] [--heads N] [--seq N] [--vocab N] [--device cpu|gpu] [--amp] [--infer]
//! cargo run --release -p lam-bench -- lstm BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
//! cargo run --release -p lam-bench -- resnet BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
//! cargo run --release -p lam-bench -- soak [STEPS] [--device cpu|gpu]
//! mpirun -np 4 target/release/lam-bench ddp mlp|cnn|transformer BATCH STEPS [--device cpu|gpu]
//! cargo run --release -p lam-bench -- int8 IN OUT ITERS [--device cpu|gpu]
//! cargo run --release -p lam-bench -- shrink IN HIDDEN ITERS [--device cpu|gpu]
//! ```
//!
//! `ddp` (in `ddp.rs`) measures data-parallel training: run it under
//! `mpirun` (build with `--features mpi`), as a local group
//! (`LAM_DIST_DEVICES=cpu,cpu`) or alone; it splits the step time into
//! computation and the all-reduce time backward did not hide.
//!
//! `int8` and `shrink` (`deploy.rs`) time the deployment paths against the
//! `f32` ones: a quantized `Linear` at batch sizes 1 to 32, and a layer
//! pair shrunk by structured pruning to half its hidden neurons.
//!
//! The training scenarios (`mlp`, `cnn`, and `gpt`, `lstm`, `resnet`: a
//! decoder-only transformer language model in tokens/s, a 2-layer LSTM
//! classifier and a small ResNet, each in its own file) share the loop of
//! `training.rs`. They also print the process's peak resident memory
//! (`peak_rss`, from `VmHWM`), as `bench/torch_bench.py` does, and on a GPU
//! the peak of live tensor bytes over the timed steps (`gpu_peak_live`,
//! PyTorch's max_memory_allocated) and the device memory lam's pool holds
//! after them (`gpu_pool`, its reserved memory). `soak` is no speed
//! measurement: it trains from a `DataLoader` for many steps and prints the resident memory and the device's pool every
//! 1,000 steps, which must stay flat.
//!
//! `--amp` trains in mixed precision (`training.rs`), as PyTorch AMP.
//! `--infer` times inference instead of training: forward passes and the
//! loss in evaluation mode under `no_grad`, named `NAME-infer`.
//!
//! `LAM_PROFILE=1` adds the profiler's table (time per op and, on GPUs with
//! timestamp queries, per kernel): after the result line of the training scenarios,
//! covering exactly their timed steps; at the end of the run for the others.
//!
//! `--device gpu` takes the best adapter (`LAM_ADAPTER` picks another). On a
//! software adapter such as lavapipe only correctness means anything.

mod cnn;
mod ddp;
mod deploy;
mod elementwise;
mod gpt;
mod lstm;
mod matmul;
mod mlp;
mod resnet;
mod soak;
mod training;

use std::process::ExitCode;

use lam_core::Device;

const USAGE: &str = "usage: lam-bench matmul N|MxKxN ITERS [--device cpu|gpu] [--kernel tile64|tile32|tile128|tile128x64|subgroup|coop|coop128|splitk64|splitk128|auto] [--precision highest|high] [--dtype f32|f16]
       lam-bench matmul-sweep [--device cpu|gpu]
       lam-bench elementwise N ITERS [--device cpu|gpu]
       lam-bench mlp BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
       lam-bench cnn BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
       lam-bench gpt BATCH STEPS [--layers N] [--d-model N] [--heads N] [--seq N] [--vocab N] [--device cpu|gpu] [--amp] [--infer]
       lam-bench lstm BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
       lam-bench resnet BATCH STEPS [--device cpu|gpu] [--amp] [--infer]
       lam-bench soak [STEPS] [--device cpu|gpu]
       lam-bench ddp mlp|cnn|transformer BATCH STEPS [--device cpu|gpu]
       lam-bench int8 IN OUT ITERS [--device cpu|gpu]
       lam-bench shrink IN HIDDEN ITERS [--device cpu|gpu]";

/// What a scenario returns: `Err` carries a message for the user.
type Outcome = Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--amp") {
        args.remove(i);
        training::set_mixed_precision(true);
    }
    if let Some(i) = args.iter().position(|a| a == "--infer") {
        args.remove(i);
        training::set_inference(true);
    }
    let outcome =
        take_device(&mut args).and_then(|device| match args.first().map(String::as_str) {
            Some("matmul") => matmul::run(&args[1..], &device),
            Some("matmul-sweep") => matmul::sweep(&args[1..], &device),
            Some("elementwise") => elementwise::run(&args[1..], &device),
            Some("mlp") => mlp::run(&args[1..], &device),
            Some("cnn") => cnn::run(&args[1..], &device),
            Some("gpt") => gpt::run(&args[1..], &device),
            Some("lstm") => lstm::run(&args[1..], &device),
            Some("resnet") => resnet::run(&args[1..], &device),
            Some("soak") => soak::run(&args[1..], &device),
            Some("ddp") => ddp::run(&args[1..], &device),
            Some("int8") => deploy::int8(&args[1..], &device),
            Some("shrink") => deploy::shrink(&args[1..], &device),
            _ => Err(USAGE.into()),
        });
    // The training scenarios print their own table, restricted to the timed steps.
    let training = matches!(
        args.first().map(String::as_str),
        Some("mlp" | "cnn" | "gpt" | "lstm" | "resnet")
    );
    if !training && outcome.is_ok() {
        lam_core::profile::print_if_enabled();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lam-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Removes `--device NAME` from `args` and returns that device (CPU by default).
fn take_device(args: &mut Vec<String>) -> Result<Device, Box<dyn std::error::Error>> {
    let name = match args.iter().position(|a| a == "--device") {
        None => "cpu".to_string(),
        Some(i) if i + 1 < args.len() => {
            let name = args.remove(i + 1);
            args.remove(i);
            name
        }
        Some(_) => return Err(format!("--device needs a name\n{USAGE}").into()),
    };
    match name.as_str() {
        "cpu" => Ok(lam_cpu::device()),
        "gpu" => {
            let device = lam_wgpu::default_gpu()?;
            eprintln!("lam-bench: device {device}");
            Ok(device)
        }
        other => Err(format!("unknown device {other:?} (known: cpu, gpu)").into()),
    }
}

/// Removes `FLAG VALUE` from `args` and parses the value (`default` when
/// the flag is absent).
fn take_option<T: std::str::FromStr>(
    args: &mut Vec<String>,
    flag: &str,
    default: T,
) -> Result<T, Box<dyn std::error::Error>> {
    let Some(i) = args.iter().position(|a| a == flag) else {
        return Ok(default);
    };
    if i + 1 >= args.len() {
        return Err(format!("{flag} needs a value\n{USAGE}").into());
    }
    let text = args.remove(i + 1);
    args.remove(i);
    text.parse()
        .map_err(|_| format!("{flag} must be a number, found {text:?}").into())
}

/// Parses the positional argument `i` named `what`.
fn arg<T: std::str::FromStr>(
    args: &[String],
    i: usize,
    what: &str,
) -> Result<T, Box<dyn std::error::Error>> {
    let text = args
        .get(i)
        .ok_or_else(|| format!("missing {what}\n{USAGE}"))?;
    text.parse()
        .map_err(|_| format!("{what} must be a number, found {text:?}").into())
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, the
/// resident set; `VmHWM`, its peak) in MiB, or `None` where that file is
/// missing (not Linux).
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
