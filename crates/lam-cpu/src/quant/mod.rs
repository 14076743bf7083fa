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
//!
//! `x86.rs` has the vector kernels; `panel.rs` the register-tiled product
//! for many rows over weights packed into panels.

use lam_core::backend::View;
use lam_core::{Error, Result};
use rayon::prelude::*;

use crate::storage::ReadLocks;
use crate::strided::gather;

#[cfg(target_arch = "x86_64")]
mod panel;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Multiply-adds from which the channels are split over threads: waking
/// rayon's pool cost 20–40 µs per call on 2 cores, as much as a 512 → 512
/// layer's whole batch of 32 on one thread (42 µs).
const PAR_MIN_MACS: usize = 1 << 24;

/// See [`lam_core::Backend::matmul_i8`].
pub(crate) fn matmul_i8(
    input: View,
    input_scale: Option<View>,
    weight: View,
    weight_scale: View,
    bias: Option<View>,
) -> Result<Vec<f32>> {
    const OP: &str = "matmul_i8";
    // Locked in this order: input, weight, weight scales, then the
    // optional bias and input scales.
    let mut inputs = vec![input.0, weight.0, weight_scale.0];
    inputs.extend(bias.map(|b| b.0));
    inputs.extend(input_scale.map(|s| s.0));
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
    if let Some((_, l)) = input_scale {
        if l.shape != [m] {
            return Err(Error::shape(
                OP,
                format!("input scales of shape [{m}]"),
                &l.shape,
            ));
        }
    }
    let x = gather(locks.f32(0, input.1)?, input.1)?;
    let w_words = &locks.i32(1, weight.1)?[weight.1.offset..weight.1.offset + n * words];
    let w_scale = gather(locks.f32(2, weight_scale.1)?, weight_scale.1)?;
    let b_vec = match bias {
        Some((_, l)) => Some(gather(locks.f32(3, l)?, l)?),
        None => None,
    };
    let kernel = Kernel::detect();
    let x_scale = match input_scale {
        Some((_, l)) => gather(locks.f32(3 + usize::from(bias.is_some()), l)?, l)?,
        None => crate::strided::Gathered::Owned(
            (0..m)
                .map(|r| kernel.abs_max(&x[r * k..(r + 1) * k]) / 127.0)
                .collect(),
        ),
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
        kernel.quantize(src, inv, dst);
    }
    let wq = weight_bytes(w_words);

    let mut out = crate::pool::take(m * n)?;
    if m * n == 0 {
        return Ok(out);
    }
    #[cfg(target_arch = "x86_64")]
    let panels = (matches!(kernel, Kernel::Vnni) && panel::worth_it(m, k)).then(|| {
        // The panel kernel reads inputs as unsigned bytes (see `x86::tile`).
        for q in xq.iter_mut() {
            *q ^= i8::MIN;
        }
        panel::Panels::new(w_words, n, words)
    });
    let product = Product {
        xq: &xq,
        wq: &wq,
        row,
        m,
        x_scale: &x_scale,
        w_scale: &w_scale,
        bias: b_vec.as_deref(),
        kernel,
    };
    #[cfg(target_arch = "x86_64")]
    if let Some(panels) = panels {
        // Rows go to threads in tiles of eight (each writes whole rows).
        let work = m * n * k / (PAR_MIN_MACS / crate::parallel::PAR_MIN_WORK);
        crate::parallel::for_chunks(&mut out, 8 * n, work, |start, dst| {
            let first = start / n;
            // SAFETY: panels are only built when the Vnni kernel was detected.
            unsafe { panel::rows(&product, &panels, n, first..first + dst.len() / n, dst) };
        });
        return Ok(out);
    }
    if m * n * k < PAR_MIN_MACS || n <= BLOCK {
        product.channels(0..n, &mut out, n);
        return Ok(out);
    }
    // Blocks of output channels go to threads; each writes its own
    // `[M, BLOCK]` slice, then the slices are laid out as `[M, N]`.
    let mut t = crate::pool::take(m * n.next_multiple_of(BLOCK))?;
    t.par_chunks_mut(BLOCK * m)
        .enumerate()
        .for_each(|(b, dst)| {
            let c0 = b * BLOCK;
            product.channels(c0..(c0 + BLOCK).min(n), dst, BLOCK);
        });
    for (b, block) in t.chunks(BLOCK * m).enumerate() {
        let c0 = b * BLOCK;
        let width = BLOCK.min(n - c0);
        for (r, src) in block.chunks(BLOCK).enumerate() {
            out[r * n + c0..r * n + c0 + width].copy_from_slice(&src[..width]);
        }
    }
    crate::pool::give(t);
    Ok(out)
}

