//! Layer norm over the last one or two dims of random views, with and
//! without weight and bias (Backend `fused_layer_norm` and its gradient, or
//! the composite on the unfused devices).

use lam::nn::functional::layer_norm;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    (0..4).flat_map(|_| one_round(rng)).collect()
}

fn one_round(rng: &mut Rng) -> Vec<Case> {
    let mut shape = rng.shape(1, 3);
    // At least two elements to normalize over.
    if let Some(last) = shape.last_mut() {
        *last += 1;
    }
    let dims = 1 + rng.below(shape.len().min(2));
    let norm = shape[shape.len() - dims..].to_vec();
    let affine = rng.below(3);
    vec![Case::new(
        "layer_norm",
        vec![normal(&shape), normal(&norm), normal(&norm)],
        move |t| {
            let (w, b) = match affine {
                0 => (None, None),
                1 => (Some(&t[1]), None),
                _ => (Some(&t[1]), Some(&t[2])),
            };
            Ok(vec![layer_norm(&t[0], &norm, w, b, 1e-5)?])
        },
    )
    .tol(1e-4)]
}
