//! Scaled dot-product attention, PyTorch's
//! `F.scaled_dot_product_attention`: `softmax(scale · q kᵀ + mask) v` over
//! the last two dims, leading dims broadcast.
//!
//! One tape op. Its forward is the backend's `fused_attention` (online
//! softmax over key tiles, no `[L, S]` score matrix in memory) when the
//! backend has it, else the composite below; either way it keeps the
//! output and each query row's softmax statistics (its shift `m` and sum
//! `l`), from which the backward recomputes the attention weights — the
//! backend's `fused_attention_grad` (FlashAttention-2's backward), else the
//! composite. An additive mask that requires grad gets its gradient from
//! the composite backward, the one that forms the score gradient
//! `[.., L, S]`.
//!
//! The composite is two batched products around a softmax: `q kᵀ`, the
//! weights, `p v` forward; `q kᵀ`, `g vᵀ`, the weights and their gradient,
//! then three products backward. The softmax between the products is the
//! backend's `fused_attention_weights` (and `_grad`), one pass over the
//! scores, where it has them, else a dozen primitives (`composed_weights`,
//! `composed_weights_grad`).
//!
//! Masked keys: a bool mask's false and a causal mask's upper triangle are
//! `-∞` added to the scores; a query row with every key masked gives 0 (and
//! zero gradients), as PyTorch 2.5 and later. A finite mask, however large
//! (`nn::MultiheadAttention`'s `-1e9`), is an ordinary score: a row masked
//! everywhere by it attends uniformly, in the forward and the backward. Dropout on the attention
//! weights (`dropout_p > 0`) is always the composite, with dropout drawn from
//! the current generator as [`crate::nn::functional::dropout`].

use crate::backend::{AttentionInputs, AttentionScores};
use crate::layout::broadcast_shapes;
use crate::{no_grad, DType, Error, Layout, Result, Tensor};

const OP: &str = "scaled_dot_product_attention";

/// An attention mask of [`Tensor::scaled_dot_product_attention`], in
/// PyTorch's two kinds, broadcastable to `[.., L, S]`.
#[derive(Debug, Clone, Copy)]
pub enum SdpaMask<'a> {
    /// PyTorch's bool `attn_mask`: a **non-zero** element means the query
    /// *may* attend to that key (the opposite of
    /// [`crate::nn::AttnMask::Bool`], which follows `nn.MultiheadAttention`).
    /// `F32` or `I32`.
    Bool(&'a Tensor),
    /// Added to the scaled scores (`F32`); `-∞` removes a key. It receives
    /// a gradient when it requires one.
    Additive(&'a Tensor),
}

/// Options of [`Tensor::scaled_dot_product_attention`], PyTorch's keyword
/// arguments; `Default` is PyTorch's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct SdpaOptions<'a> {
    /// `attn_mask`.
    pub mask: Option<SdpaMask<'a>>,
    /// `is_causal`: query `i` attends to keys `j ≤ i` (top-left aligned when
    /// `L ≠ S`). May be combined with `mask`.
    pub causal: bool,
    /// `scale`; default `1 / √E`.
    pub scale: Option<f32>,
    /// `dropout_p`: dropout on the attention weights, always applied when
    /// positive (as PyTorch's functional form: pass 0 in evaluation).
    pub dropout_p: f32,
}

