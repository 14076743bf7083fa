//! [`Features`]: the feature values of one sample or of many, row-major,
//! in one of the two dtypes a tensor holds: `F32` (measurements, pixels)
//! or `I32` (token ids and category codes, the input of an `Embedding`).
//!
//! A data set's samples all share one dtype; a batch of them becomes one
//! tensor of that dtype. Code that only handles one dtype (a scaler, an
//! image augmentation) asks for it with [`Features::as_f32`] and gets an
//! error naming the dtype it found otherwise.

use lam_core::{DType, Device, Error, Result, Tensor};

/// Feature values, row-major, as `F32` or `I32` (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Real values: `F32` tensors.
    F32(Vec<f32>),
    /// Integer values (token ids, category codes): `I32` tensors.
    I32(Vec<i32>),
}

impl Features {
    /// The dtype of the tensors these values become.
    pub fn dtype(&self) -> DType {
        match self {
            Features::F32(_) => DType::F32,
            Features::I32(_) => DType::I32,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Features::F32(v) => v.len(),
            Features::I32(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, if they are `F32`; a dtype error otherwise.
    pub fn as_f32(&self) -> Result<&[f32]> {
        match self {
            Features::F32(v) => Ok(v),
            Features::I32(_) => Err(self.mismatch("Features::as_f32", DType::F32)),
        }
    }

    /// The values, mutably, if they are `F32` (in-place preprocessing).
    pub fn as_f32_mut(&mut self) -> Result<&mut [f32]> {
        match self {
            Features::F32(v) => Ok(v),
            Features::I32(_) => Err(self.mismatch("Features::as_f32_mut", DType::F32)),
        }
    }

    /// The values, if they are `I32`; a dtype error otherwise.
    pub fn as_i32(&self) -> Result<&[i32]> {
        match self {
            Features::I32(v) => Ok(v),
            Features::F32(_) => Err(self.mismatch("Features::as_i32", DType::I32)),
        }
    }

    /// The values, mutably, if they are `I32`.
    pub fn as_i32_mut(&mut self) -> Result<&mut [i32]> {
        match self {
            Features::I32(v) => Ok(v),
            Features::F32(_) => Err(self.mismatch("Features::as_i32_mut", DType::I32)),
        }
    }

    /// A tensor of `shape` on `device`, of this dtype.
    pub fn to_tensor(&self, shape: &[usize], device: &Device) -> Result<Tensor> {
        match self {
            Features::F32(v) => Tensor::from_slice(v, shape, device),
            Features::I32(v) => Tensor::from_vec_i32(v.clone(), shape, device),
        }
    }

    /// Reads a tensor's values back to the host (`F16` values as `F32`).
    pub fn from_tensor(x: &Tensor) -> Result<Features> {
        Ok(match x.dtype() {
            DType::F32 | DType::F16 => Features::F32(x.to_vec()?),
            DType::I32 => Features::I32(x.to_vec_i32()?),
        })
    }

    /// An empty list of this dtype with room for `capacity` values.
    pub(crate) fn with_capacity(dtype: DType, capacity: usize) -> Features {
        match dtype {
            DType::F32 | DType::F16 => Features::F32(Vec::with_capacity(capacity)),
            DType::I32 => Features::I32(Vec::with_capacity(capacity)),
        }
    }

    /// Appends `other`'s values; an error naming `op` if the dtypes differ.
    pub(crate) fn extend_from(&mut self, op: &'static str, other: &Features) -> Result<()> {
        match (self, other) {
            (Features::F32(a), Features::F32(b)) => a.extend_from_slice(b),
            (Features::I32(a), Features::I32(b)) => a.extend_from_slice(b),
            (a, b) => {
                return Err(Error::DTypeMismatch {
                    op,
                    expected: a.dtype(),
                    found: b.dtype(),
                })
            }
        }
        Ok(())
    }

    /// A copy of values `start..end` (caller checks the range).
    pub(crate) fn slice(&self, start: usize, end: usize) -> Features {
        match self {
            Features::F32(v) => Features::F32(v[start..end].to_vec()),
            Features::I32(v) => Features::I32(v[start..end].to_vec()),
        }
    }

    /// Rows `indices` of `per` values each, in that order (caller checks
    /// the range).
    pub(crate) fn gather(&self, indices: &[usize], per: usize) -> Features {
        fn rows<T: Copy>(v: &[T], indices: &[usize], per: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(indices.len() * per);
            for &i in indices {
                out.extend_from_slice(&v[i * per..(i + 1) * per]);
            }
            out
        }
        match self {
            Features::F32(v) => Features::F32(rows(v, indices, per)),
            Features::I32(v) => Features::I32(rows(v, indices, per)),
        }
    }

    fn mismatch(&self, op: &'static str, expected: DType) -> Error {
        Error::DTypeMismatch {
            op,
            expected,
            found: self.dtype(),
        }
    }
}

impl From<Vec<f32>> for Features {
    fn from(v: Vec<f32>) -> Features {
        Features::F32(v)
    }
}

impl From<Vec<i32>> for Features {
    fn from(v: Vec<i32>) -> Features {
        Features::I32(v)
    }
}
