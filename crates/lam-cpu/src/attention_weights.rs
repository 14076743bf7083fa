//! The softmax between the composite attention's two products (Backend
//! `fused_attention_weights` and `fused_attention_weights_grad`): each row
//! of the products `q kᵀ` scaled, masked and normalised in one pass, and in
//! the backward the weights and their gradient `p ∘ (dp - rowsum(grad ∘
//! out))` in another, where lam-core composes each from a dozen ops.
//!
//! lam-cpu's fused attention takes every call, so lam-core reaches these
//! only where it composes attention anyway: the backward of an additive
//! mask that takes a gradient. They follow the composite step by step (the
//! exponential of [`crate::math::exp`], sums in `f64` as `reduce`'s), so
//! the two agree to a tight tolerance.

use lam_core::backend::{AttentionScores, View};
use lam_core::{Error, Result};

use crate::math::exp;
use crate::parallel::for_items;
use crate::storage::ReadLocks;
use crate::strided::gather;

const OP: &str = "fused_attention_weights";

/// The weights `[B, H, L, S]` and statistics `[B, H, L, 2]`, contiguous.
pub(crate) fn weights(inputs: &AttentionScores<'_>) -> Result<(Vec<f32>, Vec<f32>)> {
    let (b, h, l, s) = sizes(inputs)?;
    let locks = ReadLocks::new(OP, &storages(inputs))?;
    let scores = gather(locks.f32(0, inputs.scores.1)?, inputs.scores.1)?;
    let mask = match inputs.mask {
        Some(m) => Some(gather(locks.f32(1, m.1)?, m.1)?),
        None => None,
    };
    let rows = Rows::new(inputs, &scores, mask.as_deref(), l, s);
    let count = b * h * l;
    let mut weights = crate::pool::take(count * s)?;
    let mut stats = crate::pool::take(count * 2)?;
    let mut items: Vec<(&mut [f32], &mut [f32])> = weights
        .chunks_mut(s.max(1))
        .zip(stats.chunks_mut(2))
        .collect();
    for_items(&mut items, s, |r, (p, stat)| {
        rows.scores_into(r, p);
        let (m, sum) = rows.normalise(p);
        stat.copy_from_slice(&[m, sum]);
    });
    Ok((weights, stats))
}

/// The weights `p` and the scores' gradient `ds`, both `[B, H, L, S]`,
/// contiguous, from the statistics `[B, H, L, 2]`, `dp` `[B, H, L, S]`, and
/// the output's gradient and the output, `[B, H, L, Ev]`.
pub(crate) fn weights_grad(
    inputs: &AttentionScores<'_>,
    stats: View,
    dp: View,
    grad: View,
    out: View,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (b, h, l, s) = sizes(inputs)?;
    let ev = grad.1.shape.get(3).copied().unwrap_or(0);
    stats
        .1
        .expect_shape(OP, "statistics [B, H, L, 2]", &[b, h, l, 2])?;
    dp.1.expect_shape(OP, "dp [B, H, L, S]", &[b, h, l, s])?;
    grad.1
        .expect_shape(OP, "an output gradient [B, H, L, Ev]", &[b, h, l, ev])?;
    out.1
        .expect_shape(OP, "an output [B, H, L, Ev]", &[b, h, l, ev])?;
    let mut all = storages(inputs);
    let first = all.len();
    all.extend([stats.0, dp.0, grad.0, out.0]);
    let locks = ReadLocks::new(OP, &all)?;
    let scores = gather(locks.f32(0, inputs.scores.1)?, inputs.scores.1)?;
    let mask = match inputs.mask {
        Some(m) => Some(gather(locks.f32(1, m.1)?, m.1)?),
        None => None,
    };
    let rows = Rows::new(inputs, &scores, mask.as_deref(), l, s);
    let stats = gather(locks.f32(first, stats.1)?, stats.1)?;
    let dp = gather(locks.f32(first + 1, dp.1)?, dp.1)?;
    let grad = gather(locks.f32(first + 2, grad.1)?, grad.1)?;
    let out = gather(locks.f32(first + 3, out.1)?, out.1)?;
    let count = b * h * l;
    let mut p = crate::pool::take(count * s)?;
    let mut ds = crate::pool::take(count * s)?;
    let mut items: Vec<(&mut [f32], &mut [f32])> = p
        .chunks_mut(s.max(1))
        .zip(ds.chunks_mut(s.max(1)))
        .collect();
    for_items(&mut items, s + ev, |r, (p, ds)| {
        rows.scores_into(r, p);
        let (m, sum) = (stats[2 * r], stats[2 * r + 1]);
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        // rowsum(grad ∘ out) of this query row, summed in f64 as `reduce`.
        let row = r * ev..(r + 1) * ev;
        let dot = grad[row.clone()]
            .iter()
            .zip(&out[row])
            .map(|(&g, &o)| (g * o) as f64)
            .sum::<f64>() as f32;
        let dp = &dp[r * s..(r + 1) * s];
        for ((p, ds), &dp) in p.iter_mut().zip(ds.iter_mut()).zip(dp) {
            *p = exp((*p - m) as f64) as f32 * inv;
            *ds = *p * (dp - dot);
        }
    });
    Ok((p, ds))
}

