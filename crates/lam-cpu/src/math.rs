//! Scalar formulas that need care: the error function (Rust's std has none),
//! exact GELU and its derivative, and the exponential, sigmoid, tanh and
//! softplus. The erf-based ones are evaluated in `f64` so that the only
//! error left is the approximation's, about 1e-7 relative — the limit of
//! `f32` itself.
//!
//! [`exp`] is `e^x` in straight-line arithmetic (no call into libm, no
//! branch), so the GELU loops that use it vectorise — compiled for AVX-512
//! they run several times faster than with libm's scalar `exp`, while in
//! plain SSE2 the two are even; its relative error, below 1e-14, vanishes
//! when the result is rounded to `f32`.
//!
//! [`exp_f32`], [`sigmoid`] and [`tanh`] are straight-line `f32` arithmetic
//! for the same reason, and in `f32` so that AVX-512 runs 16 lanes of them,
//! not 8 (an LSTM step's gates are five of them per cell): each stays within
//! 2 ulp of the correctly rounded result over the whole `f32` range,
//! subnormal results included (`tests::f32_functions_are_within_2_ulp`).
//! Branches are written as selects between values both computed, which the
//! compiler turns into vector blends.
//!
//! The functions are `inline(always)` so that each is compiled into the
//! vector-width variants of the loops.

use std::f64::consts::LOG2_E;
#[cfg(test)]
use std::f64::consts::{FRAC_1_SQRT_2, PI};

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
///
/// This and the `f64` GELU below are the references `math_f32`'s GELU
/// (the one the ops use, twice the vector lanes) is tested against.
#[cfg(test)]
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
#[cfg(test)]
#[inline(always)]
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Exact GELU, `x Φ(x) = x/2 (1 + erf(x/√2))` (PyTorch's default form).
#[cfg(test)]
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (x * normal_cdf(x)) as f32
}

/// The derivative of exact GELU, `Φ(x) + x φ(x)`.
#[cfg(test)]
#[inline(always)]
pub(crate) fn gelu_grad(x: f32) -> f32 {
    let x = x as f64;
    let pdf = exp(-0.5 * x * x) / (2.0 * PI).sqrt();
    (normal_cdf(x) + x * pdf) as f32
}

/// `e^x` for `f32` within 2 ulp, subnormal results included; below -104
/// the result is 0 and above 89 infinite, as they round anyway. NaN stays
/// NaN.
///
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2` (`ln 2` in two parts, the first
/// short enough that `n · LN2_HI` is exact); `e^r` by Cephes' `expf`
/// polynomial, and `2^n` as two powers of two `2^⌊n/2⌋ · 2^⌈n/2⌉`, each a
/// normal `f32` for every `n` in range, so that the second product rounds
/// once, into the subnormals when the result lies there.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    exp_with(x, |a, b, c| a * b + c)
}

/// [`exp_f32`] with every multiply-add fused: within 2 ulp as well, and
/// about a fifth fewer instructions where the processor fuses them (the
/// caller's loop compiled for FMA); elsewhere each `mul_add` is a call into
/// libm, giving the same bits slowly.
#[inline(always)]
pub(crate) fn exp_fused(x: f32) -> f32 {
    exp_with(x, f32::mul_add)
}

/// The body of [`exp_f32`] and [`exp_fused`]: `madd(a, b, c)` is `a · b + c`,
/// rounded once or twice.
#[inline(always)]
fn exp_with(x: f32, madd: impl Fn(f32, f32, f32) -> f32) -> f32 {
    // 1.5 · 2^23: adding it rounds to an integer, held in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Below -104 the result rounds to 0. It is selected at the end rather
    // than computed from -104, whose last product underflows: processors
    // take a slow path for that (a causal attention's hidden keys, all
    // `-∞`, ran its softmax rows several times slower).
    let vanishes = x < -104.0;
    // (Not `min`, which would turn NaN into 89.)
    let x = if vanishes {
        0.0
    } else if x > 89.0 {
        89.0
    } else {
        x
    };
    let shifted = madd(x, std::f32::consts::LOG2_E, ROUNDER);
    let n = shifted - ROUNDER;
    // (x - n·LN2_HI) - n·LN2_LO; `-n · c + x` rounds as `x - n · c`.
    let r = madd(-n, LN2_LO, madd(-n, LN2_HI, x));
    let mut p = 1.987_569_1e-4;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_66,
        0.5,
    ] {
        p = madd(p, r, c);
    }
    let p = madd(p, r * r, r) + 1.0;
    // The low bits of `shifted` are n (two's complement, |n| <= 151).
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let half = n >> 1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let value = p * pow2(half) * pow2(n - half);
    if vanishes {
        0.0
    } else {
        value
    }
}

/// `1 / (1 + e^-x)` through `q = e / (1 + e)` with `e` [`exp_f32`] of
/// `-|x|` (never overflowing): `q` for `x < 0`, which keeps its relative
/// accuracy down to the subnormals, and `1 − q` for `x >= 0`, rounded once
/// near 1 — where `1 / (1 + e)` rounds `1 + e` first and may land an ulp
/// off, which `σ'(x) = σ(1 − σ)` of a saturated gate turns into a relative
/// error of the size of the gradient itself. Within 2 ulp; NaN stays NaN.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let q = e / (1.0 + e);
    if x >= 0.0 {
        1.0 - q
    } else {
        q
    }
}

