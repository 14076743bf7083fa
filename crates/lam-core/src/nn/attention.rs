//! [`MultiheadAttention`] (PyTorch's `nn.MultiheadAttention`) and its
//! masks, [`AttnMask`].
//!
//! `softmax(Q Kᵀ / √d + mask) V` per head, with the query, key and value
//! projections packed in `in_proj_weight` `[3E, E]` (rows `q, k, v`) and
//! `in_proj_bias` `[3E]`, and the output projection in `out_proj` — PyTorch's
//! names, so weights interchange through `state_dict`. Shapes: query
//! `[L, B, E]`, key and value `[S, B, E]` (`[B, L, E]`, `[B, S, E]` with
//! `batch_first`; unbatched `[L, E]`, `[S, E]` also accepted).
//!
//! Masked scores get a large negative value ([`MASKED`]) rather than `-∞`,
//! so a position masked twice stays finite on every backend; a query row
//! whose keys are *all* masked therefore attends uniformly instead of giving
//! NaN as PyTorch does.

use super::summary::note;
use super::{init, Linear, Mode, Module};
use crate::tensor::check_operands;
use crate::{DType, Device, Error, Result, Tensor};

/// The op name in errors.
const OP: &str = "MultiheadAttention";

/// What a masked score becomes (effectively `-∞` after softmax).
pub const MASKED: f32 = -1e9;

/// An attention mask, in either of PyTorch's two kinds.
#[derive(Debug, Clone, Copy)]
pub enum AttnMask<'a> {
    /// PyTorch's boolean mask: a non-zero element means that position may
    /// **not** be attended to (an F32 0/1 tensor, or I32).
    Bool(&'a Tensor),
    /// Added to the attention scores before the softmax (PyTorch's float
    /// mask): 0 keeps a position, a large negative value removes it.
    Additive(&'a Tensor),
}

impl AttnMask<'_> {
    /// The mask as an additive F32 tensor.
    fn additive(&self, op: &'static str) -> Result<Tensor> {
        match self {
            AttnMask::Bool(m) => {
                let m = if m.dtype() == DType::F32 {
                    (*m).clone()
                } else {
                    m.to_dtype(DType::F32)?
                };
                let masked = m.ne(&Tensor::zeros(&[], &m.device())?)?;
                masked.mul_scalar(MASKED)
            }
            AttnMask::Additive(m) => {
                m.check_f32(op)?;
                Ok(m.detach())
            }
        }
    }

    fn tensor(&self) -> &Tensor {
        match self {
            AttnMask::Bool(m) | AttnMask::Additive(m) => m,
        }
    }
}

