//! The int8 product of dynamic quantization (`matmul_i8`): activations
//! quantized per call with a scale per input row, weights per output
//! channel, products of int8 values accumulated in `i32`.
//!
//! The dot product is compiled three times and chosen at run time:
//! AVX-512 VNNI (`vpdpbusd`: 64 multiply-adds of unsigned by signed bytes
//! into 16 lanes per instruction), AVX2 (`vpmaddubsw` then `vpmaddwd`) and a
//! portable loop. Both vector forms multiply unsigned by signed bytes, so
//! they take `|x|` and move `x`'s sign onto the weight; with both in
//! `[-127, 127]` no pair sum saturates `i16` (2 · 127² < 2¹⁵). The packed
//! weights are read in place (their words are the bytes), each weight row
//! once for every input row while it is in L1, and blocks of output
//! channels are split over threads above a size threshold.

use lam_core::backend::View;
use lam_core::{Error, Result};
use rayon::prelude::*;

use crate::storage::ReadLocks;
use crate::strided::gather;

/// Multiply-adds from which the channels are split over threads.
const PAR_MIN_MACS: usize = 1 << 21;

/// See [`lam_core::Backend::matmul_i8`].
pub(crate) fn matmul_i8(
    input: View,
    input_scale: View,
    weight: View,
    weight_scale: View,
    bias: Option<View>,
) -> Result<Vec<f32>> {
    const OP: &str = "matmul_i8";
    let mut inputs = vec![input.0, input_scale.0, weight.0, weight_scale.0];
    inputs.extend(bias.map(|b| b.0));
    let locks = ReadLocks::new(OP, &inputs)?;
    input.1.expect_rank(OP, "input [M, K]", 2)?;
    weight.1.expect_rank(OP, "weight [N, K/4]", 2)?;
    let (m, k) = (input.1.shape[0], input.1.shape[1]);
    let (n, words) = (weight.1.shape[0], weight.1.shape[1]);
    if words != k.div_ceil(4) || !weight.1.is_contiguous() {
        return Err(Error::shape(
            OP,
            format!("a contiguous packed weight [N, {}]", k.div_ceil(4)),
            &weight.1.shape,
        ));
    }
    if weight_scale.1.shape != [n] || bias.is_some_and(|b| b.1.shape != [n]) {
        return Err(Error::shape(
            OP,
            format!("scales and bias of shape [{n}]"),
            &weight_scale.1.shape,
        ));
    }
    if input_scale.1.shape != [m] {
        return Err(Error::shape(
            OP,
            format!("input scales of shape [{m}]"),
            &input_scale.1.shape,
        ));
    }
    let x = gather(locks.f32(0, input.1)?, input.1)?;
    let x_scale = gather(locks.f32(1, input_scale.1)?, input_scale.1)?;
    let w_words = &locks.i32(2, weight.1)?[weight.1.offset..weight.1.offset + n * words];
    let w_scale = gather(locks.f32(3, weight_scale.1)?, weight_scale.1)?;
    let b_vec = match bias {
        Some((_, l)) => Some(gather(locks.f32(4, l)?, l)?),
        None => None,
    };

    // Rows padded to whole words, zeros past K (weights are padded alike).
    let row = words * 4;
    let mut xq = vec![0i8; m * row];
    for ((dst, src), &s) in xq
        .chunks_mut(row.max(1))
        .zip(x.chunks(k.max(1)))
        .zip(x_scale.iter())
    {
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        for (q, &v) in dst.iter_mut().zip(src) {
            *q = quantize(v, inv);
        }
    }
    let wq = weight_bytes(w_words);

    let dot = dot_kernel();
    let mut out = crate::pool::take(m * n)?;
    if m * n == 0 {
        return Ok(out);
    }
    // Blocks of output channels: each weight row is read once for every
    // input row while it is in L1, and blocks go to threads when the
    // product is big enough. A block is written transposed ([channel, row])
    // into its own slice, then laid out as [M, N].
    let mut t = crate::pool::take(m * n)?;
    let block = |(b, dst): (usize, &mut [f32])| {
        for (j, col) in dst.chunks_mut(m).enumerate() {
            let c = b * BLOCK + j;
            let w_row = &wq[c * row..(c + 1) * row];
            let add = b_vec.as_ref().map_or(0.0, |b| b[c]);
            for (r, y) in col.iter_mut().enumerate() {
                let acc = dot(&xq[r * row..(r + 1) * row], w_row);
                *y = acc as f32 * (x_scale[r] * w_scale[c]) + add;
            }
        }
    };
    if m * n * k >= PAR_MIN_MACS {
        t.par_chunks_mut(BLOCK * m).enumerate().for_each(block);
    } else {
        t.chunks_mut(BLOCK * m).enumerate().for_each(block);
    }
    for (c, col) in t.chunks(m).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            out[r * n + c] = v;
        }
    }
    Ok(out)
}

