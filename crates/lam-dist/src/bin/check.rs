//! `lam-dist-check`: the program lam-dist's distributed tests run, under
//! `mpirun -np N` (the `mpi` feature) or as a local group
//! (`LAM_DIST_DEVICES=cpu,cpu`). Every replica runs the same scenario;
//! each prints one line starting with `OK` when its checks hold, and the
//! process exits non-zero otherwise.
//!
//! - `equiv [cpu|gpu] [plain|syncbn]`: trains an MLP for two epochs of
//!   data-parallel SGD, each replica on its [`DistributedSampler`] share
//!   with per-replica batch B, over a data set that does not divide
//!   evenly (the sampler pads it). Checks that every replica's weights are
//!   bitwise equal, and (rank 0) that one process training the same model
//!   on the concatenated batches (batch N·B) reaches the same weights
//!   within 1e-6 (`plain`) — or, with SyncBatchNorm against BatchNorm over
//!   N·B, within 1e-5 (`syncbn`).
//! - `fault stop|exit`: rank 1 stops mid-training (`stop`: its training
//!   fails and it stays alive without reaching another collective;
//!   `exit`: its process exits). With `stop` the other replicas must fail
//!   with an error within `LAM_DIST_TIMEOUT` plus 5 s; they print how long
//!   it took. With `exit` the launcher ends the job.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lam::DeviceExt;
use lam_core::loss::mse_loss;
use lam_core::nn::{BatchNorm1d, Linear, Module, ReLU, Sequential};
use lam_core::optim::{Optimizer, Sgd};
use lam_core::{DType, Device, Error, Generator, Result, Tensor};
use lam_dist::{
    launch, Communicator, DdpConfig, DeviceSpec, DistributedDataParallel, LaunchConfig, Launcher,
    Reduction, Replica, SyncBatchNorm,
};
use lam_train::data::{DataLoader, Dataset, DistributedSampler, TensorDataset};

