//! [`Embedding`]: PyTorch's `nn.Embedding`, a lookup table of learned
//! vectors, and its functional form [`embedding`].
//!
//! Indices are an `I32` tensor of any shape; the output appends the
//! embedding dim: `[*] → [*, dim]`. The lookup is one `index_select` on the
//! weight, whose gradient scatters back into the rows used (summing repeats).
//! An index outside `0..num_embeddings` is an error naming it.

use super::summary::record;
use super::Module;
use crate::{Device, Error, Result, Tensor};

/// A table of `num_embeddings` vectors of size `embedding_dim`.
#[derive(Module)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`, initialised `N(0, 1)`.
    #[module(param)]
    pub weight: Tensor,
    padding_idx: Option<usize>,
}

/// Options of [`Embedding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbeddingConfig {
    /// A row that starts at zeros and never receives a gradient (PyTorch's
    /// `padding_idx`; default none).
    pub padding_idx: Option<usize>,
}

impl Embedding {
    /// `nn.Embedding(num_embeddings, embedding_dim)`.
    pub fn new(num_embeddings: usize, embedding_dim: usize, device: &Device) -> Result<Embedding> {
        Embedding::with_config(
            num_embeddings,
            embedding_dim,
            EmbeddingConfig::default(),
            device,
        )
    }

    /// `nn.Embedding` with options.
    pub fn with_config(
        num_embeddings: usize,
        embedding_dim: usize,
        config: EmbeddingConfig,
        device: &Device,
    ) -> Result<Embedding> {
        let shape = [num_embeddings, embedding_dim];
        let mut weight = Tensor::randn(&shape, device)?;
        if let Some(p) = config.padding_idx {
            if p >= num_embeddings {
                return Err(Error::OutOfRange {
                    op: "Embedding padding_idx",
                    index: p as i64,
                    size: num_embeddings,
                });
            }
            let mut rows = weight.to_vec()?;
            rows[p * embedding_dim..(p + 1) * embedding_dim].fill(0.0);
            weight = Tensor::from_vec(rows, &shape, device)?;
        }
        Ok(Embedding {
            weight: weight.requires_grad_()?,
            padding_idx: config.padding_idx,
        })
    }

    /// Number of rows.
    pub fn num_embeddings(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Size of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// The row excluded from gradients, if any.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }
}

impl Module for Embedding {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, embedding(input, &self.weight, self.padding_idx))
    }

    fn extra_repr(&self) -> String {
        let mut s = format!("{}, {}", self.num_embeddings(), self.embedding_dim());
        if let Some(p) = self.padding_idx {
            s += &format!(", padding_idx={p}");
        }
        s
    }
}

/// `torch.nn.functional.embedding(indices, weight, padding_idx)`: rows of
/// `weight: [num, dim]` at `indices` (`I32`, any shape) → `[*indices, dim]`.
pub fn embedding(indices: &Tensor, weight: &Tensor, padding_idx: Option<usize>) -> Result<Tensor> {
    let op = "embedding";
    indices.check_i32(op)?;
    let (_, dim) = weight.dims2(op, "weight [num_embeddings, dim]")?;
    let flat = indices.reshape_exact(&[indices.numel()])?;
    let mut rows = weight.index_select(0, &flat)?;
    if let Some(p) = padding_idx {
        // Same values, but the padding row's lookups come from a detached
        // copy of the weight, so no gradient reaches that row.
        let frozen = weight.detach().index_select(0, &flat)?;
        let is_pad = flat
            .to_dtype(crate::DType::F32)?
            .eq(&Tensor::scalar(p as f32, &flat.device())?)?;
        rows = Tensor::where_cond(&is_pad.unsqueeze(1)?, &frozen, &rows)?;
    }
    let mut shape = indices.shape();
    shape.push(dim);
    rows.reshape_exact(&shape)
}
