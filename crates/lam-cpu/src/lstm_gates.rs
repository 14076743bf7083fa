//! The LSTM forward step's gate arithmetic for one batch row written with
//! AVX-512 instructions, for the whole-sequence loop
//! ([`crate::lstm_sequence`]), where it runs once per row and step.
//!
//! [`crate::lstm::lstm_row`] compiled for AVX-512 took 2.2 ns per hidden
//! unit (32 × 256 units per step: 18 µs, a fifth of a step's time on one
//! core): five exponentials, five divisions and the clamps and selects of
//! the scalar functions. Here each exponential scales by `2^n` with one
//! `vscalefps` instead of building the power in integer registers, and
//! each reciprocal is `vrcp14ps` refined by one Newton step instead of a
//! division: 1.4 ns per unit, and the whole forward loop 7% faster on one
//! core. Sigmoid and tanh are otherwise those of [`crate::math`] (the same
//! polynomials and the same split of tanh at `|x| = 0.625`), within a few
//! ulp of them. NaN propagates and ±∞ saturates as there.
//!
//! The backward step's row ([`lstm_grad_row_fast`]) is written the same
//! way, with the two gradients reaching `h` added in the same pass.
//!
//! Processors without AVX-512 run [`crate::lstm::lstm_row`] and
//! [`crate::lstm::lstm_grad_row`].

use crate::elementwise::vectorised;
use crate::lstm::{lstm_grad_row, lstm_row};

/// [`lstm_row`] (same arguments and results, within a few ulp) by the
/// AVX-512 kernel where the processor has it.
#[inline]
pub(crate) fn lstm_row_fast(
    x: &[f32],
    y: &[f32],
    c: &[f32],
    h_out: &mut [f32],
    c_out: &mut [f32],
    gates: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor has AVX-512F, checked just above.
        return unsafe { avx512::lstm_row(x, y, c, h_out, c_out, gates) };
    }
    vectorised(
        #[inline(always)]
        || lstm_row(x, y, c, h_out, c_out, gates),
    );
}

