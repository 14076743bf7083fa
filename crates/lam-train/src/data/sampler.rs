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

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(len: usize, replicas: usize, drop_last: bool) -> Vec<Vec<usize>> {
        let order: Vec<usize> = (0..len).map(|i| (i * 7) % len).collect();
        (0..replicas)
            .map(|r| {
                DistributedSampler::new(replicas, r)
                    .unwrap()
                    .drop_last(drop_last)
                    .shard(&order)
            })
            .collect()
    }

    #[test]
    fn an_even_split_is_disjoint_and_covers_every_sample_once() {
        let s = shards(12, 3, false);
        let mut all: Vec<usize> = s.concat();
        all.sort_unstable();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
        assert!(s.iter().all(|r| r.len() == 4));
    }

    #[test]
    fn an_uneven_split_pads_with_the_start_of_the_order_as_pytorch() {
        // 10 samples over 3 replicas: 12 positions, the order's first two repeated.
        let order: Vec<usize> = (0..10).map(|i| (i * 7) % 10).collect();
        let s = shards(10, 3, false);
        assert!(s.iter().all(|r| r.len() == 4));
        assert_eq!(s[0], vec![order[0], order[3], order[6], order[9]]);
        assert_eq!(s[1], vec![order[1], order[4], order[7], order[0]]);
        assert_eq!(s[2], vec![order[2], order[5], order[8], order[1]]);
    }

    #[test]
    fn drop_last_leaves_out_the_uneven_tail() {
        let s = shards(10, 3, true);
        assert!(s.iter().all(|r| r.len() == 3));
        let mut all: Vec<usize> = s.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9, "disjoint");
    }

    #[test]
    fn fewer_samples_than_replicas_and_none_at_all() {
        let s = shards(2, 3, false);
        assert!(s.iter().all(|r| r.len() == 1));
        assert!(shards(2, 3, true).iter().all(Vec::is_empty));
        assert!(shards(0, 3, false).iter().all(Vec::is_empty));
    }

    #[test]
    fn a_rank_outside_the_world_is_an_error() {
        assert!(DistributedSampler::new(2, 2).is_err());
        assert!(DistributedSampler::new(0, 0).is_err());
    }
}
