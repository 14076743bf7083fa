//! [`Replicas`]: what a [`super::Trainer`] needs to train as one of several
//! data-parallel replicas (lam-dist implements it over MPI and over the
//! devices of one process). With [`super::Trainer::distributed`]:
//!
//! - every replica runs the same epochs and batches of its own share of the
//!   data (a loader with a [`crate::data::DistributedSampler`]);
//! - the loss read every `sync_every` batches, the epoch's training scores
//!   and the validation scores are summed over the replicas, so every
//!   replica sees the same numbers and takes the same decisions (NaN guard,
//!   best epoch, early stopping; a callback's `Stop` on any replica stops
//!   all);
//! - only rank 0 writes files (checkpoints, history) and shows progress;
//! - a resume reads `last.safetensors` on every replica (the checkpoint
//!   directory must be shared, as on a cluster file system); replicas that
//!   find different epochs stop with an error;
//! - rank 0's parameters and buffers are copied to every replica when
//!   training starts and before each validation pass (so BatchNorm's
//!   running statistics are rank 0's, as PyTorch DDP's);
//! - a replica whose `fit` fails tells the others ([`Replicas::abort`]),
//!   which then stop with an error too (over MPI, within the group's
//!   timeout).

use lam_core::nn::Module;
use lam_core::{Error, Result};

/// How values from every replica are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Element-wise sum.
    Sum,
    /// Element-wise maximum.
    Max,
}

/// The group a distributed [`super::Trainer`] trains with (see the module docs).
pub trait Replicas: Send {
    /// This replica's index, `0..world_size()`.
    fn rank(&self) -> usize;

    /// The number of replicas.
    fn world_size(&self) -> usize;

    /// Combines `values` element-wise across the replicas, in place; every
    /// replica gets the same bits.
    fn reduce(&self, values: &mut [f64], op: Reduce) -> Result<()>;

    /// Makes every replica's parameters and buffers equal to rank 0's.
    fn broadcast_model(&self, model: &dyn Module) -> Result<()>;

    /// Tells the other replicas that this one stopped because of `reason`
    /// (they fail at their next collective). The default does nothing.
    fn abort(&self, _reason: &str) {}
}

/// The sum over replicas of one value per replica.
pub(crate) fn sum(replicas: &dyn Replicas, value: f64) -> Result<f64> {
    let mut v = [value];
    replicas.reduce(&mut v, Reduce::Sum)?;
    Ok(v[0])
}

/// An error unless every replica passed the same `value` (`what` names it).
pub(crate) fn agree(replicas: &dyn Replicas, value: f64, what: &str) -> Result<()> {
    let mut v = [value, -value];
    replicas.reduce(&mut v, Reduce::Max)?;
    if v[0] == -v[1] {
        return Ok(());
    }
    Err(Error::Distributed(format!(
        "rank {}: the replicas disagree on {what} (this one has {value}, another {})",
        replicas.rank(),
        if v[0] != value { v[0] } else { -v[1] }
    )))
}
