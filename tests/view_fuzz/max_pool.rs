//! Max pooling on random views (Backend `max_pool`, `max_pool_grad`), with
//! padding and dilation, so windows that hang over the edge are covered.

use lam::nn::functional::max_pool2d;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let (n, c) = (rng.pick(&[1, 2]), rng.pick(&[1, 3]));
    let (h, w) = (3 + rng.below(4), 3 + rng.below(4));
    let (k, s, p, d) = (2, rng.pick(&[1, 2]), rng.below(2), rng.pick(&[1, 2]));
    vec![Case::new(
        "max_pool2d",
        vec![normal(&[n, c, h, w])],
        move |t| Ok(vec![max_pool2d(&t[0], k, s, p, d)?]),
    )]
}
