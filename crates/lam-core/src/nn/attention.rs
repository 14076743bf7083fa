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
//! PyTorch's options: keys of `kdim` and values of `vdim` features (then the
//! projections are separate, `q_proj_weight` `[E, E]`, `k_proj_weight`
//! `[E, kdim]`, `v_proj_weight` `[E, vdim]`, and there is no
//! `in_proj_weight`); `add_bias_kv` (learned `bias_k`, `bias_v` `[1, 1, E]`
//! appended to the projected keys and values as one more position);
//! `add_zero_attn` (a zero key and value appended after the heads split).
//! Each added position widens the masks with a column that masks nothing,
//! and the attention weights (averaged over heads, or per head from
//! [`MultiheadAttention::forward_with_weights`]) cover it.
//!
//! Masked scores get a large negative value ([`MASKED`]) rather than `-∞`,
//! so a position masked twice stays finite on every backend; a query row
//! whose keys are *all* masked therefore attends uniformly instead of giving
//! NaN as PyTorch does.
//!
//! Without weights to return (`need_weights = false`, the `Module` forward,
//! `TransformerEncoderLayer`) and without attention dropout in training,
//! the heads go through [`Tensor::scaled_dot_product_attention`]'s fused
//! op, as PyTorch takes its fast path then: both masks become one additive
//! mask (broadcast, not materialised per head), and the `-1e9` scores are
//! ordinary scores there, so fully masked rows attend uniformly on both
//! paths (equal up to rounding). An `attn_mask` that is exactly the causal
//! mask, on the CPU, becomes the fused op's causal flag (PyTorch's
//! `is_causal` hint, detected): keys above the diagonal are skipped instead
//! of scored and masked — the same result for finite scores, and a NaN or
//! infinite score of a hidden key no longer reaches the row.
//! [`MultiheadAttention::forward_with_weights`],
//! attention dropout and graph capture take the composite, which forms the
//! weights.
//!
//! This file holds the layer, its options and its masks; the forward pass
//! is in `attention/forward.rs`.

mod forward;

use super::{init, Linear, Mode, Module};
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

/// `F.scaled_dot_product_attention(q, k, v, ...)`: see
/// [`Tensor::scaled_dot_product_attention`] (its bool mask follows
/// PyTorch's SDPA: non-zero means *attend*).
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    options: crate::SdpaOptions<'_>,
) -> Result<Tensor> {
    Tensor::scaled_dot_product_attention(q, k, v, options)
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
    /// Features of the key (default none: `embed_dim`).
    pub kdim: Option<usize>,
    /// Features of the value (default none: `embed_dim`).
    pub vdim: Option<usize>,
    /// Learn `bias_k` and `bias_v`, appended to the keys and values
    /// (default false).
    pub add_bias_kv: bool,
    /// Append a zero key and value to every head (default false).
    pub add_zero_attn: bool,
}

impl Default for MultiheadAttentionConfig {
    fn default() -> Self {
        MultiheadAttentionConfig {
            dropout: 0.0,
            bias: true,
            batch_first: false,
            kdim: None,
            vdim: None,
            add_bias_kv: false,
            add_zero_attn: false,
        }
    }
}

/// Multi-head scaled dot-product attention.
#[derive(Module)]
pub struct MultiheadAttention {
    /// `[3E, E]`: the query, key and value projections stacked; absent when
    /// `kdim` or `vdim` differs from `embed_dim`.
    #[module(param)]
    pub in_proj_weight: Option<Tensor>,
    /// `[E, E]`, present (with the next two) when `kdim` or `vdim` differs
    /// from `embed_dim`.
    #[module(param)]
    pub q_proj_weight: Option<Tensor>,
    /// `[E, kdim]`.
    #[module(param)]
    pub k_proj_weight: Option<Tensor>,
    /// `[E, vdim]`.
    #[module(param)]
    pub v_proj_weight: Option<Tensor>,
    /// `[3E]`, absent without bias.
    #[module(param)]
    pub in_proj_bias: Option<Tensor>,
    /// `[1, 1, E]`, with `add_bias_kv`.
    #[module(param)]
    pub bias_k: Option<Tensor>,
    /// `[1, 1, E]`, with `add_bias_kv`.
    #[module(param)]
    pub bias_v: Option<Tensor>,
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
    /// Xavier-uniform `in_proj_weight` (or each of `q`/`k`/`v_proj_weight`),
    /// zero biases, Xavier-normal `bias_k` and `bias_v`, default
    /// `out_proj.weight`.
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
        let (kdim, vdim) = (
            config.kdim.unwrap_or(embed_dim),
            config.vdim.unwrap_or(embed_dim),
        );
        if kdim == 0 || vdim == 0 {
            return Err(Error::invalid(
                op,
                format!("kdim and vdim must be positive, found {kdim} and {vdim}"),
            ));
        }
        let xavier = |shape: &[usize]| init::xavier_uniform(shape, 1.0, device)?.requires_grad_();
        let (in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight) =
            if kdim == embed_dim && vdim == embed_dim {
                (Some(xavier(&[3 * embed_dim, embed_dim])?), None, None, None)
            } else {
                (
                    None,
                    Some(xavier(&[embed_dim, embed_dim])?),
                    Some(xavier(&[embed_dim, kdim])?),
                    Some(xavier(&[embed_dim, vdim])?),
                )
            };
        let (bias_k, bias_v) = if config.add_bias_kv {
            let normal = || init::xavier_normal(&[1, 1, embed_dim], 1.0, device)?.requires_grad_();
            (Some(normal()?), Some(normal()?))
        } else {
            (None, None)
        };
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
            q_proj_weight,
            k_proj_weight,
            v_proj_weight,
            in_proj_bias,
            bias_k,
            bias_v,
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
        let weights = need_weights.then_some(true);
        self.attend(query, key, value, key_padding_mask, attn_mask, weights)
    }

    /// [`forward`](Self::forward) with the attention weights, averaged over
    /// heads (`[B, L, S]`) when `average_attn_weights`, else per head
    /// (`[B, num_heads, L, S]`; unbatched without the `B`) — PyTorch's
    /// `need_weights=True, average_attn_weights=...`.
    pub fn forward_with_weights(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        key_padding_mask: Option<AttnMask<'_>>,
        attn_mask: Option<AttnMask<'_>>,
        average_attn_weights: bool,
    ) -> Result<(Tensor, Tensor)> {
        let weights = Some(average_attn_weights);
        let (out, weights) =
            self.attend(query, key, value, key_padding_mask, attn_mask, weights)?;
        let weights = weights.ok_or_else(|| Error::invalid(OP, "no attention weights"))?;
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

impl Module for MultiheadAttention {
    /// Self-attention of `input` without masks; the output only.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(MultiheadAttention::forward(self, input, input, input, None, None, false)?.0)
    }
}
