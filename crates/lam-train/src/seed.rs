//! Seeds derived from tuples, so that every random choice of a run (an
//! epoch's shuffle, a batch's augmentation, a fold's split) is a pure
//! function of the user's seed and where it happens, not of how many random
//! numbers were drawn before it. That is what makes a resumed run identical
//! to an uninterrupted one.

use lam_core::rng::nth_seed;

/// A well-mixed seed for the tuple `parts` (splitmix64 chained over the parts).
pub fn derive_seed(parts: &[u64]) -> u64 {
    let mut acc = 0x243f_6a88_85a3_08d3_u64;
    for &p in parts {
        acc = nth_seed(acc ^ p, 1);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::derive_seed;

    #[test]
    fn order_and_values_matter() {
        assert_ne!(derive_seed(&[1, 2]), derive_seed(&[2, 1]));
        assert_ne!(derive_seed(&[0, 0]), derive_seed(&[0]));
        assert_eq!(derive_seed(&[3, 4]), derive_seed(&[3, 4]));
    }
}
