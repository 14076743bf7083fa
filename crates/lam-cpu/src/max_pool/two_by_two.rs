//! 2×2 windows at stride 2 (the pooling of most CNNs), one output row at
//! a time: the forward pass's maxima and winning taps from the two image
//! rows the windows cover, and the backward pass's gradient sent to the
//! winners. With AVX-512, 16 windows per step (the last block of a row
//! masked: LeNet's rows are 14 and 5 windows long): the two rows' even and
//! odd pixels pulled apart by permutes (forward), or each window's gradient
//! and tap doubled into pixel order and kept where the tap matches
//! (backward, writing the rows whole rather than adding into zeroed ones). The compiler does not vectorise the plain loops (the pixels
//! are two apart), which took a sixth of a LeNet step.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One output row of 2×2 windows from the two image rows they cover (each
/// at least `2·OW` pixels): `vals`, `wins` (`OW` each) get each window's
/// maximum and winning tap, taps visited in order `(0,0), (0,1), (1,0),
/// (1,1)` taking a later one when it is greater, or a NaN where the best
/// so far is not (the general loop's rule: the first maximum, NaN wins).
pub(super) fn forward_row(rows: [&[f32]; 2], vals: &mut [f32], wins: &mut [i32]) {
    let ow = vals.len().min(wins.len());
    let [top, bottom] = rows;
    assert!(
        top.len() >= 2 * ow && bottom.len() >= 2 * ow,
        "max_pool: 2×2 rows"
    );
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was checked just above; the rows hold 2·OW
        // pixels (checked above), `vals` and `wins` OW.
        done = unsafe { avx512::forward(top, bottom, vals, wins, ow) };
    }
    forward_plain(
        [&top[2 * done..], &bottom[2 * done..]],
        &mut vals[done..ow],
        &mut wins[done..ow],
    );
}

/// One output row's gradient `gs` and winning taps `ts` (`OW` each) into
/// the first `2·OW` pixels of the two image rows its windows cover (`top`,
/// `bottom`): each pixel `0 + ` its window's gradient if the window's tap
/// (`0..4`) is the pixel's, else 0 — what adding into zeroed rows gives,
/// without reading them.
pub(super) fn backward_row(gs: &[f32], ts: &[i32], top: &mut [f32], bottom: &mut [f32]) {
    let ow = gs.len().min(ts.len());
    assert!(
        top.len() >= 2 * ow && bottom.len() >= 2 * ow,
        "max_pool_grad: 2×2 rows"
    );
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: as in `forward_row`.
        done = unsafe { avx512::backward(gs, ts, top, bottom, ow) };
    }
    for ((&g, &t), ox) in gs[done..ow].iter().zip(&ts[done..ow]).zip(done..) {
        let pixel = |tap: i32| if t == tap { 0.0 + g } else { 0.0 };
        top[2 * ox..2 * ox + 2].copy_from_slice(&[pixel(0), pixel(1)]);
        bottom[2 * ox..2 * ox + 2].copy_from_slice(&[pixel(2), pixel(3)]);
    }
}

