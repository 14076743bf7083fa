//! Exact GELU and its derivative in `f32`, for the GELU ops' loops in wide
//! vectors: the complementary error function by the same Chebyshev fit as
//! `math`'s `f64` reference, its exponential `math::exp_fused`.
//!
//! Each is straight-line arithmetic (no data-dependent branch: the sign
//! test is a select), `inline(always)`, so that a loop calling it compiled
//! for AVX-512 evaluates 16 lanes at once — twice the lanes of the `f64`
//! formulas GELU used before — and is accurate to a few units in the last
//! place, what the `f32` results can hold.
//!
//! Every multiply-add is written as a fused `mul_add`: the polynomials are
//! most of the work, and fused they took GELU from 0.37 to 0.22 ms on a
//! 1024×512 activation (2 Zen 4 cores). Being written, the fusion is the
//! same in every variant — AVX-512 and AVX2 (both compiled with FMA, see
//! `elementwise::map_chunk`) and a plain loop (where `mul_add` calls libm)
//! — so all give the same bits. Callers therefore run these only inside
//! `map_chunk`, never in a loop compiled without FMA.

use std::f32::consts::FRAC_1_SQRT_2;

use crate::math::exp_fused as exp;

/// The complementary error function `1 - erf(x)`, with relative error below
/// `1e-6 + 1.5e-7 x²` wherever the result is a normal `f32` (Numerical
/// Recipes' Chebyshev fit `erfcc`, 1.2e-7, evaluated in `f32`; the `x²`
/// term is `x²` rounded to `f32` inside the exponential). Being relative,
/// the accuracy holds in the far tail, where `1 - erf` would cancel.
#[inline(always)]
pub(crate) fn erfc(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / z.mul_add(0.5, 1.0);
    let mut poly: f32 = 0.170_872_77;
    for c in [
        -0.822_152_23,
        1.488_515_9,
        -1.135_204,
        0.278_868_07,
        -0.186_288_06,
        0.096_784_18,
        0.374_091_96,
        1.000_023_7,
        -1.265_512_2,
    ] {
        poly = poly.mul_add(t, c);
    }
    let tail = t * exp((-z).mul_add(z, poly));
    if x >= 0.0 {
        tail
    } else {
        2.0 - tail
    }
}

/// The standard normal CDF `Φ(x)`.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Exact GELU, `x Φ(x) = x/2 (1 + erf(x/√2))` (PyTorch's default form).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// The derivative of exact GELU, `Φ(x) + x φ(x)`.
#[inline(always)]
pub(crate) fn gelu_grad(x: f32) -> f32 {
    // 1 / √(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    (x * INV_SQRT_2PI).mul_add(exp(-0.5 * x * x), normal_cdf(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relative error of `got` against the `f64` value `want`, with
    /// results below `f32::MIN_POSITIVE` compared absolutely.
    fn rel(got: f32, want: f64) -> f64 {
        (f64::from(got) - want).abs() / want.abs().max(f64::from(f32::MIN_POSITIVE))
    }

    #[test]
    fn erfc_matches_the_f64_formula_on_a_dense_sweep() {
        let mut worst = 0.0f64;
        let mut x = -9.0f32;
        while x < 9.0 {
            // math::erfc: the same fit in f64 (1.2e-7); z² rounded to
            // f32 costs about 6e-8 · z² relative in the far tail.
            let want = crate::math::erfc(f64::from(x));
            if want > f64::from(f32::MIN_POSITIVE) {
                let bound = 1e-6 + 1.5e-7 * f64::from(x * x);
                worst = worst.max(rel(erfc(x), want) / bound);
            }
            x += 0.000_71;
        }
        assert!(worst < 1.0, "worst error {worst:e} of the bound");
        // Values from Python's math.erfc (correctly rounded f64).
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (-1.0, 1.842_700_792_949_715),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
        ] {
            assert!(rel(erfc(x as f32), want) < 1e-6, "erfc({x})");
        }
    }

    #[test]
    fn gelu_and_its_derivative_match_f64() {
        let mut worst = (0.0f64, 0.0f64);
        let mut x = -12.0f32;
        while x < 12.0 {
            let (g, d) = (crate::math::gelu(x), crate::math::gelu_grad(x));
            // Absolute error against max(|value|, 1e-3): GELU crosses zero.
            let err = |got: f32, want: f32| {
                f64::from((got - want).abs()) / f64::from(want.abs().max(1e-3))
            };
            worst.0 = worst.0.max(err(gelu(x), g));
            // Φ(x) + x φ(x) cancels near x = -0.75 (two terms of 0.23 in
            // f32, each within an ulp): an absolute bound besides.
            let grad_err = f64::from((gelu_grad(x) - d).abs()) / (2e-7 + 2e-6 * f64::from(d.abs()));
            worst.1 = worst.1.max(grad_err);
            x += 0.000_53;
        }
        assert!(worst.0 < 2e-6 && worst.1 < 1.0, "worst {worst:?}");
        assert_eq!(gelu(0.0), 0.0);
        assert_eq!(gelu(f32::INFINITY), f32::INFINITY);
        assert!(gelu(f32::NAN).is_nan() && gelu_grad(f32::NAN).is_nan());
        assert_eq!(gelu_grad(100.0), 1.0);
        assert_eq!(gelu_grad(-100.0), 0.0);
    }
}
