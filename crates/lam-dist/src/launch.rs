//! [`launch`]: one training program, run as one replica or many, chosen by
//! how it is started — never by changing its code:
//!
//! - under `mpirun`/`mpiexec`/`srun` (their environment variables say so),
//!   this process is one replica of an MPI world, on the device its local
//!   rank picks (needs the `mpi` feature; without it, starting under an MPI
//!   launcher is an error, not a world of separate single trainings);
//! - with `LAM_DIST_DEVICES=gpu:0,gpu:1` (or [`LaunchConfig::devices`]),
//!   one replica per listed device on threads of this process, reducing
//!   through host memory;
//! - otherwise one replica on `LAM_DEVICE`'s device (a world of one).
//!
//! `run` is called once per replica of this process with a [`Replica`]:
//! its rank, device and communicator. A replica that fails tells the
//! others ([`Communicator::abort`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::time::Duration;

use lam::DeviceExt;
use lam_core::{Device, Error, Result};
use lam_train::data::DistributedSampler;

use crate::comm::{local_group, timeout_from_env, Communicator};

/// A device a replica runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// A GPU: `Some(i)` the `i`-th adapter (0 = best, `LAM_ADAPTER`
    /// narrows the list first); `None` the adapter the replica's local
    /// index picks among those of the best kind (one GPU per replica on a
    /// machine with several identical GPUs, all replicas on the one GPU of
    /// a machine with one).
    Gpu(Option<usize>),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    /// `cpu`, `gpu` or `gpu:N`.
    fn from_str(s: &str) -> Result<DeviceSpec> {
        let s = s.trim();
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "gpu" => Ok(DeviceSpec::Gpu(None)),
            _ => s
                .strip_prefix("gpu:")
                .and_then(|n| n.parse().ok())
                .map(|n| DeviceSpec::Gpu(Some(n)))
                .ok_or_else(|| {
                    Error::invalid(
                        "DeviceSpec",
                        format!("expected cpu, gpu or gpu:N, found {s:?}"),
                    )
                }),
        }
    }
}

impl DeviceSpec {
    /// Opens the device for the replica with local index `local`.
    pub fn open(self, local: usize) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::cpu()),
            DeviceSpec::Gpu(index) => {
                let adapters = Device::list();
                let best = adapters
                    .first()
                    .map(|a| (a.backend.clone(), a.device_type.clone()));
                let same_kind = adapters
                    .iter()
                    .filter(|a| Some((a.backend.clone(), a.device_type.clone())) == best)
                    .count()
                    .max(1);
                lam_wgpu::gpu_device(&lam_wgpu::GpuOptions {
                    adapter: std::env::var("LAM_ADAPTER").ok().filter(|s| !s.is_empty()),
                    index: Some(index.unwrap_or(local % same_kind)),
                    ..lam_wgpu::GpuOptions::default()
                })
            }
        }
    }
}

/// How [`launch`] runs (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchConfig {
    /// The devices of the replicas of this process; empty: from the
    /// launcher (MPI) or `LAM_DEVICE` (one replica). Under MPI, replica
    /// with local rank `l` takes `devices[l % len]`.
    pub devices: Vec<DeviceSpec>,
    /// How long a collective may take before the replicas give up.
    pub timeout: Duration,
}

impl LaunchConfig {
    /// From the environment: `LAM_DIST_DEVICES` (a comma-separated list of
    /// `cpu`, `gpu`, `gpu:N`) and `LAM_DIST_TIMEOUT` (seconds).
    pub fn from_env() -> Result<LaunchConfig> {
        let devices = match std::env::var("LAM_DIST_DEVICES") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<DeviceSpec>>>()?,
            _ => Vec::new(),
        };
        Ok(LaunchConfig {
            devices,
            timeout: timeout_from_env()?,
        })
    }

    /// With these devices.
    pub fn devices(mut self, devices: Vec<DeviceSpec>) -> Self {
        self.devices = devices;
        self
    }

    /// With this timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// One replica of a training job: where it runs and how it talks.
pub struct Replica {
    local: usize,
    device: Device,
    comm: Communicator,
}

impl Replica {
    /// A replica from its parts (for code that builds its own group).
    pub fn new(local: usize, device: Device, comm: Communicator) -> Replica {
        Replica {
            local,
            device,
            comm,
        }
    }

    /// This replica's rank, `0..world_size()`.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of replicas.
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    /// True on rank 0, the replica that writes files and prints.
    pub fn is_main(&self) -> bool {
        self.comm.is_main()
    }

    /// Its index among the replicas of its machine.
    pub fn local_rank(&self) -> usize {
        self.local
    }

    /// Its device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Its communicator.
    pub fn comm(&self) -> &Communicator {
        &self.comm
    }

    /// Its share of each epoch, for its loaders.
    pub fn sampler(&self) -> Result<DistributedSampler> {
        DistributedSampler::new(self.world_size(), self.rank())
    }
}

/// What started this process, read from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// An MPI launcher starting `world` processes (when it says how many).
    Mpi {
        /// The variable that gave it away.
        variable: &'static str,
        /// The world size it announces, if any.
        world: Option<usize>,
        /// This process's index among those of its machine.
        local_rank: usize,
    },
    /// A plain start.
    Plain,
}

