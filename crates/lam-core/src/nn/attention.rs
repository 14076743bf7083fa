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

impl MultiheadAttention {
    /// The attention; `weights` says whether to return the weights, and
    /// whether averaged over heads (`Some(true)`) or per head.
    fn attend(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        key_padding_mask: Option<AttnMask<'_>>,
        attn_mask: Option<AttnMask<'_>>,
        weights: Option<bool>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        check_operands(OP, DType::F32, [query, key, value])?;
        // The query decides batched or unbatched; key and value follow it.
        let batched = query.batched(OP, 3, "batched query", "unbatched query")?;
        let e = self.embed_dim;
        let (kdim, vdim) = (self.config.kdim.unwrap_or(e), self.config.vdim.unwrap_or(e));
        let q = self.batch_major(query, "query", "embed_dim", e, batched)?;
        let k = self.batch_major(key, "key", "kdim", kdim, batched)?;
        let v = self.batch_major(value, "value", "vdim", vdim, batched)?;
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

        let d = e / self.num_heads;
        // In self-attention under autocast the three projections read one
        // F16 copy of the input, which their rules then share, where each
        // would make (and keep) its own.
        let self_attention = query.id() == key.id() && key.id() == value.id();
        let (q, k, v) = match crate::amp::autocast_dtype(&q.device()) {
            Some(half) if self_attention => {
                let x = q.to_dtype(half)?;
                (x.clone(), x.clone(), x)
            }
            _ => (q, k, v),
        };
        let q = self.project(&q, 0)?;
        let (mut k, mut v) = (self.project(&k, 1)?, self.project(&v, 2)?);
        if let (Some(bias_k), Some(bias_v)) = (&self.bias_k, &self.bias_v) {
            let shape = [b as isize, 1, e as isize];
            k = Tensor::cat(&[k, bias_k.expand(&shape)?], 1)?;
            v = Tensor::cat(&[v, bias_v.expand(&shape)?], 1)?;
        }
        let scale = 1.0 / (d as f32).sqrt();
        let dropout = self.mode.is_training() && self.config.dropout > 0.0;
        // The fused attention when the weights are not asked for (as
        // PyTorch's fast path); a graph capture records the composite, the
        // ops an exported graph is made of.
        let fused = weights.is_none() && !dropout && !crate::capture::hooked();
        let qh = self.heads(&q)?;
        let qh = if fused { qh } else { qh.mul_scalar(scale)? };
        let (mut kh, mut vh) = (self.heads(&k)?, self.heads(&v)?);
        if self.config.add_zero_attn {
            let zeros = Tensor::zeros(&[b, self.num_heads, 1, d], &q.device())?;
            kh = Tensor::cat(&[kh, zeros.clone()], 2)?;
            vh = Tensor::cat(&[vh, zeros], 2)?;
        }
        let width = kh.dims()[2]; // S + added
        let scores_shape = [b, self.num_heads, l, width];
        let masks =
            |scores_shape| self.masks(scores_shape, s, attn_mask, key_padding_mask, batched);

        let (heads_out, attn) = if fused {
            // The standard causal mask becomes the kernel's flag: keys above
            // the diagonal are then skipped rather than masked.
            let causal = width == s && attn_mask.is_some_and(|m| is_causal(m, l, s));
            let attn_mask = if causal { None } else { attn_mask };
            let masks =
                |scores_shape| self.masks(scores_shape, s, attn_mask, key_padding_mask, batched);
            let mut mask: Option<Tensor> = None;
            for m in masks(scores_shape)? {
                mask = Some(match mask {
                    Some(sum) => sum.add(&m)?,
                    None => m,
                });
            }
            let mask = match mask {
                Some(m) => Some(m.broadcast_to(&scores_shape)?),
                None => None,
            };
            let out = crate::tensor::attention(&qh, &kh, &vh, mask.as_ref(), causal, scale)?;
            (out, None)
        } else {
            let mut scores = qh.matmul(&kh.transpose(-1, -2)?)?; // [B, H, L, S + added]
            for mask in masks(scores_shape)? {
                scores = scores.add(&mask)?;
            }
            let mut attn = scores.softmax(-1)?;
            if dropout {
                attn = super::dropout::dropout(&attn, self.config.dropout, true)?;
            }
            (attn.matmul(&vh)?, Some(attn))
        };
        let out = heads_out // [B, H, L, d]
            .permute(&[0, 2, 1, 3])?
            .reshape_exact(&[b, l, e])?;
        let out = self.caller_layout(self.out_proj.forward(&out)?, batched)?;
        let weights = match (weights, attn) {
            (Some(average), Some(attn)) => {
                let w = if average {
                    attn.mean(&[1], false)? // [B, L, S]
                } else {
                    attn
                };
                Some(if batched { w } else { w.squeeze(0)? })
            }
            _ => None,
        };
        note(self, &out);
        Ok((out, weights))
    }

