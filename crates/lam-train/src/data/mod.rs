//! Data sets and how they reach a model.
//!
//! - [`Dataset`]: anything indexable that yields one [`Sample`] (its
//!   [`Features`], flat, of a fixed [`Dataset::sample_shape`]: `F32` values
//!   or `I32` token ids; and a [`Target`]: a class or a vector of values).
//!   Required: `len`, `sample_shape`, `get`; `class_of` has a default built
//!   on `get`.
//! - [`TensorDataset`]: samples held in host memory, built from tensors or
//!   vectors; [`Subset`]: a view of another data set through a list of indices.
//! - [`csv`] and [`idx`]: readers for CSV files and the IDX format of MNIST.
//! - [`DataLoader`] (in `loader`): batches, seeded shuffles that are a pure
//!   function of `(seed, epoch)`, background prefetch, per-batch transforms.
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
pub mod split;
mod tensor_dataset;

pub use features::Features;
pub use loader::{Batch, BatchTransform, DataLoader, EpochIter, HostBatch};
pub use tensor_dataset::{Subset, TensorDataset};

use std::sync::Arc;

use lam_core::{Device, Error, Result, Tensor};

/// What a sample is labelled with.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class index (classification); batches of these become `I32` `[B]`.
    Class(i32),
    /// A vector of values (regression); batches become `F32` `[B, len]`.
    Values(Vec<f32>),
}

impl Target {
    /// The class, if this is one.
    pub fn class(&self) -> Option<i32> {
        match self {
            Target::Class(c) => Some(*c),
            Target::Values(_) => None,
        }
    }
}

/// The targets of many samples, stored compactly.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTargets {
    /// One class per sample.
    Classes(Vec<i32>),
    /// `width` values per sample, row-major.
    Values {
        /// `len × width` values.
        data: Vec<f32>,
        /// Values per sample.
        width: usize,
    },
}

impl HostTargets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            HostTargets::Classes(c) => c.len(),
            HostTargets::Values { data, width } => data.len() / (*width).max(1),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Target `i` (caller checks the range).
    pub fn get(&self, i: usize) -> Target {
        match self {
            HostTargets::Classes(c) => Target::Class(c[i]),
            HostTargets::Values { data, width } => {
                Target::Values(data[i * width..(i + 1) * width].to_vec())
            }
        }
    }

    /// The targets of `indices`, in that order (caller checks the range).
    pub fn select(&self, indices: &[usize]) -> HostTargets {
        match self {
            HostTargets::Classes(c) => {
                HostTargets::Classes(indices.iter().map(|&i| c[i]).collect())
            }
            HostTargets::Values { data, width } => HostTargets::Values {
                data: indices
                    .iter()
                    .flat_map(|&i| data[i * width..(i + 1) * width].iter().copied())
                    .collect(),
                width: *width,
            },
        }
    }

    /// Gathers targets one by one; an error if classes and values are mixed
    /// or the value widths differ.
    pub fn collect(targets: impl IntoIterator<Item = Target>) -> Result<HostTargets> {
        let mut classes = Vec::new();
        let mut values: Vec<f32> = Vec::new();
        let mut width: Option<usize> = None;
        for (i, t) in targets.into_iter().enumerate() {
            match (t, width) {
                (Target::Class(c), None) if values.is_empty() => classes.push(c),
                (Target::Values(v), w) if classes.is_empty() => {
                    if w.is_some_and(|w| w != v.len()) {
                        return Err(Error::invalid(
                            "HostTargets::collect",
                            format!(
                                "sample {i} has {} target values, earlier ones {}",
                                v.len(),
                                w.unwrap_or(0)
                            ),
                        ));
                    }
                    width = Some(v.len());
                    values.extend(v);
                }
                _ => {
                    return Err(Error::invalid(
                        "HostTargets::collect",
                        format!("sample {i} mixes class and value targets"),
                    ))
                }
            }
        }
        Ok(match width {
            Some(width) => HostTargets::Values {
                data: values,
                width,
            },
            None => HostTargets::Classes(classes),
        })
    }

    /// A tensor on `device`: `I32 [N]` for classes, `F32 [N, width]` for values.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        match self {
            HostTargets::Classes(c) => Tensor::from_vec_i32(c.clone(), &[c.len()], device),
            HostTargets::Values { data, width } => {
                Tensor::from_slice(data, &[self.len(), *width], device)
            }
        }
    }
}

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
                    format!("sample {i} has a regression target, not a class"),
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
