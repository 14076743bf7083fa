//! The x86 kernels of the int8 product: AVX-512 quantization and absolute
//! maximum of a row, the AVX-512 VNNI tile of integer dot products, and the
//! AVX2 dot product; each caller checks the CPU's features first.

use std::arch::x86_64::*;

use super::{MR, NR};

/// # Safety
/// The CPU has AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_avx512(src: &[f32], inv_scale: f32, dst: &mut [i8]) {
    let n = src.len().min(dst.len());
    let inv = _mm512_set1_ps(inv_scale);
    let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n elements remain in both slices.
        let v = _mm512_mul_ps(unsafe { _mm512_loadu_ps(src.as_ptr().add(i)) }, inv);
        // Clamped first (the bounds are integers, so this commutes with
        // rounding), then rounded to nearest even; NaN lanes become 0.
        let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v);
        let clamped = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        let q = _mm512_maskz_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            ordered, clamped,
        );
        unsafe { _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi8(q)) };
        i += 16;
    }
    for (q, &v) in dst[i..n].iter_mut().zip(&src[i..n]) {
        *q = super::quantize(v, inv_scale);
    }
}

/// # Safety
/// The CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn abs_max_avx512(src: &[f32]) -> f32 {
    let mut max = _mm512_setzero_ps();
    let mut nan: __mmask16 = 0;
    let mut i = 0;
    while i + 16 <= src.len() {
        // SAFETY: i + 16 <= len elements remain.
        let v = unsafe { _mm512_loadu_ps(src.as_ptr().add(i)) };
        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        max = _mm512_max_ps(max, _mm512_abs_ps(v));
        i += 16;
    }
    if nan != 0 {
        return f32::NAN;
    }
    let tail = super::abs_max(&src[i..]);
    if tail.is_nan() {
        return tail;
    }
    _mm512_reduce_max_ps(max).max(tail)
}

/// `acc[i][j]` = row `i` of `x` · row `j` of `w`, for `mr` rows of `x`
/// and `nr` of `w`, each `row` bytes.
///
/// `vpdpbusd` multiplies unsigned by signed bytes, so each input byte
/// `q` is read as `q ^ 0x80 = q + 128` (unsigned) and the excess,
/// `128 · Σ w`, is subtracted once per output: one instruction per
/// 64 products and no sign juggling. The sums wrap rather than
/// saturate, so the result is exact whenever the true one fits `i32`.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VNNI; `x` holds `mr · row` bytes and
/// `w` `nr · row`; `mr <= MR`, `nr <= NR`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile_vnni(
    x: &[i8],
    w: &[i8],
    row: usize,
    mr: usize,
    nr: usize,
    acc: &mut [[i32; NR]; MR],
) {
    debug_assert!(x.len() >= mr * row && w.len() >= nr * row);
    macro_rules! dispatch {
        ($($r:literal $c:literal),*) => {
            match (mr, nr) {
                // SAFETY: as this function's contract.
                $(($r, $c) => unsafe { tile::<$r, $c>(x.as_ptr(), w.as_ptr(), row, acc) },)*
                _ => {}
            }
        };
    }
    dispatch!(1 1, 1 2, 1 3, 1 4, 2 1, 2 2, 2 3, 2 4, 3 1, 3 2, 3 3, 3 4, 4 1, 4 2, 4 3, 4 4);
}

