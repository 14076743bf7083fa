//! Data sets and how they reach a model.
//!
//! - [`Dataset`]: anything indexable that yields one [`Sample`] (its
//!   [`Features`], flat, of a fixed [`Dataset::sample_shape`]: `F32` values
//!   or `I32` token ids; and a [`Target`]: a class, a vector of values, or
//!   an array of classes such as a sequence's next tokens).
//!   Required: `len`, `sample_shape`, `get`; `class_of` has a default built
//!   on `get`.
//! - [`TensorDataset`]: samples held in host memory, built from tensors or
//!   vectors; [`Subset`]: a view of another data set through a list of indices.
//! - [`csv`] and [`idx`]: readers for CSV files and the IDX format of MNIST.
//! - [`DataLoader`] (in `loader`): batches, seeded shuffles that are a pure
//!   function of `(seed, epoch)`, background prefetch, per-batch transforms;
//!   [`DistributedSampler`]: a data-parallel replica's share of each epoch.
//! - [`split`]: seeded train/validation/test splits, stratified splits and
//!   k-fold cross-validation, all as index lists.
//!
//! Host memory is the source of truth here: loading, shuffling and
//! augmentation are cheap on the CPU, and only finished batches are
//! uploaded to the chosen device.

pub mod csv;
mod features;
pub mod idx;
mod loader;
mod sampler;
pub mod split;
mod targets;
mod tensor_dataset;

pub use features::Features;
pub use loader::{Batch, BatchTransform, DataLoader, EpochIter, HostBatch};
pub use sampler::DistributedSampler;
pub use targets::{HostTargets, Target};
pub use tensor_dataset::{Subset, TensorDataset};

use std::sync::Arc;

use lam_core::{Error, Result};

/// One example: its features (row-major, [`Dataset::sample_shape`]) and target.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The features, flattened row-major: `vec![..].into()` makes them
    /// from `f32` values or `i32` ids.
    pub features: Features,
    /// The label or regression target.
    pub target: Target,
}

/// An indexable collection of samples of one shape.
///
/// Required: [`len`](Dataset::len), [`sample_shape`](Dataset::sample_shape)
/// and [`get`](Dataset::get). `Send + Sync` so a [`DataLoader`] can read it
/// from its prefetch thread.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// The shape of one sample's features (e.g. `[64]` or `[1, 8, 8]`).
    fn sample_shape(&self) -> Vec<usize>;

    /// Sample `index`; an [`Error::OutOfRange`] past the end.
    fn get(&self, index: usize) -> Result<Sample>;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class of sample `index`, or `None` for a regression target.
    /// Override when the class is cheaper to read than the whole sample.
    fn class_of(&self, index: usize) -> Result<Option<i32>> {
        Ok(self.get(index)?.target.class())
    }
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn sample_shape(&self) -> Vec<usize> {
        (**self).sample_shape()
    }
    fn get(&self, index: usize) -> Result<Sample> {
        (**self).get(index)
    }
    fn class_of(&self, index: usize) -> Result<Option<i32>> {
        (**self).class_of(index)
    }
}

/// The class of every sample, in order: what stratified splits need. An
/// error if any target is not a class.
pub fn class_labels(dataset: &dyn Dataset) -> Result<Vec<i32>> {
    (0..dataset.len())
        .map(|i| {
            dataset.class_of(i)?.ok_or_else(|| {
                Error::invalid(
                    "class_labels",
                    format!("sample {i} has no single class (a regression target or an array of classes)"),
                )
            })
        })
        .collect()
}

/// The element count of `shape`, or an error naming `op` when the shape
/// cannot be addressed: its dims' product (zero dims counted as 1, since
/// they still make strides) must fit in `isize`. Shapes from files and
/// callers pass through here before anything is sized by them.
pub(crate) fn numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    let addressable = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d.max(1)))
        .is_some_and(|n| n <= isize::MAX as usize);
    if !addressable {
        return Err(Error::shape(
            op,
            "a shape whose element count fits in memory",
            shape,
        ));
    }
    Ok(shape.iter().product())
}

/// An [`Error::OutOfRange`] unless `index < len`.
pub(crate) fn check_index(op: &'static str, index: usize, len: usize) -> Result<()> {
    if index >= len {
        return Err(Error::OutOfRange {
            op,
            index: index as i64,
            size: len,
        });
    }
    Ok(())
}
