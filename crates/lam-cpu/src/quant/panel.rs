//! The int8 product for many rows: a register-tiled gemm over weights
//! repacked into panels, AVX-512 VNNI only.
//!
//! The dot-product tiles of the parent module read the packed weights in
//! place, which suits a few rows (nothing is copied), but each output ends
//! with a horizontal sum of a vector — for short rows (small `K`) that sum
//! costs more than the products. Here the weights are first copied into
//! panels of [`PANEL`] channels, word `w` of every channel side by side
//! (`[panel][word][channel]`), so one `vpdpbusd` takes one broadcast input
//! word against 16 channels and each accumulator lane *is* an output: no
//! horizontal sums, and a tile's outputs are stored as whole vectors. The
//! copy costs about one pass over the weights, which pays once enough rows
//! share it ([`worth_it`]).

use super::Product;

/// Channels per panel: two vectors of 16.
pub(super) const PANEL: usize = 32;

/// Rows per register tile: `ROWS × 2` accumulators plus the two weight
/// vectors and a broadcast fit AVX-512's 32 registers.
const ROWS: usize = 8;

/// Whether the panel path is faster for `m` rows of `k` inputs. Measured
/// on 2 AVX-512 cores with the dot tiles' sums reduced together: the
/// panels win for short rows (a 64 → 128 layer at batch 32: 3.2 µs), the
/// tiles from 256 inputs on (the repacking then costs more than the sums:
/// 512 → 512 at batch 8–32 took 1.6–2× longer in panels); below four rows
/// the tiles are too thin to use the registers.
pub(super) fn worth_it(m: usize, k: usize) -> bool {
    m >= 4 && k <= 128
}

/// Packed weights `[N, words]` as panels, and each channel's
/// `128 · Σ w` (see `tile`).
pub(super) struct Panels {
    words: usize,
    data: Vec<i32>,
    excess: Vec<i32>,
}

impl Panels {
    /// Repacks `w` (`n` rows of `words` words, four int8 values each).
    pub(super) fn new(w: &[i32], n: usize, words: usize) -> Panels {
        let padded = n.next_multiple_of(PANEL);
        let mut data = vec![0i32; padded * words];
        for (p, panel) in data.chunks_mut(PANEL * words.max(1)).enumerate() {
            for j in 0..PANEL.min(n - p * PANEL) {
                let src = &w[(p * PANEL + j) * words..(p * PANEL + j + 1) * words];
                for (i, &word) in src.iter().enumerate() {
                    panel[i * PANEL + j] = word;
                }
            }
        }
        let excess = (0..padded)
            .map(|c| {
                if c >= n {
                    return 0;
                }
                let sum: i32 = w[c * words..(c + 1) * words]
                    .iter()
                    .flat_map(|word| word.to_le_bytes())
                    .map(|b| i32::from(b as i8))
                    .sum();
                sum.wrapping_mul(128)
            })
            .collect();
        Panels {
            words,
            data,
            excess,
        }
    }
}

/// Rows `rows` of the product into `dst` (`[rows.len(), n]`). `xq` holds the
/// quantized inputs with every byte flipped (`q ^ 0x80`, read as unsigned).
///
/// # Safety
/// The CPU has AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn rows(
    product: &Product,
    panels: &Panels,
    n: usize,
    rows: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    let words = panels.words;
    let x_words = product.row / 4;
    let mut r = rows.start;
    while r < rows.end {
        let mr = (rows.end - r).min(ROWS);
        for (p, panel) in panels.data.chunks(PANEL * words.max(1)).enumerate() {
            let mut acc = [[_mm512_setzero_si512(); 2]; ROWS];
            // SAFETY: `xq` holds `m` rows of `row = 4 · x_words` bytes and
            // rows `r..r + mr` are among them; the panel holds `words` words
            // of PANEL channels.
            unsafe {
                let x = product.xq.as_ptr().add(r * product.row).cast::<i32>();
                tile(x, x_words, mr, panel.as_ptr(), words, &mut acc);
            }
            let c0 = p * PANEL;
            for (i, acc_r) in acc.iter().enumerate().take(mr) {
                let s = product.x_scale[r + i];
                let out = &mut dst[(r - rows.start + i) * n..];
                for (v, &a) in acc_r.iter().enumerate() {
                    let c = c0 + v * 16;
                    if c >= n {
                        break;
                    }
                    let lanes = (n - c).min(16);
                    let mask: __mmask16 = if lanes == 16 { !0 } else { (1 << lanes) - 1 };
                    // SAFETY: the masks keep every access to the first
                    // `lanes` channels from `c`, all below `n`.
                    unsafe {
                        let e = _mm512_loadu_si512(panels.excess.as_ptr().add(c).cast());
                        let sums = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, e));
                        let ws = _mm512_maskz_loadu_ps(mask, product.w_scale.as_ptr().add(c));
                        let mut y = _mm512_mul_ps(sums, _mm512_mul_ps(_mm512_set1_ps(s), ws));
                        if let Some(b) = product.bias {
                            y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, b.as_ptr().add(c)));
                        }
                        _mm512_mask_storeu_ps(out.as_mut_ptr().add(c), mask, y);
                    }
                }
            }
        }
        r += mr;
    }
}

