//! [`MultiheadAttention`]'s forward pass: the inputs checked and brought to
//! `[B, len, F]`, projected and split into heads, the masks made additive
//! and widened for the added key positions, then either the fused
//! attention (no weights to return, no dropout, no graph capture; a causal
//! `attn_mask` detected on the CPU becomes its causal flag) or the
//! composite that forms the weights, and the heads merged through
//! `out_proj` back into the caller's layout. See the parent module for
//! PyTorch's options and why masked scores are finite.

use super::{AttnMask, MultiheadAttention, OP};
use crate::nn::summary::note;
use crate::nn::Module;
use crate::tensor::check_operands;
use crate::{DType, Error, Result, Tensor};

impl MultiheadAttention {
    /// The attention; `weights` says whether to return the weights, and
    /// whether averaged over heads (`Some(true)`) or per head.
    pub(super) fn attend(
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
                attn = crate::nn::dropout::dropout(&attn, self.config.dropout, true)?;
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
        crate::nn::linear::linear(x, &w, bias.as_ref())
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
/// `i` may attend to keys `j ≤ i` only: [`causal_mask`](super::causal_mask)
/// as a bool mask, or 0 and `-∞` as an additive one). Checked on the CPU only, where reading
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