/// [`forward_row`] window by window.
fn forward_plain(rows: [&[f32]; 2], vals: &mut [f32], wins: &mut [i32]) {
    let [top, bottom] = rows;
    for (ox, (best, win)) in vals.iter_mut().zip(wins.iter_mut()).enumerate() {
        let taps = [
            top[2 * ox],
            top[2 * ox + 1],
            bottom[2 * ox],
            bottom[2 * ox + 1],
        ];
        let (mut b, mut w) = (taps[0], 0);
        for (t, &v) in taps.iter().enumerate().skip(1) {
            let take = (v > b) | (v.is_nan() & !b.is_nan());
            b = if take { v } else { b };
            w = if take { t as i32 } else { w };
        }
        *best = b;
        *win = w;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;

    /// Even lanes of two vectors (`[a0, a2, .., a14, b0, .., b14]`), and odd.
    const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
    const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
    /// Lanes 0..8 of a vector, each twice (`[a0, a0, a1, a1, ..]`), and 8..16.
    const TWICE_LOW: [i32; 16] = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7];
    const TWICE_HIGH: [i32; 16] = [8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15];
    /// A pixel's column within its window, for 16 pixels of a row.
    const COLUMN: [i32; 16] = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1];

    /// A vector of 16 indices or lane values.
    #[target_feature(enable = "avx512f")]
    fn lanes(v: &[i32; 16]) -> __m512i {
        // SAFETY: reads the 16 values of `v`.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// Masks of the first `n` lanes of a block of 16, and of the first
    /// `2n` lanes of two (`n <= 16`).
    fn masks(n: usize) -> (__mmask16, [__mmask16; 2]) {
        let first = |k: usize| ((1u32 << k.min(16)) - 1) as __mmask16;
        (first(n), [first(2 * n), first((2 * n).saturating_sub(16))])
    }

    /// [`super::forward_row`], 16 windows at a time (the last block masked).
    ///
    /// # Safety
    /// AVX-512F; `top`, `bottom` hold `2·ow` pixels, `vals`, `wins` `ow`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(
        top: &[f32],
        bottom: &[f32],
        vals: &mut [f32],
        wins: &mut [i32],
        ow: usize,
    ) -> usize {
        let (even, odd) = (lanes(&EVEN), lanes(&ODD));
        for b in 0..ow.div_ceil(16) {
            let (windows, pixels) = masks(16.min(ow - 16 * b));
            let mut taps = [_mm512_setzero_ps(); 4];
            for (r, row) in [top, bottom].iter().enumerate() {
                let p = row.as_ptr().wrapping_add(32 * b);
                // SAFETY: the masks keep the loads to pixels below 2·ow.
                let (lo, hi) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(pixels[0], p),
                        _mm512_maskz_loadu_ps(pixels[1], p.wrapping_add(16)),
                    )
                };
                taps[2 * r] = _mm512_permutex2var_ps(lo, even, hi);
                taps[2 * r + 1] = _mm512_permutex2var_ps(lo, odd, hi);
            }
            let (mut best, mut win) = (taps[0], _mm512_setzero_si512());
            for (t, &v) in taps.iter().enumerate().skip(1) {
                let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best);
                let v_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                let best_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
                let take = greater | (v_nan & !best_nan);
                best = _mm512_mask_mov_ps(best, take, v);
                win = _mm512_mask_mov_epi32(win, take, _mm512_set1_epi32(t as i32));
            }
            // SAFETY: the mask keeps the stores to windows below ow.
            unsafe {
                _mm512_mask_storeu_ps(vals.as_mut_ptr().wrapping_add(16 * b), windows, best);
                _mm512_mask_storeu_epi32(wins.as_mut_ptr().wrapping_add(16 * b), windows, win);
            }
        }
        ow
    }

    /// [`super::backward_row`], 16 windows at a time (the last block
    /// masked).
    ///
    /// # Safety
    /// AVX-512F; `top`, `bottom` hold `2·ow` pixels, `gs`, `ts` `ow`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward(
        gs: &[f32],
        ts: &[i32],
        top: &mut [f32],
        bottom: &mut [f32],
        ow: usize,
    ) -> usize {
        let column = lanes(&COLUMN);
        let halves = [lanes(&TWICE_LOW), lanes(&TWICE_HIGH)];
        for b in 0..ow.div_ceil(16) {
            let (windows, pixels) = masks(16.min(ow - 16 * b));
            // SAFETY: the mask keeps the loads to windows below ow.
            let (g, t) = unsafe {
                (
                    _mm512_maskz_loadu_ps(windows, gs.as_ptr().wrapping_add(16 * b)),
                    _mm512_maskz_loadu_epi32(windows, ts.as_ptr().wrapping_add(16 * b)),
                )
            };
            // Pixels 16h..16h + 16 of each row: their windows' gradients and
            // taps, `0 + g` where the tap is the pixel's, else 0.
            for (h, &twice) in halves.iter().enumerate() {
                let (g2, t2) = (
                    _mm512_permutexvar_ps(twice, g),
                    _mm512_permutexvar_epi32(twice, t),
                );
                for (r, row) in [&mut *top, &mut *bottom].into_iter().enumerate() {
                    let tap = _mm512_add_epi32(column, _mm512_set1_epi32(2 * r as i32));
                    let mine = _mm512_cmpeq_epi32_mask(t2, tap);
                    let v = _mm512_maskz_add_ps(mine, _mm512_setzero_ps(), g2);
                    let p = row.as_mut_ptr().wrapping_add(32 * b + 16 * h);
                    // SAFETY: `pixels` keeps the store to pixels below 2·ow.
                    unsafe { _mm512_mask_storeu_ps(p, pixels[h], v) };
                }
            }
        }
        ow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::values;

    #[test]
    fn vector_blocks_match_the_plain_loop() {
        // Rows of 16 to 53 windows (whole blocks and a tail), with ties,
        // NaNs (first or later in a window, or everywhere), infinities
        // and signed zeros among the pixels; gradients with negative zeros
        // (which reach their pixel as 0 + -0 = +0, as adding into zeros
        // gives), and taps outside 0..4, which send nothing back.
        for ow in [1, 15, 16, 17, 32, 53] {
            let mut rows: Vec<Vec<f32>> = (0..2).map(|r| values(2 * ow + 1, 40 + r)).collect();
            for (i, v) in rows[0].iter_mut().enumerate() {
                match i % 11 {
                    0 => *v = f32::NAN,
                    3 => *v = f32::INFINITY,
                    5 => *v = -0.0,
                    7 => *v = 0.0,
                    _ => {}
                }
            }
            let (top, bottom) = rows.split_at_mut(1);
            for (i, v) in bottom[0].iter_mut().enumerate() {
                match i % 7 {
                    1 => *v = f32::NAN,
                    2 => *v = f32::NEG_INFINITY,
                    4 => *v = top[0][i],
                    _ => {}
                }
            }
            let (mut vals, mut wins) = (vec![0.0; ow], vec![0; ow]);
            forward_row([&rows[0], &rows[1]], &mut vals, &mut wins);
            let (mut want_vals, mut want_wins) = (vec![0.0; ow], vec![0; ow]);
            forward_plain([&rows[0], &rows[1]], &mut want_vals, &mut want_wins);
            assert_eq!(wins, want_wins, "{ow} windows");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&vals), bits(&want_vals), "{ow} windows");

            let mut gs = values(ow, 43);
            let ts: Vec<i32> = (0..ow).map(|i| [0, 1, 2, 3, -1, 7][i % 6]).collect();
            gs.iter_mut().step_by(5).for_each(|v| *v = -0.0);
            // Rows holding other values (and one pixel past the windows,
            // which must keep its value).
            let (mut top, mut bottom) = (values(2 * ow + 1, 44), values(2 * ow + 1, 45));
            let (mut want_top, mut want_bottom) = (vec![0.0; 2 * ow + 1], vec![0.0; 2 * ow + 1]);
            (want_top[2 * ow], want_bottom[2 * ow]) = (top[2 * ow], bottom[2 * ow]);
            backward_row(&gs, &ts, &mut top, &mut bottom);
            for (ox, (&g, &t)) in gs.iter().zip(&ts).enumerate() {
                match t {
                    0 => want_top[2 * ox] += g,
                    1 => want_top[2 * ox + 1] += g,
                    2 => want_bottom[2 * ox] += g,
                    3 => want_bottom[2 * ox + 1] += g,
                    _ => {}
                }
            }
            assert_eq!(bits(&top), bits(&want_top), "{ow} windows");
            assert_eq!(bits(&bottom), bits(&want_bottom), "{ow} windows");
        }
    }
}
