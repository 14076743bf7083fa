//! [`DataLoader`]: batches of a [`Dataset`] as `(x, y)` tensors on a device.
//!
//! ```ignore
//! let loader = DataLoader::new(train, 64, &device)?.shuffle(true).seed(7);
//! for _ in 0..epochs {
//!     for batch in &loader {
//!         let (x, y) = batch?; // x: F32 or I32 [B, ...sample_shape]; y: I32 [B], F32 [B, k] or I32 [B, ...]
//!     }
//! }
//! ```
//!
//! **Epochs.** Each `for batch in &loader` (or [`DataLoader::iter`]) is
//! the next epoch: the loader counts them, from 0, as PyTorch's loop over
//! a `DataLoader` reshuffles on every pass. [`DataLoader::set_epoch`] moves
//! the count (to resume a hand-written loop at epoch `e`), and
//! [`DataLoader::epoch`]`(e)` iterates epoch `e` without touching it (the
//! `Trainer` numbers its epochs itself, so its resume is exact whatever
//! the count).
//!
//! **Randomness.** An epoch's order (when shuffling) and the seed each
//! [`BatchTransform`] gets for batch `b` are functions of one epoch seed,
//! which comes from
//! - [`DataLoader::seed`]`(s)`: `(s, epoch)` itself, so the epoch's batches
//!   are a pure function of the seed and the epoch number, and a run
//!   resumed at epoch `e` sees what an uninterrupted run saw without saving
//!   anything;
//! - [`DataLoader::generator`]`(&g)`: one seed drawn from `g` per epoch
//!   (PyTorch's `DataLoader(generator=g)`);
//! - neither: one seed drawn from the current generator
//!   ([`lam_core::rng::current`]): a `Trainer`'s own during `fit`, else the
//!   default one behind `manual_seed`, as PyTorch's loader draws from the
//!   global generator.
//!
//! The seed is taken when [`DataLoader::epoch`] is called, on the caller's
//! thread; an epoch that neither shuffles nor transforms takes none.
//! Batches are gathered (and transformed) on the host, by a background
//! thread that stays at most `prefetch` batches ahead through a bounded
//! channel; only the finished batch is uploaded, on the caller's thread.
//!
//! For data-parallel training, [`DataLoader::distributed`] gives each
//! replica its [`DistributedSampler`] share of every epoch's order; batch
//! `b` of replica `r` of `R` seeds its transform as global batch `b·R + r`,
//! so replicas augment differently and one replica alone is unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use lam_core::rng::{self, Generator};
use lam_core::{Device, Error, Result, Tensor};

use super::{Dataset, DistributedSampler, Features, HostTargets};
use crate::seed::derive_seed;

/// A batch still in host memory, as a [`BatchTransform`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Features, row-major `shape` (`x.as_f32_mut()?` for real values).
    pub x: Features,
    /// `[B, ...sample_shape]`.
    pub shape: Vec<usize>,
    /// The targets of the `B` samples.
    pub y: HostTargets,
    /// Which samples of the data set these are.
    pub indices: Vec<usize>,
}

/// A change applied to each batch on the host before upload (augmentation,
/// noise). `seed` is fixed by `(epoch seed, epoch, batch index)` (see the
/// module docs); a transform draws its randomness from it, not from a
/// generator: it runs on the loader's prefetch thread.
pub trait BatchTransform: Send + Sync {
    /// Changes `batch` in place.
    fn apply(&self, batch: &mut HostBatch, seed: u64) -> Result<()>;
}

impl<F: Fn(&mut HostBatch, u64) -> Result<()> + Send + Sync> BatchTransform for F {
    fn apply(&self, batch: &mut HostBatch, seed: u64) -> Result<()> {
        self(batch, seed)
    }
}

/// A batch uploaded to the device: `(x, y)`.
pub type Batch = (Tensor, Tensor);

/// Iterates a data set in batches (see the module docs). `&loader` is an
/// `IntoIterator` over the next epoch's batches.
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle: bool,
    randomness: Randomness,
    drop_last: bool,
    prefetch: usize,
    device: Device,
    transform: Option<Arc<dyn BatchTransform>>,
    sampler: Option<DistributedSampler>,
    next_epoch: EpochCount,
}