/// [`lstm_grad_row`] for the gradient `dh = dh_out + dh_next` reaching
/// `h` (the step's output's and the next step's): `scratch` (`H`) holds
/// `dh` where the portable row runs.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn lstm_grad_row_fast(
    [dh_out, dh_next]: [&[f32]; 2],
    dc: &[f32],
    a: &[f32],
    c: &[f32],
    cn: &[f32],
    dg: &mut [f32],
    dc_out: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor has AVX-512F, checked just above.
        return unsafe { avx512::lstm_grad_row([dh_out, dh_next], dc, a, c, cn, dg, dc_out) };
    }
    for ((d, &x), &y) in scratch.iter_mut().zip(dh_out).zip(dh_next) {
        *d = x + y;
    }
    vectorised(
        #[inline(always)]
        || lstm_grad_row(scratch, dc, a, c, cn, dg, dc_out),
    );
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// `lstm_row` with 16 hidden units per iteration (the last one masked).
    #[target_feature(enable = "avx512f")]
    pub(super) fn lstm_row(
        x: &[f32],
        y: &[f32],
        c: &[f32],
        h_out: &mut [f32],
        c_out: &mut [f32],
        gates: &mut [f32],
    ) {
        let h = c.len();
        assert!(x.len() >= 4 * h && y.len() >= 4 * h && gates.len() >= 4 * h);
        assert!(h_out.len() >= h && c_out.len() >= h);
        let whole = h - h % 16;
        for j in (0..whole).step_by(16) {
            // SAFETY: j + 16 <= h and the lengths are asserted above.
            unsafe { units(x, y, c, h_out, c_out, gates, j, 0xffff) };
        }
        if whole < h {
            // SAFETY: as above, for the h - whole < 16 lanes the mask keeps.
            unsafe { units(x, y, c, h_out, c_out, gates, whole, (1 << (h - whole)) - 1) };
        }
    }

    /// Units `j..j + 16` of the row, those whose lane is set in `m`.
    ///
    /// # Safety
    /// `x`, `y` and `gates` hold `4h` floats, `c`, `h_out` and `c_out`
    /// `h` (`h = c.len()`), and the set lanes of `m` name units below `h`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn units(
        x: &[f32],
        y: &[f32],
        c: &[f32],
        h_out: &mut [f32],
        c_out: &mut [f32],
        gates: &mut [f32],
        j: usize,
        m: __mmask16,
    ) {
        let h = c.len();
        let (xp, yp, cp) = (x.as_ptr(), y.as_ptr(), c.as_ptr());
        let (hp, op, gp) = (h_out.as_mut_ptr(), c_out.as_mut_ptr(), gates.as_mut_ptr());
        // SAFETY: lane l reads p + l only when set in `m`, and every `p`
        // below is j (+ a multiple of h below 4h) into its slice.
        let load = |p: *const f32| unsafe { load_lanes(p, m) };
        let store = |p: *mut f32, v: __m512| unsafe { store_lanes(p, v, m) };
        // SAFETY: the offsets are those the contract allows.
        unsafe {
            let pre = |gate: usize| {
                let at = gate * h + j;
                _mm512_add_ps(load(xp.add(at)), load(yp.add(at)))
            };
            let i = sigmoid(pre(0));
            let f = sigmoid(pre(1));
            let g = tanh(pre(2));
            let o = sigmoid(pre(3));
            let cn = _mm512_fmadd_ps(f, load(cp.add(j)), _mm512_mul_ps(i, g));
            store(op.add(j), cn);
            store(hp.add(j), _mm512_mul_ps(o, tanh(cn)));
            for (gate, v) in [i, f, g, o].into_iter().enumerate() {
                store(gp.add(gate * h + j), v);
            }
        }
    }

    /// `lstm_grad_row` of `dh_out + dh_next`, 16 hidden units at a time.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lstm_grad_row(
        [dh_out, dh_next]: [&[f32]; 2],
        dc: &[f32],
        a: &[f32],
        c: &[f32],
        cn: &[f32],
        dg: &mut [f32],
        dc_out: &mut [f32],
    ) {
        let h = c.len();
        assert!(a.len() >= 4 * h && dg.len() >= 4 * h && dc_out.len() >= h);
        assert!(dh_out.len() >= h && dh_next.len() >= h && dc.len() >= h && cn.len() >= h);
        let whole = h - h % 16;
        let rows = ([dh_out, dh_next], dc, a, c, cn);
        for j in (0..whole).step_by(16) {
            // SAFETY: j + 16 <= h and the lengths are asserted above.
            unsafe { grad_units(rows, dg, dc_out, j, 0xffff) };
        }
        if whole < h {
            // SAFETY: as above, for the h - whole < 16 lanes the mask keeps.
            unsafe { grad_units(rows, dg, dc_out, whole, (1 << (h - whole)) - 1) };
        }
    }

    /// The inputs of [`lstm_grad_row`]: `dh_out`, `dh_next`, `dc`, `a`,
    /// `c`, `cn`.
    type GradRows<'a> = ([&'a [f32]; 2], &'a [f32], &'a [f32], &'a [f32], &'a [f32]);

    /// Units `j..j + 16` of [`lstm_grad_row`], those set in `m`.
    ///
    /// # Safety
    /// `a` and `dg` hold `4h` floats, the other slices `h` (`h = c.len()`),
    /// and the set lanes of `m` name units below `h`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn grad_units(
        ([dh_out, dh_next], dc, a, c, cn): GradRows,
        dg: &mut [f32],
        dc_out: &mut [f32],
        j: usize,
        m: __mmask16,
    ) {
        let h = c.len();
        let (dgp, dcp) = (dg.as_mut_ptr(), dc_out.as_mut_ptr());
        // SAFETY: lane l reads p + l only when set in `m`, and every `p`
        // below is j (+ a multiple of h below 4h) into its slice.
        let load = |p: *const f32| unsafe { load_lanes(p, m) };
        let store = |p: *mut f32, v: __m512| unsafe { store_lanes(p, v, m) };
        let one = _mm512_set1_ps(1.0);
        // SAFETY: the offsets are those the contract allows.
        unsafe {
            let gate = |k: usize| load(a.as_ptr().add(k * h + j));
            let (i, f, g, o) = (gate(0), gate(1), gate(2), gate(3));
            let dh = _mm512_add_ps(load(dh_out.as_ptr().add(j)), load(dh_next.as_ptr().add(j)));
            let tc = tanh(load(cn.as_ptr().add(j)));
            // d_cell = dc + dh o (1 − tc²)
            let d_cell = _mm512_fmadd_ps(
                _mm512_mul_ps(dh, o),
                _mm512_fnmadd_ps(tc, tc, one),
                load(dc.as_ptr().add(j)),
            );
            let c_old = load(c.as_ptr().add(j));
            let d_i = _mm512_mul_ps(
                _mm512_mul_ps(d_cell, g),
                _mm512_mul_ps(i, _mm512_sub_ps(one, i)),
            );
            let d_f = _mm512_mul_ps(
                _mm512_mul_ps(d_cell, c_old),
                _mm512_mul_ps(f, _mm512_sub_ps(one, f)),
            );
            let d_g = _mm512_mul_ps(_mm512_mul_ps(d_cell, i), _mm512_fnmadd_ps(g, g, one));
            let d_o = _mm512_mul_ps(
                _mm512_mul_ps(dh, tc),
                _mm512_mul_ps(o, _mm512_sub_ps(one, o)),
            );
            for (k, v) in [d_i, d_f, d_g, d_o].into_iter().enumerate() {
                store(dgp.add(k * h + j), v);
            }
            store(dcp.add(j), _mm512_mul_ps(d_cell, f));
        }
    }

    /// The 16 floats from `p` (those set in `m`; whole vectors unmasked:
    /// masked loads of rows fresh from memory ran three times slower).
    ///
    /// # Safety
    /// `p + l` is readable for every lane `l` set in `m`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_lanes(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the contract.
        unsafe {
            if m == 0xffff {
                _mm512_loadu_ps(p)
            } else {
                _mm512_maskz_loadu_ps(m, p)
            }
        }
    }

    /// Stores the lanes of `v` set in `m` from `p`.
    ///
    /// # Safety
    /// `p + l` is writable for every lane `l` set in `m`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_lanes(p: *mut f32, v: __m512, m: __mmask16) {
        // SAFETY: the contract.
        unsafe {
            if m == 0xffff {
                _mm512_storeu_ps(p, v)
            } else {
                _mm512_mask_storeu_ps(p, m, v)
            }
        }
    }

    /// `e^x` for `x <= 0` (and NaN) as [`crate::math::exp_f32`]: with
    /// `x = n ln 2 + r`, `e^r` by the same polynomial, scaled by `2^n` by
    /// `vscalefps` (which rounds once into the subnormals).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp_nonpositive(x: __m512) -> __m512 {
        const LN2_HI: f32 = 355.0 / 512.0;
        const LN2_LO: f32 = -2.121_944_4e-4;
        // Below −104 the result is 0 anyway; `vmaxps` returns its second
        // operand when either is NaN, so NaN stays.
        let x = _mm512_max_ps(_mm512_set1_ps(-104.0), x);
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for coefficient in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_66,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(coefficient));
        }
        let p = _mm512_fmadd_ps(
            p,
            _mm512_mul_ps(r, r),
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        _mm512_scalef_ps(p, n)
    }

    /// `1 / d` for `d` in `[1, 2]` (and NaN): `vrcp14ps` (14 bits) and one
    /// Newton step (to within an ulp or two).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reciprocal(d: __m512) -> __m512 {
        let r = _mm512_rcp14_ps(d);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
    }

    /// `-|x|`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn minus_abs(x: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(x),
            _mm512_set1_epi32(i32::MIN),
        ))
    }

    /// `|v|` with the sign of `x`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn with_sign_of(v: __m512, x: __m512) -> __m512 {
        // Bit select: the sign bit from `x`, the others from `v`.
        _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xca>(
            _mm512_set1_epi32(i32::MIN),
            _mm512_castps_si512(x),
            _mm512_castps_si512(v),
        ))
    }

    /// [`crate::math::sigmoid`]: `e = e^{−|x|}`, `q = e / (1 + e)`; `1 − q`
    /// for `x >= 0` and `q` otherwise (NaN takes the second, staying NaN).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sigmoid(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let e = exp_nonpositive(minus_abs(x));
        let q = _mm512_mul_ps(e, reciprocal(_mm512_add_ps(one, e)));
        let positive = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps());
        _mm512_mask_blend_ps(positive, q, _mm512_sub_ps(one, q))
    }

    /// [`crate::math::tanh`]: `x + x³ P(x²)` where `|x| < 0.625`, else
    /// `±(1 − 2e / (1 + e))` with `e = e^{−2|x|}`; the sign is `x`'s (−0
    /// stays −0).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn tanh(x: __m512) -> __m512 {
        let s = _mm512_mul_ps(x, x);
        let mut p = _mm512_set1_ps(2.138_226_3e-3);
        for coefficient in [-8.171_788e-3, 2.169_821e-2, -5.394_625_3e-2, 0.133_332_01] {
            p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(coefficient));
        }
        let p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-0.333_333_3));
        let small = _mm512_fmadd_ps(_mm512_mul_ps(x, s), p, x);
        let minus_2a = _mm512_add_ps(minus_abs(x), minus_abs(x));
        let e = exp_nonpositive(minus_2a);
        let one = _mm512_set1_ps(1.0);
        let q = _mm512_mul_ps(_mm512_add_ps(e, e), reciprocal(_mm512_add_ps(one, e)));
        let big = _mm512_sub_ps(one, q);
        // |x| < 0.625, false for NaN (whose `big` is NaN).
        let is_small = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(minus_2a, _mm512_set1_ps(-1.25));
        with_sign_of(_mm512_mask_blend_ps(is_small, big, small), x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::values;

    /// [`lstm_grad_row_fast`] against the portable row on odd widths, with
    /// gates at 0 and 1, a saturated `c'`, infinities and NaN.
    #[test]
    fn the_gradient_matches_the_portable_row() {
        for h in [1, 5, 16, 17, 81, 256] {
            let dh_out = values(h, 1);
            let mut dh_next = values(h, 2);
            let dc = values(h, 3);
            let mut a: Vec<f32> = values(4 * h, 4).iter().map(|v| 0.5 + 0.5 * v).collect();
            let c = values(h, 5);
            let mut cn: Vec<f32> = values(h, 6).iter().map(|v| v * 5.0).collect();
            a[0] = 1.0;
            a[(3 * h) % (4 * h)] = 0.0;
            cn[h / 2] = f32::INFINITY;
            dh_next[h - 1] = f32::NAN;
            let dh: Vec<f32> = dh_out.iter().zip(&dh_next).map(|(x, y)| x + y).collect();
            let (mut got_g, mut got_c) = (vec![7.0; 4 * h + 1], vec![7.0; h + 1]);
            let mut scratch = vec![0.0; h];
            let rows = [&dh_out[..], &dh_next[..]];
            lstm_grad_row_fast(rows, &dc, &a, &c, &cn, &mut got_g, &mut got_c, &mut scratch);
            let (mut want_g, mut want_c) = (vec![7.0; 4 * h + 1], vec![7.0; h + 1]);
            vectorised(|| lstm_grad_row(&dh, &dc, &a, &c, &cn, &mut want_g, &mut want_c));
            for (got, want) in [(got_g, want_g), (got_c, want_c)] {
                assert_eq!(got.last(), Some(&7.0), "h {h}: written past the end");
                for (k, (&x, &y)) in got.iter().zip(&want).enumerate() {
                    let close = (x - y).abs() <= 16.0 * f32::EPSILON * (1.0 + y.abs())
                        || (x.is_nan() && y.is_nan());
                    assert!(close, "h {h} [{k}]: {x} against {y}");
                }
            }
        }
    }

    /// [`lstm_row_fast`] against the portable row on odd widths, with
    /// pre-activations from −40 to 40, zeros of both signs, ±∞ and NaN.
    #[test]
    fn matches_the_portable_row_within_a_few_ulp() {
        for h in [1, 5, 16, 17, 81, 256] {
            let mut x: Vec<f32> = values(4 * h, 1).iter().map(|v| v * 40.0).collect();
            let y: Vec<f32> = values(4 * h, 2).iter().map(|v| v * 0.5).collect();
            let c: Vec<f32> = values(h, 3).iter().map(|v| v * 3.0).collect();
            let specials = [
                0.0,
                -0.0,
                0.3,
                -0.62,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
            ];
            for (k, v) in specials.into_iter().enumerate() {
                if k < 4 * h {
                    x[(k * 7) % (4 * h)] = v;
                }
            }
            let run = |fast: bool| {
                let (mut h_out, mut c_out, mut g) =
                    (vec![7.0; h + 1], vec![7.0; h + 1], vec![7.0; 4 * h + 1]);
                if fast {
                    lstm_row_fast(&x, &y, &c, &mut h_out, &mut c_out, &mut g);
                } else {
                    vectorised(|| lstm_row(&x, &y, &c, &mut h_out, &mut c_out, &mut g));
                }
                [h_out, c_out, g]
            };
            let (got, want) = (run(true), run(false));
            for (which, (got, want)) in got.iter().zip(&want).enumerate() {
                let n = got.len() - 1;
                assert_eq!(got[n], 7.0, "h {h}: output {which} written past its end");
                for (k, (&a, &b)) in got[..n].iter().zip(&want[..n]).enumerate() {
                    // The gates are function values, within a few ulp;
                    // `c'` and `h'` also differ by a fused multiply-add.
                    let tol = if which == 2 {
                        4.0 * f32::EPSILON * b.abs()
                    } else {
                        16.0 * f32::EPSILON * (1.0 + b.abs())
                    };
                    let close = (a - b).abs() <= tol || (a.is_nan() && b.is_nan()) || a == b;
                    assert!(close, "h {h}: output {which}[{k}]: {a} against {b}");
                    if b == 0.0 {
                        assert_eq!(a.is_sign_negative(), b.is_sign_negative(), "sign of zero");
                    }
                }
            }
        }
    }
}