/// Output channels per block of work given to a thread.
const BLOCK: usize = 64;

/// Everything one call multiplies: quantized rows `xq` (`[M, row]`) and
/// packed weights `wq` (`[N, row]`), with their scales and the bias.
struct Product<'a> {
    xq: &'a [i8],
    wq: &'a [i8],
    row: usize,
    m: usize,
    x_scale: &'a [f32],
    w_scale: &'a [f32],
    bias: Option<&'a [f32]>,
    kernel: Kernel,
}

impl Product<'_> {
    /// Output channels `cols` for every row, written to `dst[r * stride + j]`
    /// for channel `cols.start + j`.
    fn channels(&self, cols: std::ops::Range<usize>, dst: &mut [f32], stride: usize) {
        let row = self.row;
        let mut c = cols.start;
        while c < cols.end {
            let nr = (cols.end - c).min(NR);
            let w = &self.wq[c * row..(c + nr) * row];
            let mut r = 0;
            while r < self.m {
                let mr = (self.m - r).min(MR);
                let x = &self.xq[r * row..(r + mr) * row];
                let mut acc = [[0i32; NR]; MR];
                self.kernel.tile(x, w, row, mr, nr, &mut acc);
                for (i, acc_row) in acc.iter().enumerate().take(mr) {
                    let s = self.x_scale[r + i];
                    let out_row = &mut dst[(r + i) * stride..];
                    for (j, &a) in acc_row.iter().enumerate().take(nr) {
                        let ch = c + j;
                        let add = self.bias.map_or(0.0, |b| b[ch]);
                        out_row[ch - cols.start] = a as f32 * (s * self.w_scale[ch]) + add;
                    }
                }
                r += mr;
            }
            c += nr;
        }
    }
}

/// Rows and output channels of one register tile.
const MR: usize = 4;
const NR: usize = 4;

/// The fastest implementation this CPU runs, chosen once per call.
#[derive(Clone, Copy)]
enum Kernel {
    /// AVX-512 VNNI: `vpdpbusd` on whole tiles.
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// AVX2: `vpmaddubsw` dot products, one output at a time.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Plain loops.
    Portable,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                return Kernel::Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// `max |v|` over `src` (0 when empty), NaN when `src` holds one.
    fn abs_max(self, src: &[f32]) -> f32 {
        match self {
            // SAFETY: `Vnni` is only chosen when AVX-512 F was detected.
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => unsafe { x86::abs_max_avx512(src) },
            _ => abs_max(src),
        }
    }

    /// `dst[i] = quantize(src[i], inv_scale)`; `dst` may be longer (its
    /// tail stays as it is: zeros).
    fn quantize(self, src: &[f32], inv_scale: f32, dst: &mut [i8]) {
        match self {
            // SAFETY: `Vnni` is only chosen when AVX-512 F and BW were detected.
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => unsafe { x86::quantize_avx512(src, inv_scale, dst) },
            _ => {
                for (q, &v) in dst.iter_mut().zip(src) {
                    *q = quantize(v, inv_scale);
                }
            }
        }
    }

    /// `acc[i][j] = x row i · w row j` for the first `mr` rows of `x` and
    /// `nr` rows of `w` (each `row` bytes).
    fn tile(self, x: &[i8], w: &[i8], row: usize, mr: usize, nr: usize, acc: &mut [[i32; NR]; MR]) {
        match self {
            // SAFETY: `Vnni` is only chosen when AVX-512 F, BW and VNNI were
            // detected; the slices hold `mr` and `nr` rows of `row` bytes.
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => unsafe { x86::tile_vnni(x, w, row, mr, nr, acc) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => tile_with(x, w, row, mr, nr, acc, |a, b| {
                // SAFETY: `Avx2` is only chosen when AVX2 was detected.
                unsafe { x86::dot_avx2(a, b) }
            }),
            Kernel::Portable => tile_with(x, w, row, mr, nr, acc, dot_portable),
        }
    }
}

/// A tile from one dot product per output.
fn tile_with(
    x: &[i8],
    w: &[i8],
    row: usize,
    mr: usize,
    nr: usize,
    acc: &mut [[i32; NR]; MR],
    dot: impl Fn(&[i8], &[i8]) -> i32,
) {
    for (i, acc_row) in acc.iter_mut().enumerate().take(mr) {
        for (j, a) in acc_row.iter_mut().enumerate().take(nr) {
            *a = dot(&x[i * row..(i + 1) * row], &w[j * row..(j + 1) * row]);
        }
    }
}

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

/// `max |v|` over `src` (0 when empty), NaN when `src` holds one.
fn abs_max(src: &[f32]) -> f32 {
    src.iter().fold(0.0f32, |m, &v| {
        if v.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(v.abs())
        }
    })
}