/// A causal ("square subsequent") mask `[n, n]` for [`AttnMask::Bool`]:
/// 1 above the diagonal, so position `i` attends to positions `≤ i`.
pub fn causal_mask(n: usize, device: &Device) -> Result<Tensor> {
    let data = (0..n * n)
        .map(|k| if k % n > k / n { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(data, &[n, n], device)
}

/// Options of [`MultiheadAttention`] beyond its sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Dropout on the attention weights, in training mode (default 0).
    pub dropout: f32,
    /// Learn `in_proj_bias` and `out_proj.bias` (default true).
    pub bias: bool,
    /// Inputs and output are `[B, L, E]` (default false: `[L, B, E]`).
    pub batch_first: bool,
}

impl Default for MultiheadAttentionConfig {
    fn default() -> Self {
        MultiheadAttentionConfig {
            dropout: 0.0,
            bias: true,
            batch_first: false,
        }
    }
}

/// Multi-head scaled dot-product attention.
#[derive(Module)]
pub struct MultiheadAttention {
    /// `[3E, E]`: the query, key and value projections stacked.
    #[module(param)]
    pub in_proj_weight: Tensor,
    /// `[3E]`, absent without bias.
    #[module(param)]
    pub in_proj_bias: Option<Tensor>,
    /// `[E, E]` output projection.
    pub out_proj: Linear,
    embed_dim: usize,
    num_heads: usize,
    #[module(skip)]
    config: MultiheadAttentionConfig,
    mode: Mode,
}

impl MultiheadAttention {
    /// `nn.MultiheadAttention(embed_dim, num_heads)`.
    pub fn new(embed_dim: usize, num_heads: usize, device: &Device) -> Result<Self> {
        Self::with_config(
            embed_dim,
            num_heads,
            MultiheadAttentionConfig::default(),
            device,
        )
    }

    /// `nn.MultiheadAttention` with options. PyTorch's initialisation:
    /// Xavier-uniform `in_proj_weight`, zero biases, default `out_proj.weight`.
    pub fn with_config(
        embed_dim: usize,
        num_heads: usize,
        config: MultiheadAttentionConfig,
        device: &Device,
    ) -> Result<Self> {
        let op = OP;
        if embed_dim == 0 || num_heads == 0 {
            return Err(Error::invalid(
                op,
                format!(
                    "embed_dim and num_heads must be positive, found {embed_dim} and {num_heads}"
                ),
            ));
        }
        if !embed_dim.is_multiple_of(num_heads) {
            return Err(Error::invalid(
                op,
                format!("embed_dim {embed_dim} is not divisible by num_heads {num_heads}"),
            ));
        }
        if !(0.0..=1.0).contains(&config.dropout) {
            return Err(Error::invalid(
                op,
                format!("dropout must be in [0, 1], found {}", config.dropout),
            ));
        }
        let in_proj_weight =
            init::xavier_uniform(&[3 * embed_dim, embed_dim], 1.0, device)?.requires_grad_()?;
        let in_proj_bias = if config.bias {
            Some(Tensor::zeros(&[3 * embed_dim], device)?.requires_grad_()?)
        } else {
            None
        };
        let out_proj = Linear::with_config(
            embed_dim,
            embed_dim,
            super::LinearConfig { bias: config.bias },
            device,
        )?;
        if let Some(b) = &out_proj.bias {
            b.set_data(&Tensor::zeros(&[embed_dim], device)?)?;
        }
        Ok(MultiheadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            embed_dim,
            num_heads,
            config,
            mode: Mode::new(),
        })
    }

    /// Attends from `query` to `key`/`value`. `key_padding_mask` is `[B, S]`
    /// (unbatched `[S]`); `attn_mask` is `[L, S]` or `[B·num_heads, L, S]`.
    /// Returns the output (the query's shape) and, when `need_weights`, the
    /// attention weights averaged over heads, `[B, L, S]` (unbatched
    /// `[L, S]`), after dropout as PyTorch returns them.
    pub fn forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        key_padding_mask: Option<AttnMask<'_>>,
        attn_mask: Option<AttnMask<'_>>,
        need_weights: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        check_operands(OP, DType::F32, [query, key, value])?;
        // The query decides batched or unbatched; key and value follow it.
        let batched = query.batched(OP, 3, "batched query", "unbatched query")?;
        let q = self.batch_major(query, "query", batched)?;
        let k = self.batch_major(key, "key", batched)?;
        let v = self.batch_major(value, "value", batched)?;
        let ((b, l, _), (_, s, _)) = (q.dims3(OP, "query")?, k.dims3(OP, "key")?);
        if k.dims()[0] != b || v.dims()[..2] != [b, s] {
            return Err(Error::shape(
                OP,
                format!(
                    "key and value with the query's batch size {b} and equal lengths, key {:?}",
                    key.dims()
                ),
                value.dims(),
            ));
        }
        if b == 0 || l == 0 || s == 0 {
            return Err(Error::Empty { op: OP });
        }

        let d = self.embed_dim / self.num_heads;
        let qh = self.project(&q, 0)?.mul_scalar(1.0 / (d as f32).sqrt())?;
        let (kh, vh) = (self.project(&k, 1)?, self.project(&v, 2)?);
        let scores = qh.matmul(&kh.transpose(-1, -2)?)?; // [B, H, L, S]
        let scores = self.masked(scores, attn_mask, key_padding_mask, batched)?;

        let mut weights = scores.softmax(-1)?;
        if self.mode.is_training() && self.config.dropout > 0.0 {
            weights = super::dropout::dropout(&weights, self.config.dropout, true)?;
        }
        let out = weights
            .matmul(&vh)? // [B, H, L, d]
            .permute(&[0, 2, 1, 3])?
            .reshape_exact(&[b, l, self.embed_dim])?;
        let out = self.caller_layout(self.out_proj.forward(&out)?, batched)?;
        let weights = if need_weights {
            let avg = weights.mean(&[1], false)?; // [B, L, S]
            Some(if batched { avg } else { avg.squeeze(0)? })
        } else {
            None
        };
        note(self, &out);
        Ok((out, weights))
    }

    /// `embed_dim`.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// `num_heads`.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// The options it was built with.
    pub fn config(&self) -> MultiheadAttentionConfig {
        self.config
    }

    /// True in training mode (attention dropout active).
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }
}

