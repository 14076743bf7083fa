//! Batch norm in training mode over `[N, C]`, `[N, C, L]` and
//! `[N, C, H, W]` random views, with and without weight and bias (Backend
//! `fused_batch_norm` and its gradient, or the composite on the unfused
//! devices).

use lam::nn::functional::batch_norm;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    (0..4).flat_map(|_| one_round(rng)).collect()
}

fn one_round(rng: &mut Rng) -> Vec<Case> {
    let mut shape = rng.shape(2, 4);
    // At least two values per channel.
    shape[0] += 1;
    let channels = [shape[1]];
    let affine = rng.below(3);
    vec![Case::new(
        "batch_norm",
        vec![normal(&shape), normal(&channels), normal(&channels)],
        move |t| {
            let (w, b) = match affine {
                0 => (None, None),
                1 => (Some(&t[1]), None),
                _ => (Some(&t[1]), Some(&t[2])),
            };
            Ok(vec![batch_norm(&t[0], None, None, w, b, true, 0.1, 1e-5)?])
        },
    )
    .tol(1e-4)]
}
