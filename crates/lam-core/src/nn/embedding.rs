//! [`Embedding`]: PyTorch's `nn.Embedding`, a lookup table of learned
//! vectors, and its functional form [`embedding`].
//!
//! Indices are an `I32` tensor of any shape; the output appends the
//! embedding dim: `[*] → [*, dim]`. The lookup is one `index_select` on the
//! weight, whose gradient scatters back into the rows used (summing repeats).
//! An index outside `0..num_embeddings` is an error naming it.
//!
//! PyTorch's options: `padding_idx` (a row that gets no gradient),
//! `max_norm` with `norm_type` (before the lookup, every row looked up whose
//! norm exceeds `max_norm` is scaled down to it, in the weight itself, as
//! `torch.embedding_renorm_` does) and `scale_grad_by_freq` (each row's
//! gradient divided by how often the batch looks it up). The last two read
//! the indices on the host.

use std::collections::BTreeMap;

use super::summary::record;
use super::{py_bool, py_float, Module};
use crate::{Device, Error, NoGradGuard, Result, Tensor};

/// A table of `num_embeddings` vectors of size `embedding_dim`.
#[derive(Module)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`, initialised `N(0, 1)`.
    #[module(param)]
    pub weight: Tensor,
    #[module(skip)]
    config: EmbeddingConfig,
}

/// Options of [`Embedding`] (PyTorch's keyword arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingConfig {
    /// A row that starts at zeros and never receives a gradient (PyTorch's
    /// `padding_idx`; default none).
    pub padding_idx: Option<usize>,
    /// Rows looked up whose `norm_type`-norm exceeds this are rescaled to
    /// it in place before the lookup (default none). Finite and `>= 0`.
    pub max_norm: Option<f32>,
    /// The `p` of the norm `max_norm` bounds (default 2; `f32::INFINITY` for
    /// the largest absolute value). Positive.
    pub norm_type: f32,
    /// Divide each row's gradient by the number of times the batch looks
    /// it up (default false).
    pub scale_grad_by_freq: bool,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            padding_idx: None,
            max_norm: None,
            norm_type: 2.0,
            scale_grad_by_freq: false,
        }
    }
}

impl EmbeddingConfig {
    /// Sets `padding_idx`.
    pub fn padding_idx(mut self, index: usize) -> Self {
        self.padding_idx = Some(index);
        self
    }

    /// Sets `max_norm`.
    pub fn max_norm(mut self, max_norm: f32) -> Self {
        self.max_norm = Some(max_norm);
        self
    }

    /// Sets `norm_type`.
    pub fn norm_type(mut self, p: f32) -> Self {
        self.norm_type = p;
        self
    }

    /// Sets `scale_grad_by_freq`.
    pub fn scale_grad_by_freq(mut self, scale: bool) -> Self {
        self.scale_grad_by_freq = scale;
        self
    }

    /// An error naming `op` unless `max_norm` and `norm_type` are in range.
    fn check(&self, op: &'static str) -> Result<()> {
        if let Some(m) = self.max_norm {
            if !(m >= 0.0 && m.is_finite()) {
                return Err(Error::invalid(
                    op,
                    format!("max_norm must be finite and >= 0, found {m}"),
                ));
            }
        }
        let p = self.norm_type;
        if p.is_nan() || p <= 0.0 {
            return Err(Error::invalid(
                op,
                format!("norm_type must be positive (or infinity), found {p}"),
            ));
        }
        Ok(())
    }
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
        config.check("Embedding")?;
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
            config,
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
        self.config.padding_idx
    }

    /// The options it was built with.
    pub fn config(&self) -> EmbeddingConfig {
        self.config
    }
}

impl Module for Embedding {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, embedding_with(input, &self.weight, &self.config))
    }

    /// PyTorch's `Embedding.extra_repr`: sizes, then the options that are
    /// not the defaults.
    fn extra_repr(&self) -> String {
        let c = &self.config;
        let mut s = format!("{}, {}", self.num_embeddings(), self.embedding_dim());
        if let Some(p) = c.padding_idx {
            s += &format!(", padding_idx={p}");
        }
        if let Some(m) = c.max_norm {
            s += &format!(", max_norm={}", py_float(m));
        }
        if c.norm_type != 2.0 {
            s += &format!(", norm_type={}", py_float(c.norm_type));
        }
        if c.scale_grad_by_freq {
            s += &format!(", scale_grad_by_freq={}", py_bool(true));
        }
        s
    }
}

/// `torch.nn.functional.embedding(indices, weight, padding_idx)`: rows of
/// `weight: [num, dim]` at `indices` (`I32`, any shape) → `[*indices, dim]`.
pub fn embedding(indices: &Tensor, weight: &Tensor, padding_idx: Option<usize>) -> Result<Tensor> {
    let config = EmbeddingConfig {
        padding_idx,
        ..EmbeddingConfig::default()
    };
    embedding_with(indices, weight, &config)
}

