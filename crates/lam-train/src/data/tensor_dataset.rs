//! [`TensorDataset`]: samples held in host memory (PyTorch's
//! `TensorDataset`), and [`Subset`]: a data set seen through a list of
//! indices (PyTorch's `Subset`).
//!
//! A `TensorDataset` keeps one flat list of [`Features`] (`N × sample`,
//! `F32` values or `I32` token ids) and its targets, so selecting,
//! splitting and batching are slice copies. Build one from tensors
//! (`x: F32 or I32 [N, ...]`, `y: I32 [N]` or `F32 [N]` / `[N, k]`) or
//! straight from vectors.
//!
//! | `x` | `y` | a batch of `B` samples |
//! |-----|-----|------------------------|
//! | `F32 [N, ...]` | `I32 [N]` class ids | `F32 [B, ...]`, `I32 [B]` (`cross_entropy`) |
//! | `I32 [N, T]` token ids | `I32 [N]` class ids | `I32 [B, T]` (an `Embedding`'s input), `I32 [B]` |
//! | either | `F32 [N]` 0/1 or values | `F32 [B, 1]` (`binary_cross_entropy*`, `mse_loss` of one output) |
//! | either | `F32 [N, k]` values | `F32 [B, k]` |
//! | either | `I32 [N, ...]` classes per position | `I32 [B, ...]` (next tokens, masks) |

use std::sync::Arc;

use lam_core::{DType, Device, Error, Result, Tensor};

use super::{check_index, numel, Dataset, Features, HostTargets, Sample};

/// Samples in host memory: features `[N, ...sample_shape]` and targets.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDataset {
    features: Features,
    sample_shape: Vec<usize>,
    targets: HostTargets,
}

impl TensorDataset {
    /// From features `x: [N, ...]` (`F32` values or `I32` ids) and targets
    /// `y`: `I32 [N]` (classes), `I32 [N, ...]` (classes per position:
    /// next tokens, masks), `F32 [N]` or `F32 [N, k]` (values; `[N]`
    /// becomes `[N, 1]`, what binary cross-entropy takes). Reads both back
    /// to the host.
    pub fn new(x: &Tensor, y: &Tensor) -> Result<TensorDataset> {
        if x.rank() == 0 {
            return Err(Error::shape(
                "TensorDataset::new",
                "features of shape [N, ...]",
                x.dims(),
            ));
        }
        let n = x.dims()[0];
        if y.rank() == 0 || y.dims()[0] != n || (y.dtype() == DType::F32 && y.rank() > 2) {
            return Err(Error::shape(
                "TensorDataset::new",
                format!(
                    "targets of shape [{n}] (I32 classes or F32 values), [{n}, k] (F32 values) \
                     or [{n}, ...] (I32 classes per position)"
                ),
                y.dims(),
            ));
        }
        let targets = match y.dtype() {
            DType::I32 if y.rank() == 1 => HostTargets::Classes(y.to_vec_i32()?),
            DType::I32 => HostTargets::class_arrays(y.to_vec_i32()?, &y.dims()[1..])?,
            DType::F32 | DType::F16 => HostTargets::Values {
                data: y.to_vec()?,
                width: if y.rank() == 2 { y.dims()[1] } else { 1 },
            },
        };
        TensorDataset::from_parts(Features::from_tensor(x)?, &x.dims()[1..], targets)
    }

    /// Classification data: `features` holds `labels.len()` samples of `sample_shape`.
    pub fn from_classes(
        features: Vec<f32>,
        sample_shape: &[usize],
        labels: Vec<i32>,
    ) -> Result<TensorDataset> {
        TensorDataset::from_parts(features, sample_shape, HostTargets::Classes(labels))
    }

    /// Regression data: `targets` holds `width` values per sample.
    pub fn from_values(
        features: Vec<f32>,
        sample_shape: &[usize],
        targets: Vec<f32>,
        width: usize,
    ) -> Result<TensorDataset> {
        if width == 0 || !targets.len().is_multiple_of(width) {
            return Err(Error::invalid(
                "TensorDataset::from_values",
                format!(
                    "{} target values do not split into rows of width {width}",
                    targets.len()
                ),
            ));
        }
        TensorDataset::from_parts(
            features,
            sample_shape,
            HostTargets::Values {
                data: targets,
                width,
            },
        )
    }

