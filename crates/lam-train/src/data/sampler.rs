//! [`DistributedSampler`]: this replica's share of each epoch, for
//! data-parallel training, as PyTorch's `DistributedSampler` cuts it.
//!
//! Every replica computes the same epoch order (the loader's shuffle is a
//! pure function of its seed and the epoch, so replicas given the same seed
//! agree), which is then evened out to `num_replicas × num_samples` and
//! dealt round-robin: replica `r` takes positions `r, r + R, r + 2R, ...`.
//! Without `drop_last` the order is padded by repeating its start, so a
//! few samples are seen twice per epoch; with it, the tail that does not
//! divide evenly is left out. Either way every replica has the same number
//! of samples, so the replicas run the same number of steps.

use lam_core::{Error, Result};

/// Which samples of each epoch replica `rank` of `num_replicas` visits
/// (see the module docs); given to [`super::DataLoader::distributed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistributedSampler {
    num_replicas: usize,
    rank: usize,
    drop_last: bool,
}

impl DistributedSampler {
    /// Replica `rank` (`< num_replicas`) of `num_replicas`, padding the
    /// epoch to an even split.
    pub fn new(num_replicas: usize, rank: usize) -> Result<DistributedSampler> {
        if num_replicas == 0 || rank >= num_replicas {
            return Err(Error::invalid(
                "DistributedSampler",
                format!("rank must be in 0..num_replicas, found rank {rank} of {num_replicas}"),
            ));
        }
        Ok(DistributedSampler {
            num_replicas,
            rank,
            drop_last: false,
        })
    }

    /// Leave out the tail that does not divide evenly instead of padding.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// The number of replicas.
    pub fn num_replicas(&self) -> usize {
        self.num_replicas
    }

    /// This replica's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Samples this replica visits per epoch of a data set of `len`.
    pub fn num_samples(&self, len: usize) -> usize {
        if self.drop_last {
            len / self.num_replicas
        } else {
            len.div_ceil(self.num_replicas)
        }
    }

    /// This replica's share of an epoch whose order over every sample is `order`.
    pub fn shard(&self, order: &[usize]) -> Vec<usize> {
        // Position `p` of the evened-out order is `order[p % len]`: the
        // padding repeats the order from its start (several times over
        // when there are fewer samples than replicas). An empty order has
        // no samples to share: `num_samples` is 0.
        (0..self.num_samples(order.len()))
            .map(|k| order[(self.rank + k * self.num_replicas) % order.len()])
            .collect()
    }
}
