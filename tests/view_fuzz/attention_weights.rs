//! The softmax between the composite attention's two products (Backend
//! `fused_attention_weights` and `fused_attention_weights_grad`): the
//! attention cases again, which `run_family` runs on a twin of each device
//! that declines the fused attention, so lam-core composes it around these
//! on random views of the queries, keys, values and masks (an additive
//! mask taking a gradient included).

use super::harness::{Case, Rng};

/// The attention family names the public op.
pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    super::attention::cases(rng)
}
