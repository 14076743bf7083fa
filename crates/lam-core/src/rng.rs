//! Seeded, counter-based random numbers.
//!
//! Element `i` of a random tensor is a pure function of `(seed, i)`, so a
//! seed gives the same tensor on every backend, in any order, in parallel.
//! The GPU shader `shaders/random.wgsl` implements the same functions with
//! 32-bit integer arithmetic; the conformance suite checks they agree.
//! [`Generator`] hands out a fresh seed per call, so successive `randn`
//! calls differ while a whole program stays reproducible from one seed.

use std::sync::Mutex;

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

/// A seeded source of per-call seeds (splitmix64).
#[derive(Debug, Clone)]
pub struct Generator {
    state: u64,
}

impl Generator {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Generator { state: seed }
    }

    /// The next seed of the sequence.
    pub fn next_seed(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (host-side shuffles and sampling).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_seed() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize % n.max(1)
    }

    /// A uniform float in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_seed() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A seeded Fisher–Yates permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

static GLOBAL: Mutex<Generator> = Mutex::new(Generator { state: 0x5eed });

/// Reseeds the global generator used by `Tensor::rand`, `randn`, layer
/// initialisation and dropout (PyTorch's `torch.manual_seed`).
pub fn manual_seed(seed: u64) {
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Generator::new(seed);
}

/// The next seed from the global generator.
pub fn next_seed() -> u64 {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner()).next_seed()
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
        let mut g = Generator::new(1);
        let p = g.permutation(10);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
