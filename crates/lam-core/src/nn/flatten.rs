//! [`Flatten`]: PyTorch's `nn.Flatten`, merging a range of dims into one
//! (by default everything but the batch dim: `[N, C, H, W] → [N, C·H·W]`).

use super::summary::record;
use super::Module;
use crate::{Result, Tensor};

/// Merges dims `start_dim..=end_dim` (negative counts from the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Module)]
pub struct Flatten {
    /// First dim merged (default 1).
    pub start_dim: isize,
    /// Last dim merged, inclusive (default -1).
    pub end_dim: isize,
}

impl Flatten {
    /// `nn.Flatten()`: dims 1 to -1.
    pub fn new() -> Flatten {
        Flatten {
            start_dim: 1,
            end_dim: -1,
        }
    }

    /// `nn.Flatten(start_dim, end_dim)`.
    pub fn with_dims(start_dim: isize, end_dim: isize) -> Flatten {
        Flatten { start_dim, end_dim }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Module for Flatten {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, input.flatten(self.start_dim, self.end_dim))
    }

    fn extra_repr(&self) -> String {
        format!("start_dim={}, end_dim={}", self.start_dim, self.end_dim)
    }
}
