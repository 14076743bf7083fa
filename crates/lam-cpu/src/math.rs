//! Scalar formulas that need care: the error function (Rust's std has none),
//! exact GELU and its derivative, and the overflow-safe sigmoid and softplus.
//! The erf-based ones are evaluated in `f64` so that the only error left is
//! the approximation's, about 1e-7 relative — the limit of `f32` itself.
//!
//! [`exp`] is `e^x` in straight-line arithmetic (no call into libm, no
//! branch), so the GELU loops that use it vectorise — compiled for AVX-512
//! they run several times faster than with libm's scalar `exp`, while in
//! plain SSE2 the two are even; its relative error, below 1e-14, vanishes
//! when the result is rounded to `f32`. The functions are `inline(always)`
//! so that each is compiled into the vector-width variants of the loops.

use std::f64::consts::{FRAC_1_SQRT_2, LOG2_E, PI};

/// `e^x` for `f64`, relative error below 1e-14; arguments are clamped to
/// `[-708, 709]` (the normal range of the result: below it `e^x` is under
/// 1e-307, which no `f32` holds; above it, beyond `f32` too). NaN stays NaN.
///
/// `x = k ln 2 + r` with `|r| <= ln 2 / 2`; `e^r` by its Taylor series to
/// `r^11` and `2^k` written straight into the exponent bits.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    // 1.5 · 2^52: adding it rounds to an integer, held in the low mantissa bits.
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    // ln 2 split so that k · LN2_HI is exact for every k in range.
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.clamp(-708.0, 709.0);
    let shifted = x * LOG2_E + ROUNDER;
    let k = shifted - ROUNDER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 39_916_800.0;
    for c in [
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // The low bits of `shifted` are k (two's complement): k + 1023 is the
    // biased exponent of 2^k, and shifting drops everything above it.
    let scale = f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// The complementary error function `1 - erf(x)`, with relative error below
/// 1.2e-7 for every `x` (Numerical Recipes' Chebyshev fit, `erfcc`). Being
/// relative, the accuracy holds in the far tail, where `1 - erf` would cancel.
#[inline(always)]
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
    let tail = t * exp(-z * z + poly);
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
#[inline(always)]
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Exact GELU, `x Φ(x) = x/2 (1 + erf(x/√2))` (PyTorch's default form).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (x * normal_cdf(x)) as f32
}

/// The derivative of exact GELU, `Φ(x) + x φ(x)`.
#[inline(always)]
pub(crate) fn gelu_grad(x: f32) -> f32 {
    let x = x as f64;
    let pdf = exp(-0.5 * x * x) / (2.0 * PI).sqrt();
    (normal_cdf(x) + x * pdf) as f32
}

/// `1 / (1 + e^-x)` in `f64` through [`exp`] (which clamps its argument, so
/// nothing overflows): correctly rounded to `f32` but for the last bit at
/// worst, and branch-free, so the loops calling it vectorise.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + exp(-f64::from(x)))) as f32
}

/// `tanh x` as `1 − 2 / (e^{2x} + 1)` in `f64` through [`exp`], and as
/// `x − x³/3` where `|x| < 2⁻¹²` (there the difference would cancel, and
/// the series' next term is below `f32`'s resolution): branch-free like
/// [`sigmoid`]. NaN stays NaN, ±∞ gives ±1.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let x = f64::from(x);
    let big = 1.0 - 2.0 / (exp(2.0 * x) + 1.0);
    let small = x - x * x * x / 3.0;
    (if x.abs() < 1.0 / 4096.0 { small } else { big }) as f32
}

/// `log(1 + exp(x))` as `max(x, 0) + log1p(exp(-|x|))`, exact for large `|x|`.
#[inline(always)]
pub(crate) fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use std::f64::consts::LN_2;

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
    fn exp_matches_std_over_the_whole_range() {
        let mut x = -745.0f64;
        while x < 720.0 {
            let (got, want) = (exp(x), x.clamp(-708.0, 709.0).exp());
            assert!(
                (got - want).abs() <= 1e-14 * want,
                "exp({x}) = {got}, not {want}"
            );
            x += 0.0137;
        }
        for x in [0.0, 1e-300, -1e-300, 0.5 * LN_2, -0.5 * LN_2] {
            assert!((exp(x) - x.exp()).abs() <= 1e-14 * x.exp(), "exp({x})");
        }
        assert!(exp(f64::NAN).is_nan());
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
    fn tanh_matches_std() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let (got, want) = (tanh(x), x.tanh());
            assert!(
                (got - want).abs() <= 2.0 * f32::EPSILON * want.abs().max(1e-30),
                "tanh({x}) = {got}, std {want}"
            );
            x += 0.0137;
        }
        for x in [0.0f32, -0.0, 1e-30, -1e-20, 2.4e-4, 2.5e-4, 1e-3] {
            let (got, want) = (tanh(x), x.tanh());
            assert!((got - want).abs() <= f32::EPSILON * want.abs(), "tanh({x})");
        }
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
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
