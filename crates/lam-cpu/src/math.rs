//! Scalar formulas that need care: the error function (Rust's std has none),
//! exact GELU and its derivative, and the overflow-safe sigmoid and softplus.
//! The erf-based ones are evaluated in `f64` so that the only error left is
//! the approximation's, about 1e-7 relative — the limit of `f32` itself.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// The complementary error function `1 - erf(x)`, with relative error below
/// 1.2e-7 for every `x` (Numerical Recipes' Chebyshev fit, `erfcc`). Being
/// relative, the accuracy holds in the far tail, where `1 - erf` would cancel.
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let tail = t * (-z * z + poly).exp();
    if x >= 0.0 {
        tail
    } else {
        2.0 - tail
    }
}

/// The error function.
#[cfg(test)]
pub(crate) fn erf(x: f64) -> f64 {
    1.0 - erfc(x)
}

/// The standard normal CDF `Φ(x)`.
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Exact GELU, `x Φ(x) = x/2 (1 + erf(x/√2))` (PyTorch's default form).
pub(crate) fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (x * normal_cdf(x)) as f32
}

/// The derivative of exact GELU, `Φ(x) + x φ(x)`.
pub(crate) fn gelu_grad(x: f32) -> f32 {
    let x = x as f64;
    let pdf = (-0.5 * x * x).exp() / (2.0 * PI).sqrt();
    (normal_cdf(x) + x * pdf) as f32
}

/// `1 / (1 + exp(-x))`, never overflowing `exp`.
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + exp(x))` as `max(x, 0) + log1p(exp(-|x|))`, exact for large `|x|`.
pub(crate) fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Values from Python's math.erf / math.erfc (correctly rounded f64).
        let cases = [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (-1.5, -0.966_105_146_475_310_7),
        ];
        for (x, want) in cases {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
        // Relative accuracy in the tail.
        let want = 2.209_049_699_858_544e-5;
        assert!((erfc(3.0) / want - 1.0).abs() < 2e-7);
        let want = 1.537_459_794_428_035e-12;
        assert!((erfc(5.0) / want - 1.0).abs() < 2e-7);
    }

    #[test]
    fn gelu_and_its_derivative() {
        // x/2 (1 + math.erf(x/√2)) in f64 Python.
        let want = [-0.004_049_694, -0.158_655_25, 0.345_731_23, 1.954_499_7];
        for (x, w) in [-3.0, -1.0, 0.5, 2.0].into_iter().zip(want) {
            assert!(
                (gelu(x) - w).abs() <= 3e-7 * w.abs().max(1e-3),
                "gelu({x}) = {}",
                gelu(x)
            );
        }
        for x in [-2.5f32, -0.3, 0.0, 0.7, 3.0] {
            let h = 1e-3;
            let numeric = (gelu(x + h) as f64 - gelu(x - h) as f64) / (2.0 * h as f64);
            assert!((gelu_grad(x) as f64 - numeric).abs() < 1e-3, "x = {x}");
        }
    }

    #[test]
    fn sigmoid_and_softplus_are_stable() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(softplus(1000.0), 1000.0);
        assert_eq!(softplus(-1000.0), 0.0);
        assert!((softplus(0.0) - std::f32::consts::LN_2).abs() < 1e-7);
    }
}