impl Tensor {
    /// `F.scaled_dot_product_attention(q, k, v, ...)`: `q` `[.., L, E]`,
    /// `k` `[.., S, E]`, `v` `[.., S, Ev]`, leading dims broadcast together
    /// (and with the mask's), gives `[.., L, Ev]`. Gradients reach `q`, `k`,
    /// `v` and an additive mask.
    pub fn scaled_dot_product_attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        options: SdpaOptions<'_>,
    ) -> Result<Tensor> {
        let shapes = Shapes::check(q, k, v, options.mask)?;
        if !(0.0..=1.0).contains(&options.dropout_p) {
            return Err(Error::invalid(
                OP,
                format!("dropout_p must be in [0, 1], found {}", options.dropout_p),
            ));
        }
        let e = q.dims()[q.rank() - 1];
        let scale = options
            .scale
            .unwrap_or(if e == 0 { 1.0 } else { 1.0 / (e as f32).sqrt() });
        let mask = match options.mask {
            None => None,
            Some(SdpaMask::Additive(m)) => Some(m.clone()),
            Some(SdpaMask::Bool(m)) => Some(bool_to_additive(m)?),
        };
        let (l, s, ev) = (shapes.l, shapes.s, shapes.ev);
        let [q4, k4, v4] =
            [(q, [l, e]), (k, [s, e]), (v, [s, ev])].map(|(t, tail)| shapes.four_dims(t, tail));
        let (q4, k4, v4) = (q4?, k4?, v4?);
        let mask4 = match &mask {
            Some(m) => Some(shapes.four_dims(m, [l, s])?),
            None => None,
        };
        let out = if options.dropout_p > 0.0 {
            let (weights, _) = weights(&q4, &k4, mask4.as_ref(), options.causal, scale)?;
            let dropped = crate::nn::functional::dropout(&weights, options.dropout_p, true)?;
            dropped.matmul(&v4)?
        } else {
            attention(&q4, &k4, &v4, mask4.as_ref(), options.causal, scale)?
        };
        let mut out_shape = shapes.batch.clone();
        out_shape.extend([l, ev]);
        out.reshape_exact(&out_shape)
    }
}

/// Attention of `[B, H, L, E]` queries, `[B, H, S, E]` keys and `[B, H, S,
/// Ev]` values (any strides) with an optional additive `[B, H, L, S]` mask,
/// as one tape op (the module doc): `[B, H, L, Ev]`. For
/// `nn::MultiheadAttention`, whose inputs are already in this form.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f32,
) -> Result<Tensor> {
    let (b, h, l, _) = q.dims4(OP, "query")?;
    let ev = v.dims()[3];
    if b * h * l * ev == 0 || k.dims()[2] == 0 {
        // No score to normalise: an empty output, or zeros (no keys).
        return Tensor::zeros(&[b, h, l, ev], &q.device());
    }
    // The op computes in `F32` whichever way it runs: `F16` operands (from
    // products under autocast) are read through `F32` copies, and the
    // composite forward runs outside autocast, so its products are the
    // fused kernel's `F32` ones and its backward (which autocast never
    // reaches) sees one dtype. With `F16` query, key and value the output
    // is rounded to `F16`, as PyTorch's attention on half tensors, and the
    // rule keeps the `F16` tensors (half the bytes), read as `F32` again
    // when it runs.
    let half = [q, k, v].iter().all(|t| t.dtype() == DType::F16);
    let [q32, k32, v32] = no_grad(|| -> Result<[Tensor; 3]> {
        Ok([q.float32(OP)?, k.float32(OP)?, v.float32(OP)?])
    })?;
    let mask = match mask {
        Some(m) => Some(m.float32(OP)?),
        None => None,
    };
    let mask = mask.as_ref();
    let (out, stats, ready) = no_grad(|| {
        let _amp = crate::amp::suspended();
        let (out, stats, ready) = forward(&q32, &k32, &v32, mask, causal, scale)?;
        let out = if half { out.to_dtype(DType::F16)? } else { out };
        Ok::<_, crate::Error>((out, stats, ready))
    })?;
    // The rule keeps F32 operands as the composite's products read them
    // (`product_ready`), which its backward reads again; F16 ones as halves.
    let keep = |t: &Tensor, i: usize| match &ready {
        Some(ready) if !half => ready[i].detach(),
        _ => t.detach(),
    };
    let saved = Saved {
        q: keep(q, 0),
        k: keep(k, 1),
        v: keep(v, 2),
        mask: mask.map(Tensor::detach),
        mask_grad: mask.is_some_and(Tensor::requires_grad),
        out: out.detach(),
        stats,
        causal,
        scale,
    };
    let mut inputs = vec![q, k, v];
    inputs.extend(mask);
    Ok(Tensor::from_op(
        OP,
        out.storage(),
        out.layout().clone(),
        &inputs,
        move |g| saved.backward(g),
    ))
}