    /// From features (a `Vec<f32>` of values or a `Vec<i32>` of ids, or
    /// [`Features`]) and already collected targets; checks the sizes agree.
    pub fn from_parts(
        features: impl Into<Features>,
        sample_shape: &[usize],
        targets: HostTargets,
    ) -> Result<TensorDataset> {
        let features = features.into();
        let per = numel("TensorDataset", sample_shape)?;
        let n = targets.len();
        if n.checked_mul(per) != Some(features.len()) {
            return Err(Error::LengthMismatch {
                op: "TensorDataset",
                len: features.len(),
                shape: [&[n][..], sample_shape].concat(),
                expected: n.saturating_mul(per),
            });
        }
        Ok(TensorDataset {
            features,
            sample_shape: sample_shape.to_vec(),
            targets,
        })
    }

    /// All features, row-major `[N, ...sample_shape]` (`.as_f32()?` for
    /// the values of a real-valued data set).
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// All features, mutably (in-place preprocessing:
    /// `.as_f32_mut()?`).
    pub fn features_mut(&mut self) -> &mut Features {
        &mut self.features
    }

    /// All targets.
    pub fn targets(&self) -> &HostTargets {
        &self.targets
    }

    /// The class labels, if the targets are classes.
    pub fn labels(&self) -> Option<&[i32]> {
        match &self.targets {
            HostTargets::Classes(c) => Some(c),
            HostTargets::Values { .. } | HostTargets::ClassArrays { .. } => None,
        }
    }

    /// The features as one tensor `[N, ...sample_shape]` on `device`, of
    /// their dtype.
    pub fn features_tensor(&self, device: &Device) -> Result<Tensor> {
        self.features.to_tensor(&self.full_shape(), device)
    }

    /// The targets as one tensor on `device` (`I32 [N]`, `F32 [N, k]` or
    /// `I32 [N, ...]`).
    pub fn targets_tensor(&self, device: &Device) -> Result<Tensor> {
        self.targets.to_tensor(device)
    }

    /// A copy holding the samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Result<TensorDataset> {
        for &i in indices {
            check_index("TensorDataset::select", i, self.len())?;
        }
        Ok(TensorDataset {
            features: self.features.gather(indices, self.sample_len()),
            sample_shape: self.sample_shape.clone(),
            targets: self.targets.select(indices),
        })
    }

    /// The same targets with new features `x: [N, ...]` (e.g. scaled ones,
    /// of either dtype); the sample shape becomes `x`'s trailing dims.
    pub fn with_features(&self, x: &Tensor) -> Result<TensorDataset> {
        if x.rank() == 0 || x.dims()[0] != self.len() {
            return Err(Error::shape(
                "TensorDataset::with_features",
                format!("features of shape [{}, ...]", self.len()),
                x.dims(),
            ));
        }
        TensorDataset::from_parts(
            Features::from_tensor(x)?,
            &x.dims()[1..],
            self.targets.clone(),
        )
    }

    /// The same data with each sample viewed as `shape` (same element count),
    /// e.g. `[64]` → `[1, 8, 8]` for a convolution.
    pub fn reshape_samples(mut self, shape: &[usize]) -> Result<TensorDataset> {
        if numel("TensorDataset::reshape_samples", shape)? != self.sample_len() {
            return Err(Error::shape(
                "TensorDataset::reshape_samples",
                format!("a shape of {} elements", self.sample_len()),
                shape,
            ));
        }
        self.sample_shape = shape.to_vec();
        Ok(self)
    }

    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    fn full_shape(&self) -> Vec<usize> {
        [&[self.len()][..], &self.sample_shape].concat()
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.targets.len()
    }

    fn sample_shape(&self) -> Vec<usize> {
        self.sample_shape.clone()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("TensorDataset::get", index, self.len())?;
        let per = self.sample_len();
        Ok(Sample {
            features: self.features.slice(index * per, (index + 1) * per),
            target: self.targets.get(index),
        })
    }

    fn class_of(&self, index: usize) -> Result<Option<i32>> {
        check_index("TensorDataset::class_of", index, self.len())?;
        Ok(self.labels().map(|c| c[index]))
    }
}

/// Another data set seen through `indices` (sample `i` is `inner[indices[i]]`).
#[derive(Clone)]
pub struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl Subset {
    /// A view of `inner`; every index must be in range.
    pub fn new(inner: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Subset> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= inner.len()) {
            check_index("Subset::new", bad, inner.len())?;
        }
        Ok(Subset { inner, indices })
    }

    /// The indices into the inner data set.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn sample_shape(&self) -> Vec<usize> {
        self.inner.sample_shape()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("Subset::get", index, self.len())?;
        self.inner.get(self.indices[index])
    }

    fn class_of(&self, index: usize) -> Result<Option<i32>> {
        check_index("Subset::class_of", index, self.len())?;
        self.inner.class_of(self.indices[index])
    }
}