/// `clamp(round(v / s), -127, 127)`, halves to even (as WGSL's `round`); NaN → 0.
fn quantize(v: f32, inv_scale: f32) -> i8 {
    (v * inv_scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// The reference: every product in `i32`.
fn dot_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU runs.
    fn kernels() -> Vec<Kernel> {
        let mut all = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(Kernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                all.push(Kernel::Vnni);
            }
        }
        all
    }

    #[test]
    fn every_tile_equals_the_portable_dot_products() {
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((state >> 16) % 255) as i32 - 127
        };
        for row in [0, 4, 32, 60, 64, 68, 128, 200, 1024] {
            let x: Vec<i8> = (0..MR * row).map(|_| next() as i8).collect();
            let w: Vec<i8> = (0..NR * row).map(|_| next() as i8).collect();
            for kernel in kernels() {
                for (mr, nr) in [(1, 1), (1, 4), (3, 2), (4, 3), (4, 4)] {
                    let mut acc = [[0i32; NR]; MR];
                    kernel.tile(&x, &w, row, mr, nr, &mut acc);
                    for i in 0..mr {
                        for j in 0..nr {
                            let want = dot_portable(
                                &x[i * row..(i + 1) * row],
                                &w[j * row..(j + 1) * row],
                            );
                            assert_eq!(acc[i][j], want, "row {row}, tile {mr}x{nr} at {i},{j}");
                        }
                    }
                }
            }
        }
        // The extremes: no saturation.
        for kernel in kernels() {
            for v in [-127i8, 127] {
                let x = vec![v; 4 * 64];
                let w = vec![-127i8; 4 * 64];
                let mut acc = [[0i32; NR]; MR];
                kernel.tile(&x, &w, 64, 4, 4, &mut acc);
                assert_eq!(acc[3][3], -64 * 127 * i32::from(v));
            }
        }
    }

    #[test]
    fn every_abs_max_equals_the_scalar_one() {
        let src: Vec<f32> = (0..37).map(|i| (i as f32 - 30.0) * 0.5).collect();
        for kernel in kernels() {
            for len in [0, 1, 15, 16, 17, 37] {
                assert_eq!(
                    kernel.abs_max(&src[..len]),
                    abs_max(&src[..len]),
                    "len {len}"
                );
            }
            assert_eq!(kernel.abs_max(&src), 15.0);
            for at in [3, 20, 36] {
                let mut with_nan = src.clone();
                with_nan[at] = f32::NAN;
                assert!(kernel.abs_max(&with_nan).is_nan(), "NaN at {at}");
            }
            let mut with_inf = src.clone();
            with_inf[5] = f32::NEG_INFINITY;
            assert_eq!(kernel.abs_max(&with_inf), f32::INFINITY);
        }
    }

    #[test]
    fn every_quantizer_equals_the_scalar_one() {
        let mut src: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.25).collect();
        src.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            126.5,
            -126.5,
        ]);
        src.extend((0..20).map(|i| i as f32 + 0.5));
        for inv in [1.0, 3.7, 0.0] {
            let want: Vec<i8> = src.iter().map(|&v| quantize(v, inv)).collect();
            for kernel in kernels() {
                let mut got = vec![0i8; src.len() + 3];
                kernel.quantize(&src, inv, &mut got);
                assert_eq!(&got[..src.len()], &want[..], "inv {inv}");
                assert_eq!(&got[src.len()..], &[0, 0, 0]);
            }
        }
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
