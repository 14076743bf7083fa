//! Seeded random fills (Backend `fill_random`). They take no tensor input,
//! so there is no view to vary: the case checks that a seed fixes the
//! values and that the shapes of views of the result are honoured by the
//! ops that follow.

use lam::backend::Distribution;
use lam::prelude::*;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &["random_seeded"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let shape = rng.shape(1, 3);
    let seed = rng.next_u64();
    vec![Case::new("random_seeded", vec![normal(&shape)], move |t| {
        let dev = t[0].device();
        let u = Tensor::random_seeded(
            t[0].dims(),
            Distribution::Uniform {
                low: -1.0,
                high: 2.0,
            },
            seed,
            &dev,
        )?;
        let n = Tensor::random_seeded(
            t[0].dims(),
            Distribution::Normal {
                mean: 0.5,
                std: 2.0,
            },
            seed,
            &dev,
        )?;
        Ok(vec![t[0].mul(&u)?.add(&n)?])
    })]
}