/// `torch.nn.functional.embedding` with every option of `config`. With
/// `max_norm` it rescales rows of `weight` in place first, as PyTorch does.
pub fn embedding_with(
    indices: &Tensor,
    weight: &Tensor,
    config: &EmbeddingConfig,
) -> Result<Tensor> {
    if crate::capture::hooked() {
        return crate::capture::traced(
            || crate::capture::Op::Embedding,
            &[Some(indices), Some(weight)],
            || embedding_with(indices, weight, config),
        );
    }
    let op = "embedding";
    indices.check_i32(op)?;
    config.check(op)?;
    let (num, dim) = weight.dims2(op, "weight [num_embeddings, dim]")?;
    let flat = indices.reshape_exact(&[indices.numel()])?;
    // The options that need the index values read them once, checked.
    let ids = if config.max_norm.is_some() || config.scale_grad_by_freq {
        Some(checked_ids(&flat, num)?)
    } else {
        None
    };
    if let (Some(ids), Some(max_norm)) = (&ids, config.max_norm) {
        embedding_renorm_(weight, ids, max_norm, config.norm_type)?;
    }
    let mut rows = weight.index_select(0, &flat)?;
    if let (Some(ids), true) = (&ids, config.scale_grad_by_freq) {
        rows = scale_grad_by_freq(&rows, &weight.detach().index_select(0, &flat)?, ids)?;
    }
    if let Some(p) = config.padding_idx {
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

/// The index values, each checked to be in `0..num`.
fn checked_ids(flat: &Tensor, num: usize) -> Result<Vec<usize>> {
    flat.to_vec_i32()?
        .into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .filter(|&i| i < num)
                .ok_or(Error::OutOfRange {
                    op: "embedding",
                    index: i as i64,
                    size: num,
                })
        })
        .collect()
}

/// `torch.embedding_renorm_`: each row of `weight` that `ids` names and
/// whose `norm_type`-norm exceeds `max_norm` is multiplied, in place, by
/// `max_norm / (norm + 1e-7)`. Not recorded on the tape.
fn embedding_renorm_(weight: &Tensor, ids: &[usize], max_norm: f32, norm_type: f32) -> Result<()> {
    let _no_grad = NoGradGuard::new();
    let (num, dim) = (weight.dims()[0], weight.dims()[1]);
    let mut unique: Vec<usize> = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let index: Vec<i32> = unique.iter().map(|&i| i as i32).collect();
    let index = Tensor::from_vec_i32(index, &[unique.len()], &weight.device())?;
    let rows = weight.detach().index_select(0, &index)?.to_vec()?;
    let mut scale = vec![1.0f32; num];
    let mut any = false;
    for (&row, values) in unique.iter().zip(rows.chunks(dim.max(1))) {
        let norm = p_norm(values, norm_type);
        if norm > max_norm as f64 {
            scale[row] = (max_norm as f64 / (norm + 1e-7)) as f32;
            any = true;
        }
    }
    if any {
        let scale = Tensor::from_vec(scale, &[num, 1], &weight.device())?;
        weight.set_data(&weight.detach().mul(&scale)?)?;
    }
    Ok(())
}

/// The `p`-norm of `values`, in `f64` (`p = ∞`: the largest magnitude).
fn p_norm(values: &[f32], p: f32) -> f64 {
    let abs = values.iter().map(|v| (*v as f64).abs());
    if p.is_infinite() {
        abs.fold(0.0, f64::max)
    } else {
        let p = p as f64;
        abs.map(|a| a.powf(p)).sum::<f64>().powf(1.0 / p)
    }
}

/// `rows` (the lookups at `ids`) with the same values and each gradient
/// divided by how often its index occurs in `ids`: `frozen + (rows -
/// frozen) / count`, where `frozen` is the same lookup detached. A row
/// with a non-finite value keeps its plain lookup (`inf - inf` would be
/// NaN).
fn scale_grad_by_freq(rows: &Tensor, frozen: &Tensor, ids: &[usize]) -> Result<Tensor> {
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for &i in ids {
        *counts.entry(i).or_default() += 1;
    }
    let factors: Vec<f32> = ids.iter().map(|i| 1.0 / counts[i] as f32).collect();
    let factors = Tensor::from_vec(factors, &[ids.len(), 1], &rows.device())?;
    let scaled = frozen.add(&rows.sub(frozen)?.mul(&factors)?)?;
    let finite = frozen
        .sub(frozen)?
        .eq(&Tensor::zeros(&[], &rows.device())?)?;
    Tensor::where_cond(&finite, &scaled, rows)
}