/// Per-replica batch size.
const BATCH: usize = 4;
/// Batches per replica per epoch.
const STEPS: usize = 3;
const EPOCHS: u64 = 2;
const FEATURES: usize = 6;
const HIDDEN: usize = 16;
const OUTPUTS: usize = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["equiv", rest @ ..] => equivalence(rest),
        ["fault", mode] => fault(mode),
        _ => Err(Error::invalid(
            "lam-dist-check",
            format!(
                "expected `equiv [cpu|gpu] [plain|syncbn]` or `fault stop|exit`, found {args:?}"
            ),
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lam-dist-check: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The launch configuration: the environment's, with `device` for every
/// replica when none is listed there.
fn config(device: DeviceSpec) -> Result<LaunchConfig> {
    let config = LaunchConfig::from_env()?;
    Ok(match config.devices.is_empty() {
        true => config.clone().devices(vec![device]),
        false => config,
    })
}

fn equivalence(args: &[&str]) -> Result<()> {
    let device: DeviceSpec = args.first().copied().unwrap_or("cpu").parse()?;
    let sync_bn = match args.get(1).copied().unwrap_or("plain") {
        "plain" => false,
        "syncbn" => true,
        other => {
            return Err(Error::invalid(
                "equiv",
                format!("expected plain or syncbn, found {other:?}"),
            ))
        }
    };
    launch(&config(device)?, |replica| {
        let report = train_and_compare(&replica, sync_bn)?;
        println!(
            "OK equiv rank {} of {}: {report}",
            replica.rank(),
            replica.world_size()
        );
        Ok(())
    })
    .map(|_| ())
}

/// An MLP; with a (Sync)BatchNorm after its first layer when `bn`.
fn model(device: &Device, bn: Option<&Communicator>) -> Result<Sequential> {
    let mut m = Sequential::new().add(Linear::new(FEATURES, HIDDEN, device)?);
    if let Some(comm) = bn {
        m = m.add(SyncBatchNorm::new(BatchNorm1d::new(HIDDEN, device)?, comm));
    }
    Ok(m.add(ReLU).add(Linear::new(HIDDEN, OUTPUTS, device)?))
}

/// A data set of `n` samples, the same on every replica.
fn data(n: usize) -> Result<TensorDataset> {
    let g = Generator::new(11);
    let cpu = Device::cpu();
    let x = Tensor::randn_with(&[n, FEATURES], &cpu, &g)?;
    let y = Tensor::randn_with(&[n, OUTPUTS], &cpu, &g)?;
    TensorDataset::new(&x, &y)
}

/// Trains on this replica's share, checks the replicas agree bitwise and
/// (rank 0) matches one process on the whole batches.
fn train_and_compare(replica: &Replica, sync_bn: bool) -> Result<String> {
    let (comm, device, world) = (replica.comm(), replica.device(), replica.world_size());
    // Uneven unless world is 1: the sampler pads the last world−1 samples.
    let n = world * BATCH * STEPS - (world - 1);
    let dataset: Arc<dyn Dataset> = Arc::new(data(n)?);
    let loader = |rank: usize| -> Result<DataLoader> {
        let sampler = DistributedSampler::new(world, rank)?;
        Ok(DataLoader::from_arc(dataset.clone(), BATCH, device)?
            .shuffle(true)
            .seed(5)
            .distributed(sampler))
    };
    let ddp = DistributedDataParallel::new(
        model(device, sync_bn.then_some(comm))?,
        comm,
        // Small buckets: several per pass, so the ordering is exercised.
        DdpConfig::default().bucket_cap_mb(0.0005),
    )?;
    // The single-process reference starts from rank 0's broadcast weights.
    let reference = match replica.is_main() {
        true => Some(copy_of(&ddp, device, sync_bn)?),
        false => None,
    };
    let mut opt = Sgd::new(ddp.parameters(), 0.1)?;
    let train = loader(replica.rank())?;
    for epoch in 0..EPOCHS {
        for batch in train.epoch(epoch) {
            let (x, y) = batch?;
            opt.zero_grad();
            mse_loss(&ddp.forward(&x)?, &y)?.backward()?;
            opt.step()?;
        }
    }
    let weights = flat(&ddp)?;
    check_bitwise(&weights, comm)?;
    let stats = ddp.stats();
    let mut report = format!(
        "on {}: {} steps, {} buckets ({} bytes) per step, weights bitwise equal across replicas",
        device.name(),
        stats.steps,
        stats.buckets,
        stats.bytes_per_step
    );
    if let Some(single) = reference {
        let loaders = (0..world).map(loader).collect::<Result<Vec<_>>>()?;
        let expected = train_single(&single, &loaders)?;
        let diff = weights
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let tolerance = if sync_bn { 1e-5 } else { 1e-6 };
        if diff > tolerance {
            return Err(Error::Distributed(format!(
                "{world} replicas with batch {BATCH} differ from one process with batch {} by \
                 {diff:e} (tolerance {tolerance:e})",
                world * BATCH
            )));
        }
        report += &format!(
            "; one process with batch {}: max |Δw| = {diff:e} (≤ {tolerance:e})",
            world * BATCH
        );
    }
    Ok(report)
}

/// A plain (BatchNorm, not SyncBatchNorm) model with `ddp`'s current state.
fn copy_of(
    ddp: &DistributedDataParallel<Sequential>,
    device: &Device,
    bn: bool,
) -> Result<Sequential> {
    let mut single = Sequential::new().add(Linear::new(FEATURES, HIDDEN, device)?);
    if bn {
        single = single.add(BatchNorm1d::new(HIDDEN, device)?);
    }
    let single = single.add(ReLU).add(Linear::new(HIDDEN, OUTPUTS, device)?);
    for ((name, to), (_, from)) in single.state_dict().iter().zip(ddp.state_dict()) {
        if to.dims() != from.dims() {
            return Err(Error::shape(
                "copy_of",
                format!("{:?} for {name}", to.dims()),
                from.dims(),
            ));
        }
        // A copy: `set_data` shares a dense value's buffer (as PyTorch's
        // `p.data = value`), and the optimizers update parameters in place.
        let copy = match from.dtype() {
            DType::I32 => Tensor::from_vec_i32(from.to_vec_i32()?, from.dims(), device)?,
            _ => Tensor::from_vec(from.to_vec()?, from.dims(), device)?.to_dtype(from.dtype())?,
        };
        to.set_data(&copy)?;
    }
    Ok(single)
}

/// One process training `model` on the batches of every replica's loader
/// concatenated (batch N·B), the same epochs.
fn train_single(model: &Sequential, loaders: &[DataLoader]) -> Result<Vec<f32>> {
    let mut opt = Sgd::new(model.parameters(), 0.1)?;
    for epoch in 0..EPOCHS {
        let mut epochs: Vec<_> = loaders.iter().map(|l| l.epoch(epoch)).collect();
        for _ in 0..loaders[0].num_batches() {
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for e in &mut epochs {
                let (x, y) = e
                    .next()
                    .ok_or_else(|| Error::Distributed("a replica's loader ran short".into()))??;
                xs.push(x);
                ys.push(y);
            }
            opt.zero_grad();
            let out = model.forward(&Tensor::cat(&xs, 0)?)?;
            mse_loss(&out, &Tensor::cat(&ys, 0)?)?.backward()?;
            opt.step()?;
        }
    }
    flat(model)
}

/// Every parameter's values, in model order.
fn flat(model: &dyn Module) -> Result<Vec<f32>> {
    let mut all = Vec::new();
    for p in model.parameters() {
        all.extend(p.to_vec()?);
    }
    Ok(all)
}

/// An error unless every replica holds exactly these bits.
fn check_bitwise(weights: &[f32], comm: &Communicator) -> Result<()> {
    let print = weights.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    });
    let (hi, lo) = ((print >> 32) as f64, (print & 0xffff_ffff) as f64);
    let r = comm.reduce_f64(vec![hi, lo, -hi, -lo], Reduction::Max)?;
    if r[0] != -r[2] || r[1] != -r[3] {
        return Err(Error::Distributed(format!(
            "rank {}: the replicas' weights differ after training",
            comm.rank()
        )));
    }
    Ok(())
}