/// The checked sizes of one call: `q [batch.., L, E]`, `k [.., S, E]`,
/// `v [.., S, Ev]`, the broadcast batch dims.
struct Shapes {
    batch: Vec<usize>,
    l: usize,
    s: usize,
    ev: usize,
}

impl Shapes {
    fn check(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<SdpaMask<'_>>) -> Result<Shapes> {
        crate::tensor::check_operands(OP, DType::F32, [q, k, v])?;
        for (t, name) in [(q, "query"), (k, "key"), (v, "value")] {
            t.expect_min_rank(OP, &format!("{name} [.., len, features]"), 2)?;
        }
        fn split(t: &Tensor) -> (&[usize], &[usize]) {
            t.dims().split_at(t.rank() - 2)
        }
        let ((qb, &[l, e]), (kb, &[s, ke]), (vb, &[vs, ev])) = (split(q), split(k), split(v))
        else {
            return Err(Error::invalid(OP, "ranks checked above"));
        };
        if ke != e {
            return Err(Error::shape(
                OP,
                format!("a key whose last dim is the query's {e}"),
                k.dims(),
            ));
        }
        if vs != s {
            return Err(Error::shape(
                OP,
                format!("a value with the key's length {s} in dim -2"),
                v.dims(),
            ));
        }
        let batch = broadcast_shapes(OP, qb, kb)?;
        let batch = broadcast_shapes(OP, &batch, vb)?;
        if let Some(mask) = mask {
            let m = match mask {
                SdpaMask::Bool(m) => {
                    q.device().check_same(&m.device(), OP)?;
                    m
                }
                SdpaMask::Additive(m) => {
                    crate::tensor::check_operands(OP, DType::F32, [q, m])?;
                    m
                }
            };
            let mut scores = batch.clone();
            scores.extend([l, s]);
            if broadcast_shapes(OP, m.dims(), &scores).ok().as_ref() != Some(&scores) {
                return Err(Error::shape(
                    OP,
                    format!("a mask that broadcasts to the scores' shape {scores:?}"),
                    m.dims(),
                ));
            }
        }
        Ok(Shapes { batch, l, s, ev })
    }

    /// `t` broadcast to `[batch.., tail]` and viewed as `[B, H, tail]`: the
    /// batch dims become two (leading ones merged, a copy only when their
    /// strides do not merge).
    fn four_dims(&self, t: &Tensor, tail: [usize; 2]) -> Result<Tensor> {
        let mut full = self.batch.clone();
        full.extend(tail);
        let t = if t.dims() == full.as_slice() {
            t.clone()
        } else {
            t.broadcast_to(&full)?
        };
        let n = self.batch.len();
        let (b, h) = match n {
            0 => (1, 1),
            _ => (self.batch[..n - 1].iter().product(), self.batch[n - 1]),
        };
        t.reshape_exact(&[b, h, tail[0], tail[1]])
    }
}

/// A bool mask (non-zero: attend) as the additive one: 0 or `-∞`.
fn bool_to_additive(mask: &Tensor) -> Result<Tensor> {
    let dev = mask.device();
    let keep = mask.to_dtype(DType::F32)?.ne(&Tensor::scalar(0.0, &dev)?)?;
    Tensor::where_cond(
        &keep,
        &Tensor::scalar(0.0, &dev)?,
        &Tensor::scalar(f32::NEG_INFINITY, &dev)?,
    )
}

