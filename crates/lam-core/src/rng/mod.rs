//! Seeded random numbers, in two layers.
//!
//! **Streams** (this file). Element `i` of a random tensor is a pure
//! function of `(seed, i)`, so a seed gives the same tensor on every
//! backend, in any order, in parallel. The GPU shader `shaders/random.wgsl`
//! implements the same functions with 32-bit integer arithmetic; the
//! conformance suite checks they agree.
//!
//! **Generators** ([`Generator`], PyTorch's `torch.Generator`). A random
//! op takes one seed per call from a generator, so successive `randn` calls
//! differ while a whole program stays reproducible from one seed. A
//! generator is a cheap, shared handle (cloning it shares the stream) whose
//! whole state is a [`GeneratorState`] — the seed and how many seeds it has
//! handed out — which [`Generator::state`] reads and
//! [`Generator::set_state`] restores, and which training checkpoints save.
//!
//! **Which generator.** `Tensor::randn(shape, dev)` and the other forms
//! without a generator, layer initialisation and `Dropout` draw from the
//! *current* generator ([`current`]): the one [`with_generator`] installed
//! on this thread for the duration of a closure, else the process's default
//! generator ([`Generator::default_generator`], reseeded by
//! [`manual_seed`]). The `_with` forms (`Tensor::randn_with(shape, dev, &g)`)
//! name their generator, as PyTorch's `generator=` argument does.
//!
//! One default generator serves simple programs as `torch.manual_seed`
//! does. A program that trains on several threads gives each its own
//! generator — `lam_train`'s `Trainer` owns one — and then no thread's
//! numbers depend on what another draws:
//!
//! ```
//! use lam_core::rng::{self, Generator};
//!
//! let g = Generator::new(7);
//! // Inside, everything that draws from the current generator — layer
//! // constructors, Dropout, Tensor::randn(shape, dev) — draws from `g`.
//! let seed = rng::with_generator(&g, rng::next_seed);
//! assert_eq!(seed, Generator::new(7).next_seed());
//! // Its whole state, to save and restore.
//! let saved = g.state();
//! let next = g.next_seed();
//! g.set_state(saved);
//! assert_eq!(g.next_seed(), next);
//! ```
//!
//! A thread-local current generator, rather than a generator argument on
//! every layer constructor and `forward`, keeps every signature as PyTorch
//! writes it while making each thread's draws its own; spawned threads do
//! not inherit it (they start on the default generator).

mod current;
mod generator;

pub use current::{current, manual_seed, next_seed, with_generator};
pub use generator::{nth_seed, Generator, GeneratorState};

/// Wellons' "lowbias32" integer hash: a cheap, well-mixed bijection on u32.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// 32 random bits for element `i` of the stream `seed`.
pub fn random_bits(seed: u64, i: u32) -> u32 {
    let (k0, k1) = (seed as u32, (seed >> 32) as u32);
    hash32(hash32(i.wrapping_add(hash32(k0))) ^ k1)
}

/// Uniform in `[0, 1)` with 24 bits of resolution (exact in f32).
pub fn uniform01(seed: u64, i: u32) -> f32 {
    (random_bits(seed, i) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Standard normal for element `i` by Box–Muller over elements `2i` and `2i + 1`.
pub fn standard_normal(seed: u64, i: u32) -> f32 {
    // u1 in (0, 1] so the log is finite.
    let u1 = ((random_bits(seed, i.wrapping_mul(2)) >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
    let u2 = uniform01(seed, i.wrapping_mul(2).wrapping_add(1));
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_moments_are_right() {
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|i| uniform01(7, i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.005, "var {var}");
    }

    #[test]
    fn normal_moments_are_right() {
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|i| standard_normal(3, i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "var {var}");
    }

    #[test]
    fn seeds_give_distinct_streams() {
        assert_ne!(uniform01(1, 0), uniform01(2, 0));
        assert_eq!(uniform01(1, 5), uniform01(1, 5));
    }
}