/// Sums of `mr` rows (words `x_words` apart) against one panel.
///
/// # Safety
/// As [`rows`]; `mr <= ROWS`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile(
    x: *const i32,
    x_words: usize,
    mr: usize,
    panel: *const i32,
    words: usize,
    acc: &mut [[std::arch::x86_64::__m512i; 2]; ROWS],
) {
    macro_rules! dispatch {
        ($($r:literal),*) => {
            match mr {
                // SAFETY: as this function's contract.
                $($r => unsafe { tile_rows::<$r>(x, x_words, panel, words, acc) },)*
                _ => {}
            }
        };
    }
    dispatch!(1, 2, 3, 4, 5, 6, 7, 8);
}

/// [`tile`] with the row count known, so the sums live in registers.
///
/// # Safety
/// As [`tile`], with `R` rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_rows<const R: usize>(
    x: *const i32,
    x_words: usize,
    panel: *const i32,
    words: usize,
    acc: &mut [[std::arch::x86_64::__m512i; 2]; ROWS],
) {
    use std::arch::x86_64::*;
    let mut sums = [[_mm512_setzero_si512(); 2]; R];
    for w in 0..words {
        // SAFETY: word `w` of the panel is PANEL channels; word `w` of each
        // of the R rows is in bounds (see `rows`).
        unsafe {
            let w0 = _mm512_loadu_si512(panel.add(w * PANEL).cast());
            let w1 = _mm512_loadu_si512(panel.add(w * PANEL + 16).cast());
            for (i, s) in sums.iter_mut().enumerate() {
                let xb = _mm512_set1_epi32(x.add(i * x_words + w).read_unaligned());
                s[0] = _mm512_dpbusd_epi32(s[0], xb, w0);
                s[1] = _mm512_dpbusd_epi32(s[1], xb, w1);
            }
        }
    }
    acc[..R].copy_from_slice(&sums);
}

#[cfg(test)]
mod tests {
    use super::super::{dot_portable, Kernel, Product};
    use super::*;

    #[test]
    fn panels_equal_the_portable_dot_products() {
        if !(std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw"))
        {
            return;
        }
        let mut state = 11u32;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((state >> 16) % 255) as i32 - 127
        };
        for (m, n, words) in [(4, 1, 1), (9, 33, 16), (17, 70, 3), (8, 32, 40)] {
            let row = words * 4;
            let xq: Vec<i8> = (0..m * row).map(|_| next() as i8).collect();
            let wq: Vec<i8> = (0..n * row).map(|_| next() as i8).collect();
            let w_words: Vec<i32> = wq
                .chunks(4)
                .map(|b| i32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]))
                .collect();
            let flipped: Vec<i8> = xq.iter().map(|&q| q ^ i8::MIN).collect();
            let (x_scale, w_scale) = (vec![1.0; m], vec![1.0; n]);
            let product = Product {
                xq: &flipped,
                wq: &wq,
                row,
                m,
                x_scale: &x_scale,
                w_scale: &w_scale,
                bias: None,
                kernel: Kernel::Vnni,
            };
            let panels = Panels::new(&w_words, n, words);
            let mut out = vec![0.0; m * n];
            // SAFETY: the features were just detected.
            unsafe { rows(&product, &panels, n, 0..m, &mut out) };
            for r in 0..m {
                for c in 0..n {
                    let want =
                        dot_portable(&xq[r * row..(r + 1) * row], &wq[c * row..(c + 1) * row]);
                    assert_eq!(out[r * n + c], want as f32, "{m}x{n}x{row} at {r},{c}");
                }
            }
        }
    }
}
