//! Softmax and log-softmax on random views along every dim (Backend
//! `fused_softmax`, or the composite on the unfused devices).

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &["softmax", "log_softmax"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let shape = rng.shape(0, 4);
    let dim = if shape.is_empty() {
        0
    } else {
        rng.below(shape.len()) as isize
    };
    vec![Case::new("softmax", vec![normal(&shape)], move |t| {
        Ok(vec![t[0].softmax(dim)?, t[0].log_softmax(dim)?])
    })
    .tol(1e-5)]
}
