//! `fill_random`: element `i` is a pure function of `(seed, i)` through
//! [`lam_core::rng`], so the result is the same on every backend and for
//! every thread count.

use lam_core::backend::Distribution;
use lam_core::rng::{standard_normal, uniform01};
use lam_core::{Error, Result};

use crate::parallel::{for_chunks, CHUNK};

/// `[len]` numbers from `dist`.
pub(crate) fn fill_random(len: usize, dist: Distribution, seed: u64) -> Result<Vec<f32>> {
    // Element indices are u32 on every backend.
    if len > u32::MAX as usize + 1 {
        return Err(Error::invalid(
            "fill_random",
            format!("{len} elements exceed the 2^32 a random stream can index"),
        ));
    }
    let mut out = crate::pool::take(len)?;
    // Random numbers cost ~10x an add, hence the larger work estimate.
    for_chunks(&mut out, CHUNK, len * 10, |start, chunk| {
        for (j, o) in chunk.iter_mut().enumerate() {
            let i = (start + j) as u32;
            *o = match dist {
                Distribution::Uniform { low, high } => uniform01(seed, i) * (high - low) + low,
                Distribution::Normal { mean, std } => mean + std * standard_normal(seed, i),
            };
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use lam_core::backend::Distribution;
    use lam_core::rng::{standard_normal, uniform01};
    use lam_core::Backend;

    use crate::test_util::*;

    #[test]
    fn elements_are_the_rng_functions_of_their_index() {
        let b = backend();
        let n = 100_000; // Large enough to take the parallel path.
        let u = b
            .fill_random(
                n,
                Distribution::Uniform {
                    low: -2.0,
                    high: 3.0,
                },
                9,
            )
            .unwrap();
        let u = read(&u, &[n]);
        for i in [0, 1, 4095, 4096, 99_999] {
            assert_eq!(u[i], uniform01(9, i as u32) * 5.0 - 2.0);
        }
        assert!(u.iter().all(|&x| (-2.0..3.0).contains(&x)));
        let g = b
            .fill_random(
                10,
                Distribution::Normal {
                    mean: 1.0,
                    std: 2.0,
                },
                4,
            )
            .unwrap();
        let g = read(&g, &[10]);
        for (i, &x) in g.iter().enumerate() {
            assert_eq!(x, 1.0 + 2.0 * standard_normal(4, i as u32));
        }
    }
}