/// Output channels per block of work.
const BLOCK: usize = 32;

/// The packed weights as bytes: the words' memory itself on a
/// little-endian machine (the packing is lowest byte first), else a copy.
fn weight_bytes(words: &[i32]) -> std::borrow::Cow<'_, [i8]> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: an i32 slice is valid as four times as many i8s (no
        // alignment or validity requirement), over the same borrow.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(words.as_ptr().cast::<i8>(), words.len() * 4)
        })
    }
    #[cfg(not(target_endian = "little"))]
    {
        std::borrow::Cow::Owned(
            words
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .map(|b| b as i8)
                .collect(),
        )
    }
}

/// `clamp(round(v / s), -127, 127)`, halves to even (as WGSL's `round`); NaN → 0.
fn quantize(v: f32, inv_scale: f32) -> i8 {
    (v * inv_scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

type Dot = fn(&[i8], &[i8]) -> i32;

/// The fastest dot product this CPU runs.
fn dot_kernel() -> Dot {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the features were just detected.
            return |a, b| unsafe { x86::dot_vnni(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was just detected.
            return |a, b| unsafe { x86::dot_avx2(a, b) };
        }
    }
    dot_portable
}

/// The reference: every product in `i32`.
fn dot_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX-512 VNNI and BW; `a` and `b` have equal lengths.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn dot_vnni(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let mut acc = _mm512_setzero_si512();
        let zero = _mm512_setzero_si512();
        let mut i = 0;
        while i + 64 <= n {
            // SAFETY: i + 64 <= n bytes remain in both slices.
            let x = unsafe { _mm512_loadu_si512(a.as_ptr().add(i).cast()) };
            let w = unsafe { _mm512_loadu_si512(b.as_ptr().add(i).cast()) };
            let negative = _mm512_movepi8_mask(x);
            let signed_w = _mm512_mask_sub_epi8(w, negative, zero, w);
            acc = _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(x), signed_w);
            i += 64;
        }
        _mm512_reduce_add_epi32(acc) + super::dot_portable(&a[i..n], &b[i..n])
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dot_product_equals_the_portable_one() {
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((state >> 16) % 255) as i32 - 127
        };
        for len in [0, 1, 31, 32, 63, 64, 65, 200, 1024] {
            let a: Vec<i8> = (0..len).map(|_| next() as i8).collect();
            let b: Vec<i8> = (0..len).map(|_| next() as i8).collect();
            let want = dot_portable(&a, &b);
            assert_eq!(dot_kernel()(&a, &b), want, "len {len}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                assert_eq!(unsafe { x86::dot_avx2(&a, &b) }, want, "avx2, len {len}");
            }
        }
        // The extremes: no saturation.
        let a = vec![-127i8; 64];
        let b = vec![-127i8; 64];
        assert_eq!(dot_kernel()(&a, &b), 64 * 127 * 127);
    }

    #[test]
    fn quantize_rounds_and_clamps() {
        assert_eq!(quantize(0.5, 1.0), 0);
        assert_eq!(quantize(1.5, 1.0), 2);
        assert_eq!(quantize(-2.5, 1.0), -2);
        assert_eq!(quantize(0.6, 1.0), 1);
        assert_eq!(quantize(1000.0, 1.0), 127);
        assert_eq!(quantize(-1000.0, 1.0), -127);
        assert_eq!(quantize(f32::NAN, 1.0), 0);
    }
}
