//! Element types. Values are `f32`; `I32` holds labels and indices
//! (WGSL has no 64-bit integers, so lam's index type is 32-bit everywhere);
//! `F16` is IEEE half precision, for storage and the matrix products of
//! mixed precision ([`crate::amp`]): arithmetic on an `F16` tensor computes
//! in `f32`.

use std::fmt;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: every differentiable value.
    F32,
    /// 32-bit signed integer: class labels, indices, argmax results.
    I32,
    /// 16-bit IEEE float (binary16): half the memory of `F32`; matrix
    /// products of `F16` operands accumulate in `f32`.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
        }
    }

    /// True for the floating-point types (`F32`, `F16`): the ones gradients
    /// flow through.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16)
    }

    /// The name PyTorch and safetensors use ("float32" / "int32" / "float16").
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
            DType::F16 => "float16",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
