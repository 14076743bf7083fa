//! `lam-dist`: data-parallel training for lam, Horovod/PyTorch-DDP style.
//!
//! Every replica holds the whole model and trains on its own share of each
//! batch; after each backward pass the gradients are averaged over the
//! replicas, so identical optimizer steps keep the replicas bitwise
//! identical. The same program runs as one replica, as one replica per
//! device of a machine, or as one process per GPU of a cluster — chosen by
//! how it is started ([`launch`]), not by its code.
//!
//! ```ignore
//! lam_dist::launch(&LaunchConfig::from_env()?, |replica| {
//!     let model = DistributedDataParallel::new(build_model(replica.device())?, replica.comm(), DdpConfig::default())?;
//!     let mut opt = Adam::new(model.parameters(), 1e-3)?;
//!     let train = DataLoader::new(data, 64, replica.device())?.shuffle(true).distributed(replica.sampler()?);
//!     Trainer::new(&model, &mut opt, loss::cross_entropy)
//!         .distributed(replica.comm().clone())
//!         .fit(&train, None)
//! })?;
//! ```
//!
//! - [`comm`]: the [`Communicator`] — collectives queued to a background
//!   thread, over MPI (feature `mpi`) or host memory ([`local_group`]),
//!   with results bitwise identical on every replica and a timeout instead
//!   of a hang.
//! - [`launch`] (in `launch.rs`): reads how the process was started and
//!   builds the replicas, their devices and communicators.
//! - [`DistributedDataParallel`] (in `ddp/`): the model wrapper — initial
//!   broadcast, gradient buckets reduced while backward runs, buffer sync.
//! - [`SyncBatchNorm`] and [`all_reduce_sum`] (in `sync_bn.rs`): statistics
//!   over the global batch.
//! - `trainer.rs`: the communicator as lam-train's `Replicas`, so
//!   `Trainer::distributed` works with it.
//!
//! lam-core knows nothing of this crate: it offers gradient hooks
//! (`Tensor::register_post_accumulate_grad_hook`), end-of-backward
//! callbacks (`autograd::queue_callback`) and custom ops
//! (`autograd::custom_op`), and lam-dist is built on them.

pub mod comm;
mod ddp;
mod launch;
mod sync_bn;
mod trainer;

pub use comm::{local_group, CommStats, Communicator, Pending, Reduction, DEFAULT_TIMEOUT};
pub use ddp::state::broadcast_state;
pub use ddp::{DdpConfig, DdpStats, DistributedDataParallel};
pub use launch::{launch, DeviceSpec, LaunchConfig, Launcher, Replica};
pub use sync_bn::{all_reduce_sum, SyncBatchNorm};