/// The output `[B, H, L, Ev]` and softmax statistics `[B, H, L, 2]` (see
/// [`crate::Backend::fused_attention`]): fused when the backend can, else
/// composed, which also returns `q`, `k` and `v` as its products read them
/// (see [`product_ready`]).
#[allow(clippy::type_complexity)]
fn forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f32,
) -> Result<(Tensor, Tensor, Option<[Tensor; 3]>)> {
    let (b, h, l, _) = q.dims4(OP, "query")?;
    let ev = v.dims()[3];
    let (qs, ks, vs) = (q.storage(), k.storage(), v.storage());
    let ms = mask.map(Tensor::storage);
    let inputs = AttentionInputs {
        q: (&qs, q.layout()),
        k: (&ks, k.layout()),
        v: (&vs, v.layout()),
        mask: mask.zip(ms.as_ref()).map(|(m, s)| (s, m.layout())),
        causal,
        scale,
    };
    let dev = q.device();
    if let Some((out, stats)) = q.backend().fused_attention(&inputs)? {
        return Ok((
            Tensor::from_storage(out, Layout::contiguous(&[b, h, l, ev]), &dev),
            Tensor::from_storage(stats, Layout::contiguous(&[b, h, l, 2]), &dev),
            None,
        ));
    }
    let (q, k, v) = (product_ready(q)?, product_ready(k)?, product_ready(v)?);
    let products = q.matmul(&k.transpose(-1, -2)?)?;
    let (weights, stats) = match fused_weights(&products, mask, causal, scale)? {
        Some(fused) => fused,
        None => composed_weights(&products, mask, causal, scale)?,
    };
    Ok((weights.matmul(&v)?, stats, Some([q, k, v])))
}

