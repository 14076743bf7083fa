//! Data-parallel step time, split into computation and the communication
//! it does not hide: `ddp MODEL BATCH STEPS`, MODEL one of `mlp`, `cnn`
//! (the scenarios of the same names) and `transformer` (two encoder
//! layers, d_model 128, 4 heads, feed-forward 512, on sequences of 32,
//! then a linear classifier of the flattened sequence). Each replica
//! trains on its own fixed batch of BATCH samples with Adam under
//! lam-dist's DistributedDataParallel (25 MiB buckets, PyTorch's default).
//!
//! Run it as many replicas as wanted — `mpirun -np 4 lam-bench ddp mlp 64
//! 20` (built with `--features mpi`), or one per device of this process
//! with `LAM_DIST_DEVICES=cpu,cpu` — or alone for the one-replica baseline.
//! Rank 0 prints one line: the mean step time (the slowest replica's),
//! `compute` (the step less the exposed part), `exposed comm` (the time the
//! end of backward waited for all-reduce results), the all-reduce time on
//! the communication thread per step, and the share of it hidden behind
//! backward; then what the ring all-reduce model predicts for the
//! gradients' bytes over 8 and 64 replicas at 100 Gb/s (see ARCHITECTURE.md).

use std::time::{Duration, Instant};

use lam_core::nn::{
    Flatten, Linear, Module, Sequential, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use lam_core::optim::{Adam, Optimizer};
use lam_core::{manual_seed, Device, Result, Tensor};
use lam_dist::{
    launch, DdpConfig, DdpStats, DeviceSpec, DistributedDataParallel, LaunchConfig, Reduction,
    Replica,
};

use crate::{arg, cnn, mlp, Outcome};

/// `ddp MODEL BATCH STEPS`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let name: String = arg(args, 0, "MODEL (mlp, cnn or transformer)")?;
    let batch: usize = arg(args, 1, "BATCH")?;
    let steps: usize = arg(args, 2, "STEPS")?;
    if !matches!(name.as_str(), "mlp" | "cnn" | "transformer") {
        return Err(
            format!("ddp: expected a MODEL of mlp, cnn or transformer, found {name:?}").into(),
        );
    }
    let mut config = LaunchConfig::from_env()?;
    if config.devices.is_empty() {
        let spec = match device.is_gpu() {
            true => DeviceSpec::Gpu(None),
            false => DeviceSpec::Cpu,
        };
        config = config.devices(vec![spec]);
    }
    launch(&config, |replica| {
        replica_run(&replica, &name, batch, steps)
    })?;
    Ok(())
}

/// The model named `name`, and a batch of `batch` inputs and labels for it.
fn workload(name: &str, batch: usize, device: &Device) -> Result<(Sequential, Tensor, Tensor)> {
    let (model, x) = match name {
        "mlp" => (mlp::model(device)?, Tensor::randn(&[batch, 784], device)?),
        "cnn" => (
            cnn::model(device)?,
            Tensor::randn(&[batch, 1, 28, 28], device)?,
        ),
        _ => (
            transformer(device)?,
            Tensor::randn(&[batch, 32, 128], device)?,
        ),
    };
    Ok((model, x, Tensor::randint(0, 10, &[batch], device)?))
}

/// Two encoder layers over `[batch, 32, 128]`, then 32·128 → 10.
fn transformer(device: &Device) -> Result<Sequential> {
    let layer = || {
        let config = TransformerEncoderLayerConfig {
            dim_feedforward: 512,
            dropout: 0.0,
            batch_first: true,
            ..TransformerEncoderLayerConfig::default()
        };
        TransformerEncoderLayer::with_config(128, 4, config, device)
    };
    Ok(Sequential::new()
        .add(layer()?)
        .add(layer()?)
        .add(Flatten::new())
        .add(Linear::new(32 * 128, 10, device)?))
}

fn replica_run(replica: &Replica, name: &str, batch: usize, steps: usize) -> Result<()> {
    let (comm, device) = (replica.comm(), replica.device());
    // The same model everywhere (DDP copies rank 0's anyway), its own data.
    manual_seed(0);
    let (model, _, _) = workload(name, 1, device)?;
    manual_seed(1 + replica.rank() as u64);
    let (_, x, y) = workload(name, batch, device)?;
    let params: usize = model.parameters().iter().map(Tensor::numel).sum();
    let ddp = DistributedDataParallel::new(model, comm, DdpConfig::default())?;
    let mut opt = Adam::new(ddp.parameters(), 1e-3)?;
    let mut train = |n: usize| -> Result<f32> {
        let mut loss = None;
        for _ in 0..n {
            opt.zero_grad();
            let l = ddp.forward(&x)?.cross_entropy(&y)?;
            l.backward()?;
            opt.step()?;
            loss = Some(l);
        }
        loss.map_or(Ok(f32::NAN), |l| l.item())
    };
    train(3)?;
    device.synchronize()?;
    comm.barrier()?;
    let before = ddp.stats();
    let started = Instant::now();
    train(steps)?;
    device.synchronize()?;
    let wall = started.elapsed().as_secs_f64();
    let spent = difference(ddp.stats(), before);
    let per_step = |d: Duration| d.as_secs_f64() / steps as f64;
    // The slowest replica's step; the replicas' mean of the rest.
    let world = replica.world_size() as f64;
    let slowest = comm.reduce_f64(vec![wall / steps as f64], Reduction::Max)?[0];
    let sums = comm.reduce_f64(
        vec![per_step(spent.exposed), per_step(spent.comm)],
        Reduction::Sum,
    )?;
    let (exposed, busy) = (sums[0] / world, sums[1] / world);
    if replica.is_main() {
        let bytes = spent.bytes_per_step as f64;
        let hidden = match busy > 0.0 {
            true => 100.0 * (1.0 - exposed / busy).clamp(0.0, 1.0),
            false => 100.0,
        };
        println!(
            "lam ddp {name} ranks={} ({}, {}) batch={batch}/rank steps={steps}: step {:.2} ms = \
             compute {:.2} ms + exposed comm {:.2} ms; all-reduce {:.2} ms/step of {:.2} MB in \
             {} bucket(s), {hidden:.0}% hidden behind backward; {params} parameters",
            replica.world_size(),
            comm.kind(),
            device.name(),
            slowest * 1e3,
            (slowest - exposed) * 1e3,
            exposed * 1e3,
            busy * 1e3,
            bytes / 1e6,
            spent.buckets,
        );
        let ring = |n: f64| 2.0 * (n - 1.0) / n * (params as f64 * 4.0) / 12.5e9 * 1e3;
        println!(
            "lam ddp {name} model: ring all-reduce of {:.2} MB at 100 Gb/s takes {:.3} ms over 8 \
             replicas, {:.3} ms over 64 (the bound on exposed comm per step)",
            params as f64 * 4e-6,
            ring(8.0),
            ring(64.0)
        );
    }
    Ok(())
}

/// What `now` has counted since `then`.
fn difference(now: DdpStats, then: DdpStats) -> DdpStats {
    DdpStats {
        steps: now.steps - then.steps,
        comm: now.comm.saturating_sub(then.comm),
        exposed: now.exposed.saturating_sub(then.exposed),
        buffer_sync: now.buffer_sync.saturating_sub(then.buffer_sync),
        buckets_during_backward: now.buckets_during_backward - then.buckets_during_backward,
        ..now
    }
}