impl DataLoader {
    /// Batches of `batch_size` (> 0) samples of `dataset` on `device`; in
    /// order, keeping a short last batch, prefetching 2 batches.
    pub fn new(
        dataset: impl Dataset + 'static,
        batch_size: usize,
        device: &Device,
    ) -> Result<DataLoader> {
        DataLoader::from_arc(Arc::new(dataset), batch_size, device)
    }

    /// As [`DataLoader::new`], for a data set already shared.
    pub fn from_arc(
        dataset: Arc<dyn Dataset>,
        batch_size: usize,
        device: &Device,
    ) -> Result<DataLoader> {
        if batch_size == 0 {
            return Err(Error::invalid("DataLoader::new", "batch_size must be > 0"));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            shuffle: false,
            randomness: Randomness::Current,
            drop_last: false,
            prefetch: 2,
            device: device.clone(),
            transform: None,
            sampler: None,
            next_epoch: EpochCount::default(),
        })
    }

    /// Reshuffle every epoch (a permutation fixed by the epoch's seed).
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Shuffles and transforms fixed by `(seed, epoch)` (see the module docs).
    pub fn seed(mut self, seed: u64) -> Self {
        self.randomness = Randomness::Seed(seed);
        self
    }

    /// Shuffles and transforms drawn from `generator`, one seed per epoch
    /// (shared: the loader advances it; see the module docs).
    pub fn generator(mut self, generator: &Generator) -> Self {
        self.randomness = Randomness::Generator(generator.clone());
        self
    }

    /// Drop the last batch when it is short.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// How many batches the background thread may prepare ahead; 0 builds
    /// each batch on the caller's thread.
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    /// A transform applied to every batch on the host.
    pub fn transform(mut self, transform: impl BatchTransform + 'static) -> Self {
        self.transform = Some(Arc::new(transform));
        self
    }

    /// Visit only `sampler`'s share of each epoch (data-parallel
    /// training: every replica its own rank). The replicas' shares are
    /// disjoint only when they cut the same order: give every replica's
    /// loader the same [`seed`](DataLoader::seed), or leave it unseeded
    /// under a `Trainer`, whose generator (seeded from `TrainConfig::seed`)
    /// is in the same state on every replica.
    pub fn distributed(mut self, sampler: DistributedSampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// The sampler of a data-parallel replica, if any.
    pub fn sampler(&self) -> Option<&DistributedSampler> {
        self.sampler.as_ref()
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The device batches are uploaded to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of samples one epoch visits.
    pub fn num_samples(&self) -> usize {
        let n = self
            .sampler
            .map_or(self.dataset.len(), |s| s.num_samples(self.dataset.len()));
        if self.drop_last {
            n - n % self.batch_size
        } else {
            n
        }
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        self.num_samples().div_ceil(self.batch_size)
    }

    /// The sample order of `epoch`: a seeded permutation when shuffling
    /// (this replica's share of it, with a sampler). Without a fixed
    /// [`seed`](DataLoader::seed) this takes the epoch's seed from the
    /// generator, as [`epoch`](DataLoader::epoch) does, so the next call (or
    /// epoch) gets another order.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        self.order(self.epoch_seed(), epoch)
    }

    /// This replica's share of `order`; all of it without a sampler.
    fn share(&self, order: Vec<usize>) -> Vec<usize> {
        match &self.sampler {
            Some(s) => s.shard(&order),
            None => order,
        }
    }

    /// Global batch `b·R + r` for batch `b` of replica `r` of `R`.
    fn batch_numbering(&self) -> (u64, u64) {
        self.sampler
            .map_or((1, 0), |s| (s.num_replicas() as u64, s.rank() as u64))
    }

    /// The batches of the next epoch (what `for batch in &loader` runs):
    /// epoch [`next_epoch`](DataLoader::next_epoch), which then counts one up.
    pub fn iter(&self) -> EpochIter {
        self.epoch(self.next_epoch.0.fetch_add(1, Ordering::Relaxed))
    }

    /// The epoch the next [`iter`](DataLoader::iter) runs (0 for a new loader).
    pub fn next_epoch(&self) -> u64 {
        self.next_epoch.0.load(Ordering::Relaxed)
    }

    /// Makes `epoch` the next one [`iter`](DataLoader::iter) runs: a
    /// hand-written loop resumed after `e` finished epochs calls
    /// `set_epoch(e)`, and with a [`seed`](DataLoader::seed) it sees the
    /// orders an uninterrupted loop saw.
    pub fn set_epoch(&self, epoch: u64) {
        self.next_epoch.0.store(epoch, Ordering::Relaxed);
    }

    /// The batches of `epoch`, as `Result<(x, y)>`; the epoch count is
    /// left as it is.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let seed = self.epoch_seed();
        let mut order = self.order(seed, epoch);
        order.truncate(self.num_samples());
        let plan = Plan {
            dataset: self.dataset.clone(),
            order,
            batch_size: self.batch_size,
            transform: self.transform.clone(),
            seed,
            epoch,
            numbering: self.batch_numbering(),
        };
        let total = self.num_batches();
        let source = if self.prefetch == 0 {
            Source::Inline(plan, 0)
        } else {
            let (tx, rx) = sync_channel(self.prefetch);
            let handle = std::thread::Builder::new()
                .name("lam-dataloader".into())
                .spawn(move || {
                    for b in 0..total {
                        let item = plan.batch(b);
                        let failed = item.is_err();
                        if tx.send(item).is_err() || failed {
                            return;
                        }
                    }
                });
            match handle {
                Ok(h) => Source::Thread {
                    rx: Some(rx),
                    handle: Some(h),
                },
                Err(e) => Source::Failed(Some(Error::invalid(
                    "DataLoader",
                    format!("cannot start the prefetch thread: {e}"),
                ))),
            }
        };
        EpochIter {
            source,
            device: self.device.clone(),
            next: 0,
            total,
        }
    }

    /// Every batch of an unshuffled pass gathered on the host (for
    /// evaluation code that wants the whole split at once).
    pub fn host_batches(&self) -> Result<Vec<HostBatch>> {
        let mut order = self.share((0..self.dataset.len()).collect());
        order.truncate(self.num_samples());
        let plan = Plan {
            dataset: self.dataset.clone(),
            order,
            batch_size: self.batch_size,
            transform: None,
            seed: 0,
            epoch: 0,
            numbering: self.batch_numbering(),
        };
        (0..self.num_batches()).map(|b| plan.batch(b)).collect()
    }

    /// The seed of an epoch's shuffle and transforms (see the module docs);
    /// 0, drawing nothing, when epochs have no randomness.
    fn epoch_seed(&self) -> u64 {
        if !self.shuffle && self.transform.is_none() {
            return 0;
        }
        match &self.randomness {
            Randomness::Seed(seed) => *seed,
            Randomness::Generator(g) => g.next_seed(),
            Randomness::Current => rng::next_seed(),
        }
    }

    /// The sample order for an epoch's `seed` (this replica's share).
    fn order(&self, seed: u64, epoch: u64) -> Vec<usize> {
        let n = self.dataset.len();
        self.share(if self.shuffle {
            Generator::new(derive_seed(&[seed, epoch, 0x5a4f])).permutation(n)
        } else {
            (0..n).collect()
        })
    }
}