/// [`tile_vnni`] with the tile's size known, so its sums live in registers.
///
/// # Safety
/// As [`tile_vnni`], with `R` rows at `x` and `C` at `w`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile<const R: usize, const C: usize>(
    x: *const i8,
    w: *const i8,
    row: usize,
    acc: &mut [[i32; NR]; MR],
) {
    let flip = _mm512_set1_epi8(i8::MIN);
    let mut sums = [[_mm512_setzero_si512(); C]; R];
    let mut excess = [_mm512_setzero_si512(); C];
    let mut i = 0;
    while i < row {
        // The last chunk loads only the bytes left; the rest read as 0
        // (then `0 ^ 0x80` times a zero weight adds nothing).
        let left = row - i;
        let mask: __mmask64 = if left >= 64 { !0 } else { (1u64 << left) - 1 };
        let mut wv = [_mm512_setzero_si512(); C];
        for j in 0..C {
            // SAFETY: the mask keeps the load inside row j of `w`.
            wv[j] = unsafe { _mm512_maskz_loadu_epi8(mask, w.add(j * row + i)) };
            excess[j] = _mm512_dpbusd_epi32(excess[j], flip, wv[j]);
        }
        for (r, sums_r) in sums.iter_mut().enumerate() {
            // SAFETY: the mask keeps the load inside row r of `x`.
            let xv = unsafe { _mm512_maskz_loadu_epi8(mask, x.add(r * row + i)) };
            let xu = _mm512_xor_si512(xv, flip);
            for (s, &wj) in sums_r.iter_mut().zip(&wv) {
                *s = _mm512_dpbusd_epi32(*s, xu, wj);
            }
        }
        i += 64;
    }
    if R == MR && C == NR {
        // A whole tile: the 16 sums reduced together (`reduce16`).
        let mut v = [_mm512_setzero_si512(); 16];
        for (r, sums_r) in sums.iter().enumerate() {
            for (c, (&s, &e)) in sums_r.iter().zip(&excess).enumerate() {
                v[r * NR + c] = _mm512_sub_epi32(s, e);
            }
        }
        let mut out = [0i32; 16];
        // SAFETY: `out` holds 16 i32s; the CPU has AVX-512 F (this
        // function's contract).
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), reduce16(&v)) };
        for (r, acc_r) in acc.iter_mut().enumerate() {
            acc_r.copy_from_slice(&out[r * NR..(r + 1) * NR]);
        }
        return;
    }
    for (acc_r, sums_r) in acc.iter_mut().zip(&sums) {
        for ((a, &s), &e) in acc_r.iter_mut().zip(sums_r).zip(&excess) {
            *a = _mm512_reduce_add_epi32(_mm512_sub_epi32(s, e));
        }
    }
}

/// Lane `i` of the result is the sum of the 16 lanes of `v[i]`: a
/// transposing tree of 15 adds (pairs within 128-bit blocks, then
/// across blocks) instead of 16 separate horizontal sums.
///
/// # Safety
/// The CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
unsafe fn reduce16(v: &[__m512i; 16]) -> __m512i {
    // Lanes of each 128-bit block: (v[2i], v[2i+1], v[2i], v[2i+1]) partials.
    let mut t = [_mm512_setzero_si512(); 8];
    for (i, t) in t.iter_mut().enumerate() {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        *t = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    }
    // Each block: the partials of v[4i..4i + 4].
    let mut u = [_mm512_setzero_si512(); 4];
    for (i, u) in u.iter_mut().enumerate() {
        let (a, b) = (t[2 * i], t[2 * i + 1]);
        *u = _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
    }
    // Blocks summed pairwise, twice: block j then holds v[4j..4j + 4].
    let mut w = [_mm512_setzero_si512(); 2];
    for (i, w) in w.iter_mut().enumerate() {
        let (a, b) = (u[2 * i], u[2 * i + 1]);
        *w = _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b),
        );
    }
    _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0b10_00_10_00>(w[0], w[1]),
        _mm512_shuffle_i32x4::<0b11_01_11_01>(w[0], w[1]),
    )
}

/// # Safety
/// The CPU has AVX2; `a` and `b` have equal lengths.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_avx2(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n bytes remain in both slices.
        let x = unsafe { _mm256_loadu_si256(a.as_ptr().add(i).cast()) };
        let w = unsafe { _mm256_loadu_si256(b.as_ptr().add(i).cast()) };
        let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(w, x));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        i += 32;
    }
    let lo = _mm256_castsi256_si128(acc);
    let hi = _mm256_extracti128_si256(acc, 1);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s) + super::dot_portable(&a[i..n], &b[i..n])
}