/// `t` as a product reads it without a copy: itself, or where its batch
/// dims do not merge into one stride (heads split out of a `[B, L, H·E]`
/// projection) one contiguous copy, made once for every product that
/// reads it rather than by each of them.
fn product_ready(t: &Tensor) -> Result<Tensor> {
    if crate::tensor::matmul::batch_merges(t) {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// The attention weights `[B, H, L, S]` by the composite (on the tape when
/// gradients are on, as dropout on the weights needs) and each row's
/// shift and sum of exponentials `[B, H, L, 2]`.
fn weights(
    q: &Tensor,
    k: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f32,
) -> Result<(Tensor, Tensor)> {
    composed_weights(&q.matmul(&k.transpose(-1, -2)?)?, mask, causal, scale)
}

/// The weights and statistics of the products `q kᵀ` by the backend's
/// `fused_attention_weights` (one pass over the scores), or `None` where
/// it declines. Off the tape: the forward runs under `no_grad`.
fn fused_weights(
    products: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f32,
) -> Result<Option<(Tensor, Tensor)>> {
    let (b, h, l, s) = products.dims4(OP, "scores")?;
    let ps = products.storage();
    let ms = mask.map(Tensor::storage);
    let inputs = AttentionScores {
        scores: (&ps, products.layout()),
        mask: mask.zip(ms.as_ref()).map(|(m, s)| (s, m.layout())),
        causal,
        scale,
    };
    let dev = products.device();
    Ok(products
        .backend()
        .fused_attention_weights(&inputs)?
        .map(|(weights, stats)| {
            (
                Tensor::from_storage(weights, Layout::contiguous(&[b, h, l, s]), &dev),
                Tensor::from_storage(stats, Layout::contiguous(&[b, h, l, 2]), &dev),
            )
        }))
}

/// The weights and statistics of the products `q kᵀ` composed from
/// primitives. A row whose scores are all `-∞` gets zero weights and
/// statistics `(0, 0)`.
fn composed_weights(
    products: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f32,
) -> Result<(Tensor, Tensor)> {
    let scores = masked(products, mask, causal, scale)?;
    let max = finite_or_zero(&scores.max(&[-1], true)?.detach())?;
    let e = scores.sub(&max)?.exp()?;
    let sum = e.sum(&[-1], true)?;
    let stats = Tensor::cat(&[max, sum.detach()], -1)?;
    let dev = products.device();
    let empty = sum.eq(&Tensor::scalar(0.0, &dev)?)?;
    let safe_sum = Tensor::where_cond(&empty, &Tensor::scalar(1.0, &dev)?, &sum)?;
    Ok((e.div(&safe_sum)?, stats))
}

/// The products `q kᵀ` (`[.., L, S]`) scaled and masked: `scale · products
/// + mask`, and `-∞` above the diagonal when `causal`.
fn masked(products: &Tensor, mask: Option<&Tensor>, causal: bool, scale: f32) -> Result<Tensor> {
    let mut scores = products.mul_scalar(scale)?;
    if let Some(m) = mask {
        scores = scores.add(m)?;
    }
    if causal {
        let (l, s) = (products.dims()[2], products.dims()[3]);
        let above = (0..l * s)
            .map(|i| {
                if i % s > i / s {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        scores = scores.add(&Tensor::from_vec(above, &[l, s], &products.device())?)?;
    }
    Ok(scores)
}

/// `x` with `±∞` replaced by 0: the shift of a row whose scores are all
/// `-∞` (shifting by `-∞` would give NaN).
fn finite_or_zero(x: &Tensor) -> Result<Tensor> {
    let dev = x.device();
    let infinite = x.abs()?.eq(&Tensor::scalar(f32::INFINITY, &dev)?)?;
    Tensor::where_cond(&infinite, &Tensor::scalar(0.0, &dev)?, x)
}

/// What the gradient rule keeps: detached inputs and output (`F16` where
/// the op's were) and the softmax statistics.
struct Saved {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Option<Tensor>,
    mask_grad: bool,
    out: Tensor,
    stats: Tensor,
    causal: bool,
    scale: f32,
}

impl Saved {
    /// Gradients of `q`, `k`, `v` (and the mask, when it is an input).
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let f32s = F32s {
            q: self.q.float32(OP)?,
            k: self.k.float32(OP)?,
            v: self.v.float32(OP)?,
            out: self.out.float32(OP)?,
            g: g.float32(OP)?,
        };
        let (dq, dk, dv, dmask) = match self.fused_backward(&f32s)? {
            Some((dq, dk, dv)) => (dq, dk, dv, None),
            None => self.composed_backward(&f32s)?,
        };
        let mut grads = vec![Some(dq), Some(dk), Some(dv)];
        if self.mask.is_some() {
            grads.push(dmask);
        }
        Ok(grads)
    }

    /// The backend's fused backward; never when the mask needs its
    /// gradient, which only the composite forms.
    fn fused_backward(&self, f32s: &F32s) -> Result<Option<(Tensor, Tensor, Tensor)>> {
        if self.mask_grad {
            return Ok(None);
        }
        let (q, k, v, g) = (&f32s.q, &f32s.k, &f32s.v, &f32s.g);
        let (qs, ks, vs) = (q.storage(), k.storage(), v.storage());
        let ms = self.mask.as_ref().map(Tensor::storage);
        let inputs = AttentionInputs {
            q: (&qs, q.layout()),
            k: (&ks, k.layout()),
            v: (&vs, v.layout()),
            mask: self
                .mask
                .as_ref()
                .zip(ms.as_ref())
                .map(|(m, s)| (s, m.layout())),
            causal: self.causal,
            scale: self.scale,
        };
        let (os, ss, gs) = (f32s.out.storage(), self.stats.storage(), g.storage());
        let grads = q.backend().fused_attention_grad(
            &inputs,
            (&os, f32s.out.layout()),
            (&ss, self.stats.layout()),
            (&gs, g.layout()),
        )?;
        let dev = q.device();
        Ok(grads.map(|(dq, dk, dv)| {
            let at = |s, t: &Tensor| Tensor::from_storage(s, Layout::contiguous(t.dims()), &dev);
            (at(dq, q), at(dk, k), at(dv, v))
        }))
    }

    /// The composite backward: the weights `p = exp(s - m) / l` recomputed
    /// from the statistics, `dv = pᵀ g`, `ds = p ∘ (g vᵀ - rowsum(g ∘ out))`,
    /// `dq = scale · ds k`, `dk = scale · dsᵀ q`; `ds` is the mask's gradient.
    /// `p` and `ds` come from the backend's `fused_attention_weights_grad`
    /// (one pass) where it has it.
    #[allow(clippy::type_complexity)]
    fn composed_backward(&self, f32s: &F32s) -> Result<(Tensor, Tensor, Tensor, Option<Tensor>)> {
        let ready = [&f32s.q, &f32s.k, &f32s.v, &f32s.g].map(product_ready);
        let [q, k, v, g] = ready;
        let (q, k, v, g) = (&q?, &k?, &v?, &g?);
        let products = q.matmul(&k.transpose(-1, -2)?)?;
        let dp = g.matmul(&v.transpose(-1, -2)?)?;
        let (p, ds) = match self.fused_weights_grad(&products, &dp, f32s)? {
            Some(fused) => fused,
            None => self.composed_weights_grad(&products, &dp, f32s)?,
        };
        let dv = p.transpose(-1, -2)?.matmul(g)?;
        let dq = ds.matmul(k)?.mul_scalar(self.scale)?;
        let dk = ds.transpose(-1, -2)?.matmul(q)?.mul_scalar(self.scale)?;
        let dmask = self.mask_grad.then_some(ds);
        Ok((dq, dk, dv, dmask))
    }

    /// The weights `p` and the scores' gradient `ds` from the products
    /// `q kᵀ` and `dp = g vᵀ` by the backend's `fused_attention_weights_grad`,
    /// or `None` where it declines.
    fn fused_weights_grad(
        &self,
        products: &Tensor,
        dp: &Tensor,
        f32s: &F32s,
    ) -> Result<Option<(Tensor, Tensor)>> {
        let ps = products.storage();
        let ms = self.mask.as_ref().map(Tensor::storage);
        let inputs = AttentionScores {
            scores: (&ps, products.layout()),
            mask: self
                .mask
                .as_ref()
                .zip(ms.as_ref())
                .map(|(m, s)| (s, m.layout())),
            causal: self.causal,
            scale: self.scale,
        };
        let (ss, ds, gs, os) = (
            self.stats.storage(),
            dp.storage(),
            f32s.g.storage(),
            f32s.out.storage(),
        );
        let grads = products.backend().fused_attention_weights_grad(
            &inputs,
            (&ss, self.stats.layout()),
            (&ds, dp.layout()),
            (&gs, f32s.g.layout()),
            (&os, f32s.out.layout()),
        )?;
        let dev = products.device();
        let layout = Layout::contiguous(products.dims());
        Ok(grads.map(|(p, ds)| {
            (
                Tensor::from_storage(p, layout.clone(), &dev),
                Tensor::from_storage(ds, layout, &dev),
            )
        }))
    }

    /// [`Saved::fused_weights_grad`] composed from primitives.
    fn composed_weights_grad(
        &self,
        products: &Tensor,
        dp: &Tensor,
        f32s: &F32s,
    ) -> Result<(Tensor, Tensor)> {
        let scores = masked(products, self.mask.as_ref(), self.causal, self.scale)?;
        let (shift, sum) = (self.stats.narrow(-1, 0, 1)?, self.stats.narrow(-1, 1, 1)?);
        let dev = products.device();
        let empty = sum.eq(&Tensor::scalar(0.0, &dev)?)?;
        let inv = Tensor::where_cond(&empty, &Tensor::scalar(0.0, &dev)?, &sum.recip()?)?;
        let p = scores.sub(&shift)?.exp()?.mul(&inv)?;
        let rows = f32s.g.mul(&f32s.out)?.sum(&[-1], true)?;
        let ds = p.mul(&dp.sub(&rows)?)?;
        Ok((p, ds))
    }
}

/// The saved query, key, value and output and the output's gradient as
/// `F32`, what both backwards compute from.
struct F32s {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    g: Tensor,
}
