//! Element types. Values are `f32`; `I32` holds labels and indices
//! (WGSL has no 64-bit integers, so lam's index type is 32-bit everywhere).

use std::fmt;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: every differentiable value.
    F32,
    /// 32-bit signed integer: class labels, indices, argmax results.
    I32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        4
    }

    /// The name PyTorch and safetensors use ("float32" / "int32").
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