impl MultiheadAttention {
    /// `t` (the query, key or value, `name`d in errors) as `[B, len, E]`:
    /// checked to be of the query's batching with embed_dim features.
    fn batch_major(&self, t: &Tensor, name: &str, batched: bool) -> Result<Tensor> {
        let (rank, form) = if batched {
            (3, "batched, as the query")
        } else {
            (2, "unbatched, as the query")
        };
        t.expect_rank(OP, &format!("{name}, {form}"), rank)?;
        let e = self.embed_dim;
        if t.dims()[rank - 1] != e {
            return Err(Error::shape(
                OP,
                format!("a {name} whose last dim is embed_dim {e}"),
                t.dims(),
            ));
        }
        if !batched {
            t.unsqueeze(0)
        } else if self.config.batch_first {
            Ok(t.clone())
        } else {
            t.transpose(0, 1)
        }
    }

    /// The output `[B, L, E]` back in the caller's layout.
    fn caller_layout(&self, out: Tensor, batched: bool) -> Result<Tensor> {
        if !batched {
            out.squeeze(0)
        } else if self.config.batch_first {
            Ok(out)
        } else {
            out.transpose(0, 1)
        }
    }

    /// `x: [B, len, E]` through projection rows `part` (0 query, 1 key,
    /// 2 value), split into heads: `[B, H, len, d]`.
    fn project(&self, x: &Tensor, part: usize) -> Result<Tensor> {
        let e = self.embed_dim;
        let (h, d) = (self.num_heads, e / self.num_heads);
        let w = self.in_proj_weight.narrow(0, part * e, e)?;
        let bias = match &self.in_proj_bias {
            Some(bias) => Some(bias.narrow(0, part * e, e)?),
            None => None,
        };
        let (b, len) = (x.dims()[0], x.dims()[1]);
        super::linear::linear(x, &w, bias.as_ref())?
            .reshape_exact(&[b, len, h, d])?
            .permute(&[0, 2, 1, 3])
    }

    /// `scores: [B, H, L, S]` plus both masks, checked against its shape.
    fn masked(
        &self,
        mut scores: Tensor,
        attn_mask: Option<AttnMask<'_>>,
        key_padding_mask: Option<AttnMask<'_>>,
        batched: bool,
    ) -> Result<Tensor> {
        let (b, h, l, s) = scores.dims4(OP, "scores")?;
        if let Some(mask) = attn_mask {
            let m = mask.tensor();
            let additive = mask.additive(OP)?;
            let additive = if m.dims() == [l, s] {
                additive
            } else if m.dims() == [b * h, l, s] {
                additive.reshape_exact(&[b, h, l, s])?
            } else {
                return Err(Error::shape(
                    OP,
                    format!("an attn_mask of shape [{l}, {s}] or [{}, {l}, {s}]", b * h),
                    m.dims(),
                ));
            };
            scores = scores.add(&additive)?;
        }
        if let Some(mask) = key_padding_mask {
            let expected: &[usize] = if batched { &[b, s] } else { &[s] };
            mask.tensor()
                .expect_shape(OP, "a key_padding_mask", expected)?;
            let additive = mask.additive(OP)?.reshape_exact(&[b, 1, 1, s])?;
            scores = scores.add(&additive)?;
        }
        Ok(scores)
    }
}

impl Module for MultiheadAttention {
    /// Self-attention of `input` without masks; the output only.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(MultiheadAttention::forward(self, input, input, input, None, None, false)?.0)
    }
}
