//! The operands of the fused attention methods
//! ([`super::Backend::fused_attention`] and
//! [`super::Backend::fused_attention_grad`]), gathered in one block so the
//! forward and the backward read them alike.

use super::View;

/// Scaled dot-product attention's inputs, all `F32` views with any strides
/// (0 included, for broadcast operands) and offsets:
/// `softmax(scale · q kᵀ + mask, causal) v` per `(b, h)`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionInputs<'a> {
    /// Queries `[B, H, L, E]`.
    pub q: View<'a>,
    /// Keys `[B, H, S, E]`.
    pub k: View<'a>,
    /// Values `[B, H, S, Ev]`.
    pub v: View<'a>,
    /// Added to the scaled scores, `[B, H, L, S]` (often broadcast); `-∞`
    /// removes a key.
    pub mask: Option<View<'a>>,
    /// Query `i` attends to keys `j ≤ i` only (the top-left-aligned lower
    /// triangle, as PyTorch's `is_causal`, also when `L ≠ S`).
    pub causal: bool,
    /// What the scores `q · k` are multiplied by.
    pub scale: f32,
}

impl AttentionInputs<'_> {
    /// `(B, H, L, S, E, Ev)`, read from the query, key and value shapes
    /// (which lam-core has checked to agree).
    pub fn sizes(&self) -> (usize, usize, usize, usize, usize, usize) {
        let (q, k, v) = (&self.q.1.shape, &self.k.1.shape, &self.v.1.shape);
        let at = |s: &Vec<usize>, i: usize| s.get(i).copied().unwrap_or(0);
        (at(q, 0), at(q, 1), at(q, 2), at(k, 2), at(q, 3), at(v, 3))
    }
}

/// The operands of the softmax between the composite attention's two
/// products ([`super::Backend::fused_attention_weights`] and
/// [`super::Backend::fused_attention_weights_grad`]): `F32` views with any
/// strides and offsets, the weights being
/// `softmax(scale · scores + mask, causal)` over each row of `scores`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionScores<'a> {
    /// The products `q kᵀ`, `[B, H, L, S]`, not yet scaled.
    pub scores: View<'a>,
    /// Added to the scaled scores, `[B, H, L, S]` (often broadcast); `-∞`
    /// removes a key.
    pub mask: Option<View<'a>>,
    /// Query `i` attends to keys `j ≤ i` only, as in [`AttentionInputs`].
    pub causal: bool,
    /// What the scores are multiplied by.
    pub scale: f32,
}