    /// `t` (the query, key or value, `name`d in errors) as `[B, len, F]`:
    /// checked to be of the query's batching with `features` (`what`) last.
    fn batch_major(
        &self,
        t: &Tensor,
        name: &str,
        what: &str,
        features: usize,
        batched: bool,
    ) -> Result<Tensor> {
        let (rank, form) = if batched {
            (3, "batched, as the query")
        } else {
            (2, "unbatched, as the query")
        };
        t.expect_rank(OP, &format!("{name}, {form}"), rank)?;
        if t.dims()[rank - 1] != features {
            return Err(Error::shape(
                OP,
                format!("a {name} whose last dim is {what} {features}"),
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

    /// `x: [B, len, F]` through projection `part` (0 query, 1 key,
    /// 2 value): `[B, len, E]`.
    fn project(&self, x: &Tensor, part: usize) -> Result<Tensor> {
        let e = self.embed_dim;
        let separate = [
            &self.q_proj_weight,
            &self.k_proj_weight,
            &self.v_proj_weight,
        ];
        let w = match (&self.in_proj_weight, separate[part]) {
            (Some(packed), _) => packed.narrow(0, part * e, e)?,
            (None, Some(w)) => w.clone(),
            (None, None) => {
                return Err(Error::invalid(
                    OP,
                    "neither in_proj_weight nor q/k/v_proj_weight",
                ))
            }
        };
        let bias = match &self.in_proj_bias {
            Some(bias) => Some(bias.narrow(0, part * e, e)?),
            None => None,
        };
        super::linear::linear(x, &w, bias.as_ref())
    }

    /// `x: [B, len, E]` split into heads: `[B, H, len, d]`.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (h, d) = (self.num_heads, self.embed_dim / self.num_heads);
        let (b, len) = (x.dims()[0], x.dims()[1]);
        x.reshape_exact(&[b, len, h, d])?.permute(&[0, 2, 1, 3])
    }

    /// The additive masks to add to the scores (`scores_shape`, `[B, H, L,
    /// s + added]`) in order — `attn_mask` (`[L, s]` or `[B, H, L, s]`), then
    /// `key_padding_mask` (`[B, 1, 1, s]`) — checked against the key length
    /// `s`; the positions added after the keys (`bias_k`, the zero
    /// attention) are never masked. Each is an error when its shape is
    /// wrong, given when the scores need it.
    fn masks(
        &self,
        scores_shape: [usize; 4],
        s: usize,
        attn_mask: Option<AttnMask<'_>>,
        key_padding_mask: Option<AttnMask<'_>>,
        batched: bool,
    ) -> Result<Vec<Tensor>> {
        let [b, h, l, width] = scores_shape;
        let added = width - s;
        // An additive mask `[.., s]` widened with `added` zero columns.
        let widen = |m: Tensor| -> Result<Tensor> {
            if added == 0 {
                return Ok(m);
            }
            let mut shape = m.shape();
            let last = shape.len() - 1;
            shape[last] = added;
            let zeros = Tensor::zeros(&shape, &m.device())?;
            Tensor::cat(&[m, zeros], -1)
        };
        let mut masks = Vec::new();
        if let Some(mask) = attn_mask {
            let m = mask.tensor();
            if m.dims() != [l, s] && m.dims() != [b * h, l, s] {
                return Err(Error::shape(
                    OP,
                    format!("an attn_mask of shape [{l}, {s}] or [{}, {l}, {s}]", b * h),
                    m.dims(),
                ));
            }
            let additive = mask.additive(OP)?;
            let additive = if m.dims() == [l, s] {
                additive
            } else {
                additive.reshape_exact(&[b, h, l, s])?
            };
            masks.push(widen(additive)?);
        }
        if let Some(mask) = key_padding_mask {
            let expected: &[usize] = if batched { &[b, s] } else { &[s] };
            mask.tensor()
                .expect_shape(OP, "a key_padding_mask", expected)?;
            let additive = mask.additive(OP)?.reshape_exact(&[b, 1, 1, s])?;
            masks.push(widen(additive)?);
        }
        Ok(masks)
    }
}

/// True when `mask` is exactly the causal mask `[l, s]` of its kind (query
/// `i` may attend to keys `j ≤ i` only: [`causal_mask`] as a bool mask, or
/// 0 and `-∞` as an additive one). Checked on the CPU only, where reading
/// the `l · s` values costs next to nothing; on a GPU the read would wait
/// for the queue at every call, so the mask is applied as given.
fn is_causal(mask: AttnMask<'_>, l: usize, s: usize) -> bool {
    let m = mask.tensor();
    if m.device().is_gpu() || m.dims() != [l, s] {
        return false;
    }
    let additive = matches!(mask, AttnMask::Additive(_));
    if additive && m.dtype() != DType::F32 {
        return false;
    }
    let Ok(values) = m.to_vec() else {
        return false;
    };
    let hidden = |k: usize| k % s > k / s;
    values
        .iter()
        .enumerate()
        .all(|(k, &x)| match (additive, hidden(k)) {
            (false, hidden) => (x != 0.0) == hidden,
            (true, true) => x == f32::NEG_INFINITY,
            (true, false) => x == 0.0,
        })
}

impl Module for MultiheadAttention {
    /// Self-attention of `input` without masks; the output only.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(MultiheadAttention::forward(self, input, input, input, None, None, false)?.0)
    }
}