impl IntoIterator for &DataLoader {
    type Item = Result<Batch>;
    type IntoIter = EpochIter;

    /// The next epoch's batches ([`DataLoader::iter`]).
    fn into_iter(self) -> EpochIter {
        self.iter()
    }
}

/// Where a loader's epoch seeds come from (see the module docs).
#[derive(Clone)]
enum Randomness {
    Seed(u64),
    Generator(Generator),
    Current,
}

/// The next epoch `&loader` runs; a clone of a loader starts from the
/// original's count and counts on its own.
#[derive(Default)]
struct EpochCount(AtomicU64);

impl Clone for EpochCount {
    fn clone(&self) -> Self {
        EpochCount(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

/// The batches of one epoch; dropping it stops the prefetch thread.
pub struct EpochIter {
    source: Source,
    device: Device,
    next: usize,
    total: usize,
}

enum Source {
    Inline(Plan, usize),
    Thread {
        rx: Option<Receiver<Result<HostBatch>>>,
        handle: Option<JoinHandle<()>>,
    },
    Failed(Option<Error>),
}

impl EpochIter {
    /// Batches in this epoch.
    pub fn len(&self) -> usize {
        self.total
    }

    /// True when the epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn next_host(&mut self) -> Option<Result<HostBatch>> {
        match &mut self.source {
            Source::Inline(plan, b) => {
                let item = plan.batch(*b);
                *b += 1;
                Some(item)
            }
            Source::Failed(e) => e.take().map(Err),
            Source::Thread { rx, handle } => match rx.as_ref().map(|r| r.recv()) {
                Some(Ok(item)) => Some(item),
                _ => {
                    // The worker ended early: it panicked (a data set's `get`
                    // did), since errors are sent before it stops.
                    let why = match handle.take().map(|h| h.join()) {
                        Some(Err(p)) => panic_message(&p),
                        _ => "it stopped early".to_string(),
                    };
                    Some(Err(Error::invalid(
                        "DataLoader",
                        format!("the prefetch thread failed: {why}"),
                    )))
                }
            },
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        let host = self.next_host()?;
        self.next += 1;
        let upload = |b: HostBatch| -> Result<Batch> {
            let x = b.x.to_tensor(&b.shape, &self.device)?;
            Ok((x, b.y.to_tensor(&self.device)?))
        };
        let item = host.and_then(upload);
        if item.is_err() {
            // One error ends the epoch.
            self.total = self.next;
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let Source::Thread { rx, handle } = &mut self.source {
            // Hang up first so a worker blocked on a full channel wakes and exits.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// What one epoch visits, shareable with the prefetch thread.
struct Plan {
    dataset: Arc<dyn Dataset>,
    order: Vec<usize>,
    batch_size: usize,
    transform: Option<Arc<dyn BatchTransform>>,
    seed: u64,
    epoch: u64,
    /// `(R, r)`: batch `b` is global batch `b·R + r` (see the module docs).
    numbering: (u64, u64),
}

impl Plan {
    fn batch(&self, b: usize) -> Result<HostBatch> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let indices = self.order[start..end].to_vec();
        let sample_shape = self.dataset.sample_shape();
        let per = super::numel("DataLoader", &sample_shape)?;
        let mut x: Option<Features> = None;
        let mut targets = Vec::with_capacity(indices.len());
        for &i in &indices {
            let s = self.dataset.get(i)?;
            if s.features.len() != per {
                return Err(Error::LengthMismatch {
                    op: "DataLoader",
                    len: s.features.len(),
                    shape: sample_shape.clone(),
                    expected: per,
                });
            }
            // Sized by a sample that exists, not by what the shape claims.
            let x = x.get_or_insert_with(|| {
                Features::with_capacity(s.features.dtype(), indices.len() * per)
            });
            if x.dtype() != s.features.dtype() {
                return Err(Error::invalid(
                    "DataLoader",
                    format!(
                        "sample {i} has {:?} features, the batch's earlier samples {:?}: \
                         a data set's samples share one dtype",
                        s.features.dtype(),
                        x.dtype()
                    ),
                ));
            }
            x.extend_from("DataLoader", &s.features)?;
            targets.push(s.target);
        }
        let mut batch = HostBatch {
            x: x.unwrap_or(Features::F32(Vec::new())),
            shape: [&[indices.len()][..], &sample_shape].concat(),
            y: HostTargets::collect(targets)?,
            indices,
        };
        if let Some(t) = &self.transform {
            let (replicas, rank) = self.numbering;
            let global = b as u64 * replicas + rank;
            t.apply(
                &mut batch,
                derive_seed(&[self.seed, self.epoch, global, 0x7a5f]),
            )?;
        }
        Ok(batch)
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