/// `(B, H, L, S)` of the products, after checking the mask's shape.
fn sizes(inputs: &AttentionScores<'_>) -> Result<(usize, usize, usize, usize)> {
    let shape = &inputs.scores.1.shape;
    let &[b, h, l, s] = shape.as_slice() else {
        return Err(Error::shape(OP, "scores [B, H, L, S]", shape));
    };
    if let Some(m) = inputs.mask {
        m.1.expect_shape(OP, "a mask [B, H, L, S]", &[b, h, l, s])?;
    }
    Ok((b, h, l, s))
}

/// The buffers of the products and the mask, in that order.
fn storages<'a>(inputs: &AttentionScores<'a>) -> Vec<&'a lam_core::Storage> {
    let mut all = vec![inputs.scores.0];
    all.extend(inputs.mask.map(|m| m.0));
    all
}

/// The gathered products and mask of one call, read a query row at a time.
struct Rows<'a> {
    scores: &'a [f32],
    mask: Option<&'a [f32]>,
    causal: bool,
    scale: f32,
    l: usize,
    s: usize,
}

impl<'a> Rows<'a> {
    fn new(
        inputs: &AttentionScores<'_>,
        scores: &'a [f32],
        mask: Option<&'a [f32]>,
        l: usize,
        s: usize,
    ) -> Rows<'a> {
        Rows {
            scores,
            mask,
            causal: inputs.causal,
            scale: inputs.scale,
            l,
            s,
        }
    }

    /// Row `r`'s masked, scaled scores into `x`: `scale · product + mask`,
    /// `-∞` above the diagonal when causal, as the composite adds them.
    fn scores_into(&self, r: usize, x: &mut [f32]) {
        let (s, i) = (self.s, r % self.l.max(1));
        let products = &self.scores[r * s..(r + 1) * s];
        for (j, (x, &v)) in x.iter_mut().zip(products).enumerate() {
            let mut v = v * self.scale;
            if let Some(mask) = self.mask {
                v += mask[r * s + j];
            }
            if self.causal && j > i {
                v += f32::NEG_INFINITY;
            }
            *x = v;
        }
    }

    /// The masked scores `x` of a row become its weights; returns its
    /// statistics `(m, l)`: `(0, 0)` and zero weights where every key is
    /// masked, NaN everywhere where a score is NaN or `+∞`.
    fn normalise(&self, x: &mut [f32]) -> (f32, f32) {
        if x.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
            x.fill(f32::NAN);
            return (f32::NAN, f32::NAN);
        }
        let m = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if m == f32::NEG_INFINITY {
            x.fill(0.0);
            return (0.0, 0.0);
        }
        x.iter_mut().for_each(|v| *v = exp((*v - m) as f64) as f32);
        let sum = x.iter().map(|&e| e as f64).sum::<f64>() as f32;
        x.iter_mut().for_each(|v| *v /= sum);
        (m, sum)
    }
}