/// `tanh x` within 2 ulp: where `|x| < 0.625` as `x + x³ P(x²)` (`P` of
/// degree 5, fitted for least relative error on that interval), elsewhere as
/// `±(1 − 2e / (1 + e))` with `e = e^{−2|x|}`: the one rounding near 1 is
/// the last, so a saturated `tanh` is within half an ulp and `1 − tanh²`
/// (its gradient, from the output) as precise as `f32` allows. Both are
/// computed and one selected; NaN stays NaN, ±∞ gives ±1 and ±0 gives ±0.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let s = x * x;
    let mut p = 2.138_226_3e-3;
    for c in [-8.171_788e-3, 2.169_821e-2, -5.394_625_3e-2, 0.133_332_01] {
        p = p * s + c;
    }
    let p = p * s - 0.333_333_3;
    // (The sign copied keeps −0: `−0 + x s p` would be +0.)
    let small = (x + x * s * p).copysign(x);
    let e = exp_f32(-2.0 * a);
    let big = (1.0 - 2.0 * e / (1.0 + e)).copysign(x);
    if a < 0.625 {
        small
    } else {
        big
    }
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

    /// How many representable `f32` lie between `a` and `b` (0 for two
    /// NaNs, and for +0 against −0).
    fn ulps(a: f32, b: f32) -> u64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() {
                0
            } else {
                u64::MAX
            };
        }
        // Bit patterns mapped to integers in the order of the values.
        let key = |v: f32| {
            let bits = v.to_bits() as i32;
            i64::from(if bits < 0 { i32::MIN - bits } else { bits })
        };
        key(a).abs_diff(key(b))
    }

    /// Every 997th `f32` bit pattern (all signs, exponents and the
    /// subnormals, ±∞ and NaNs), a fine sweep where the functions bend, and
    /// the edges of the formulas.
    fn sweep() -> impl Iterator<Item = f32> {
        let patterns = (0..=u32::MAX).step_by(997).map(f32::from_bits);
        let fine = (-2_000_000..=2_000_000).map(|k| k as f32 * 1e-5);
        let edges = [
            0.0,
            -0.0,
            0.625,
            -0.625,
            0.624_999_9,
            88.72,
            88.73,
            -87.33,
            -103.9,
            -104.0,
            89.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        patterns.chain(fine).chain(edges)
    }

    #[test]
    fn f32_functions_are_within_2_ulp() {
        type Case = (&'static str, fn(f32) -> f32, fn(f64) -> f64);
        let functions: [Case; 4] = [
            ("exp", exp_f32, f64::exp),
            ("exp_fused", exp_fused, f64::exp),
            ("sigmoid", sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
            ("tanh", tanh, f64::tanh),
        ];
        for (name, f, reference) in functions {
            let mut worst = (0, 0.0);
            for x in sweep() {
                let d = ulps(f(x), reference(f64::from(x)) as f32);
                if d > worst.0 {
                    worst = (d, x);
                }
            }
            assert!(worst.0 <= 2, "{name}({}) is {} ulp off", worst.1, worst.0);
        }
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(exp_fused(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_fused(f32::INFINITY), f32::INFINITY);
        for f in [exp_f32, exp_fused, sigmoid, tanh] {
            assert!(f(f32::NAN).is_nan());
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
