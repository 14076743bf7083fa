//! Batch norm in training mode over `[N, C]`, `[N, C, L]` and
//! `[N, C, H, W]` random views, with and without weight and bias (Backend
//! `fused_batch_norm` and its gradient, or the composite on the unfused
//! devices), and with running statistics (`fused_batch_norm_running`, whose
//! batch statistics are views into the forward's `[3, C]` statistics;
//! the running buffers are updated in place, so they are contiguous copies
//! of the random views given).

use lam::nn::functional::batch_norm;
use lam::Tensor;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    // Every other round keeps running statistics.
    (0..4).flat_map(|i| one_round(rng, i % 2 == 1)).collect()
}

fn one_round(rng: &mut Rng, running: bool) -> Vec<Case> {
    let mut shape = rng.shape(2, 4);
    // At least two values per channel.
    shape[0] += 1;
    let channels = [shape[1]];
    let affine = rng.below(3);
    vec![Case::new(
        "batch_norm",
        vec![
            normal(&shape),
            normal(&channels),
            normal(&channels),
            normal(&channels),
            normal(&channels),
        ],
        move |t| {
            let (w, b) = match affine {
                0 => (None, None),
                1 => (Some(&t[1]), None),
                _ => (Some(&t[1]), Some(&t[2])),
            };
            if !running {
                return Ok(vec![batch_norm(&t[0], None, None, w, b, true, 0.1, 1e-5)?]);
            }
            // Fresh contiguous buffers holding the views' values.
            let own = |v: &Tensor| v.add_scalar(0.0).map(|c| c.detach());
            let (mean, var) = (own(&t[3])?, own(&t[4])?.abs()?);
            let y = batch_norm(&t[0], Some(&mean), Some(&var), w, b, true, 0.1, 1e-5)?;
            Ok(vec![y, mean, var])
        },
    )
    .tol(1e-4)]
}