/// The fault scenario (see the module docs).
fn fault(mode: &str) -> Result<()> {
    let exit = match mode {
        "stop" => false,
        "exit" => true,
        other => {
            return Err(Error::invalid(
                "fault",
                format!("expected stop or exit, found {other:?}"),
            ))
        }
    };
    let config = config(DeviceSpec::Cpu)?;
    let timeout = config.timeout;
    let outcome = launch(&config, |replica| {
        let comm = replica.comm();
        let ddp = DistributedDataParallel::new(
            model(replica.device(), None)?,
            comm,
            DdpConfig::default(),
        )?;
        let mut opt = Sgd::new(ddp.parameters(), 0.1)?;
        let x = Tensor::ones(&[BATCH, FEATURES], replica.device())?;
        let y = Tensor::zeros(&[BATCH, OUTPUTS], replica.device())?;
        let mut last_step = Instant::now();
        for step in 0..1000 {
            if replica.rank() == 1 && step == 3 {
                if exit {
                    eprintln!("rank 1: exiting the process at step {step}, on purpose");
                    std::process::exit(3);
                }
                return Err(Error::invalid(
                    "fault",
                    format!("rank 1 stops at step {step}, on purpose"),
                ));
            }
            opt.zero_grad();
            let outcome = mse_loss(&ddp.forward(&x)?, &y).and_then(|l| l.backward());
            if let Err(e) = outcome {
                let waited = last_step.elapsed();
                let limit = timeout + Duration::from_secs(5);
                if waited > limit {
                    return Err(Error::Distributed(format!(
                        "rank {} noticed the failure only after {:.1} s (limit {:.1} s)",
                        replica.rank(),
                        waited.as_secs_f64(),
                        limit.as_secs_f64()
                    )));
                }
                println!(
                    "OK fault rank {}: step {step} failed {:.1} s after the last one \
                     (timeout {:.1} s): {e}",
                    replica.rank(),
                    waited.as_secs_f64(),
                    timeout.as_secs_f64()
                );
                return Ok(());
            }
            opt.step()?;
            last_step = Instant::now();
        }
        Err(Error::Distributed(
            "training went on although rank 1 stopped".into(),
        ))
    });
    if let Err(e) = &outcome {
        // The stopped rank stays alive, reaching no collective, until the
        // launcher ends the job once the others have noticed.
        if Launcher::detect() != Launcher::Plain && e.to_string().contains("on purpose") {
            std::thread::sleep(timeout + Duration::from_secs(30));
        }
    }
    outcome.map(|_| ())
}