impl Launcher {
    /// Reads the variables OpenMPI, MPICH/Hydra, Intel MPI, MVAPICH, PMIx
    /// and Slurm's `srun` set for the processes they start.
    pub fn detect() -> Launcher {
        let var = |name: &str| std::env::var(name).ok();
        let number = |name: &str| var(name).and_then(|v| v.trim().parse::<usize>().ok());
        let local_rank = [
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "MPI_LOCALRANKID",
            "MV2_COMM_WORLD_LOCAL_RANK",
            "PMI_LOCAL_RANK",
            "SLURM_LOCALID",
        ]
        .into_iter()
        .find_map(number)
        .unwrap_or(0);
        let sized = [
            "OMPI_COMM_WORLD_SIZE",
            "PMI_SIZE",
            "MV2_COMM_WORLD_SIZE",
            "SLURM_STEP_NUM_TASKS",
        ];
        for variable in sized {
            if let Some(world) = number(variable) {
                // A Slurm step of one task is a plain start.
                if variable == "SLURM_STEP_NUM_TASKS" && world < 2 {
                    continue;
                }
                return Launcher::Mpi {
                    variable,
                    world: Some(world),
                    local_rank,
                };
            }
        }
        if var("PMIX_RANK").is_some() {
            return Launcher::Mpi {
                variable: "PMIX_RANK",
                world: None,
                local_rank,
            };
        }
        Launcher::Plain
    }
}

/// Runs `run` once per replica of this process (see the module docs) and
/// returns their results, in rank order: one under MPI or alone, one per
/// device for a local group. The first replica error is returned (the one
/// that stopped first, not those that failed because it did).
pub fn launch<T: Send>(
    config: &LaunchConfig,
    run: impl Fn(Replica) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    match Launcher::detect() {
        Launcher::Mpi {
            variable,
            world,
            local_rank,
        } => launch_mpi(config, variable, world, local_rank, &run).map(|t| vec![t]),
        Launcher::Plain if config.devices.len() > 1 => launch_local(config, &run),
        Launcher::Plain => {
            let device = match config.devices.first() {
                Some(spec) => spec.open(0)?,
                None => Device::from_env()?,
            };
            run(Replica::new(0, device, Communicator::single())).map(|t| vec![t])
        }
    }
}

#[cfg(feature = "mpi")]
fn launch_mpi<T>(
    config: &LaunchConfig,
    variable: &'static str,
    world: Option<usize>,
    local_rank: usize,
    run: &(impl Fn(Replica) -> Result<T> + Sync),
) -> Result<T> {
    let comm = Communicator::mpi(config.timeout)?;
    if let Some(w) = world.filter(|&w| w != comm.world_size()) {
        return Err(Error::Distributed(format!(
            "{variable} says {w} processes were started, but MPI sees a world of {}: with srun, \
             choose the MPI plugin your MPI was built for (srun --mpi=pmix)",
            comm.world_size()
        )));
    }
    let device = match config.devices.as_slice() {
        [] => match std::env::var("LAM_DEVICE").as_deref() {
            Ok("gpu") => DeviceSpec::Gpu(None).open(local_rank)?,
            _ => Device::from_env()?,
        },
        list => list[local_rank % list.len()].open(local_rank)?,
    };
    let rank = comm.rank();
    let result = run(Replica::new(local_rank, device, comm.clone()));
    if let Err(e) = &result {
        eprintln!("lam-dist: rank {rank} failed: {e}");
        comm.abort(&e.to_string());
    }
    result
}

#[cfg(not(feature = "mpi"))]
fn launch_mpi<T>(
    _config: &LaunchConfig,
    variable: &'static str,
    world: Option<usize>,
    _local_rank: usize,
    _run: &(impl Fn(Replica) -> Result<T> + Sync),
) -> Result<T> {
    let world = world.map_or(String::new(), |w| format!(" of {w} processes"));
    Err(Error::Distributed(format!(
        "this process was started by an MPI launcher ({variable} is set{world}), but lam-dist was \
         built without its `mpi` feature: build with `--features lam-dist/mpi` (training on \
         anyway would run separate, unsynchronised models)"
    )))
}

/// One thread per device, each a replica of a local group.
fn launch_local<T: Send>(
    config: &LaunchConfig,
    run: &(impl Fn(Replica) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let comms = local_group(config.devices.len(), config.timeout)?;
    let results: Vec<Result<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = comms
            .into_iter()
            .zip(&config.devices)
            .enumerate()
            .map(|(local, (comm, spec))| {
                let name = format!("lam-dist-replica-{local}");
                std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, move || {
                        let outcome = catch_unwind(AssertUnwindSafe(|| {
                            let device = spec.open(local)?;
                            run(Replica::new(local, device, comm.clone()))
                        }));
                        let result = outcome.unwrap_or_else(|p| {
                            Err(Error::Distributed(format!(
                                "replica {local} panicked: {}",
                                panic_message(&p)
                            )))
                        });
                        if let Err(e) = &result {
                            comm.abort(&e.to_string());
                        }
                        result
                    })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(local, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(Error::Distributed(format!(
                        "replica {local} could not be joined"
                    )))
                }),
                Err(e) => Err(Error::Distributed(format!(
                    "cannot start the thread of replica {local}: {e}"
                ))),
            })
            .collect()
    });
    first_cause(results)
}

/// Every result, or the error that started the failure: one that is not a
/// replica noticing another's failure, else the lowest rank's.
fn first_cause<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    if results.iter().all(Result::is_ok) {
        return results.into_iter().collect();
    }
    let errors: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
    let cause = errors
        .iter()
        .position(|e| !matches!(e, Error::Distributed(_)))
        .unwrap_or(0);
    Err(errors
        .into_iter()
        .nth(cause)
        .unwrap_or_else(|| Error::Distributed("a replica failed".into())))
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
