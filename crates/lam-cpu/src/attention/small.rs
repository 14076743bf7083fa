//! The attention's tile products with AVX-512 register tiles of lam's own.
//!
//! A tile product is small — `[64, 32] × [32, 64]` for 64 queries of a
//! 32-feature head — and there are six per query block and head in a
//! training step. Through `gemm` each paid its packing and dispatch:
//! half of the attention's time on 2 cores for `gpt`'s heads went there.
//! Here a tile of up to 4 rows × 64 columns of sums stays in registers
//! (16 accumulators) while the right operand's rows stream from L1 and the
//! left operand's elements are broadcast, so any strides suit the left
//! operand; a column-major right operand (`Kᵀ`, `Vᵀ`) is first copied
//! row-major, a `k × n` copy against `m · n · k` multiply-adds.
//!
//! Sums run over `k` in order, one fused multiply-add per term, then are
//! scaled and added onto `dst`: a different rounding from gemm's, within
//! the attention's tolerances everywhere (NaN and infinities propagate as
//! in any sum).

use std::arch::x86_64::*;

use super::tiles::{Band, Mat};

/// Rows per register tile.
const ROWS: usize = 4;
/// Lanes per vector.
const LANES: usize = 16;
/// Vectors per register tile row: 64 columns.
const VECTORS: usize = 4;

/// `dst [m, n] (+)= beta · a [m, k] × b [k, n]` (`dst` row-major, row
/// stride `n`), `b` with any strides, over the columns and terms `band`
/// leaves each block of rows (see [`Band`]; columns it drops are not
/// written). The caller has checked that every element named lies in its
/// slice (`Mat::holds`, `dst.len() >= m · n`) and that the processor has
/// AVX-512F.
///
/// # Safety
/// The processor has AVX-512F; `dst` holds `m · n` elements, `a` an
/// `m × k` and `b` a `k × n` matrix at their strides.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn product(
    dst: &mut [f32],
    a: Mat<'_>,
    b: Mat<'_>,
    (m, n, k): (usize, usize, usize),
    beta: f32,
    accumulate: bool,
    band: Band,
) {
    // A row-major right operand is read in place; any other is copied so.
    let copy;
    let (b_data, ldb) = if b.col == 1 {
        (b.data, b.row)
    } else {
        let mut t = vec![0.0f32; k * n];
        if b.row == 1 {
            // Column `j` of `b` is `k` consecutive floats (a key's features):
            // `b` is the rows of an `[n, k]` matrix, transposed.
            let mut rows = Vec::new();
            let src = if b.col == k {
                &b.data[..n * k]
            } else {
                rows.reserve_exact(n * k);
                for j in 0..n {
                    rows.extend_from_slice(&b.data[j * b.col..j * b.col + k]);
                }
                &rows[..]
            };
            crate::transpose::transpose_into(src, n, k, &mut t);
        } else {
            for (p, row) in t.chunks_exact_mut(n.max(1)).enumerate().take(k) {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = b.data[p * b.row + j * b.col];
                }
            }
        }
        copy = t;
        (&copy[..], n)
    };
    let beta = _mm512_set1_ps(beta);
    for c0 in (0..n).step_by(LANES * VECTORS) {
        let width = (n - c0).min(LANES * VECTORS);
        for i0 in (0..m).step_by(ROWS) {
            let rows = (m - i0).min(ROWS);
            let (cols, terms) = band.limits(i0, rows, (n, k));
            let width = width.min(cols.saturating_sub(c0));
            if width == 0 {
                continue;
            }
            let vectors = width.div_ceil(LANES);
            let masks: [__mmask16; VECTORS] = std::array::from_fn(|v| {
                let lanes = width.saturating_sub(v * LANES).min(LANES);
                ((1u32 << lanes) - 1) as __mmask16
            });
            let tile = Tile {
                dst: dst.as_mut_ptr().wrapping_add(i0 * n + c0),
                ldd: n,
                a: a.data
                    .as_ptr()
                    .wrapping_add(i0 * a.row + terms.start * a.col),
                a_row: a.row,
                a_col: a.col,
                b: b_data.as_ptr().wrapping_add(terms.start * ldb + c0),
                ldb,
                k: terms.len(),
                masks,
                beta,
                accumulate,
            };
            // SAFETY: rows i0..i0 + rows of `a` and columns c0..c0 + width
            // of `b` and `dst` are inside their slices (the caller's
            // contract); the masks keep every lane past `width`.
            unsafe {
                match (rows, vectors) {
                    (4, 4) => tile.run::<4, 4>(),
                    (4, 3) => tile.run::<4, 3>(),
                    (4, 2) => tile.run::<4, 2>(),
                    (4, 1) => tile.run::<4, 1>(),
                    (3, v) => tile.run_rows::<3>(v),
                    (2, v) => tile.run_rows::<2>(v),
                    (_, v) => tile.run_rows::<1>(v),
                }
            }
        }
    }
}

/// One register tile's operands: `R` rows of `a` from `a`, `V` vectors of
/// columns of `b` (row stride `ldb`) and `dst` (row stride `ldd`) from `b`
/// and `dst`.
struct Tile {
    dst: *mut f32,
    ldd: usize,
    a: *const f32,
    a_row: usize,
    a_col: usize,
    b: *const f32,
    ldb: usize,
    k: usize,
    masks: [__mmask16; VECTORS],
    beta: __m512,
    accumulate: bool,
}

impl Tile {
    /// [`Tile::run`] for `R` rows and `vectors` vectors.
    ///
    /// # Safety
    /// As [`Tile::run`].
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_rows<const R: usize>(&self, vectors: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            match vectors {
                4 => self.run::<R, 4>(),
                3 => self.run::<R, 3>(),
                2 => self.run::<R, 2>(),
                _ => self.run::<R, 1>(),
            }
        }
    }

    /// `dst (+)= beta · a × b` for the tile's `R × 16V` block.
    ///
    /// # Safety
    /// The tile's `R` rows of `a` (`k` elements each) and `k` rows of `b`
    /// and `R` rows of `dst` (the lanes its masks keep of `V` vectors) are
    /// readable (`dst` writable), and AVX-512F is there.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const R: usize, const V: usize>(&self) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for p in 0..self.k {
            let brow = self.b.wrapping_add(p * self.ldb);
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, b) in bv.iter_mut().enumerate() {
                // SAFETY: masked lanes are neither read nor faulted on.
                *b = unsafe { _mm512_maskz_loadu_ps(self.masks[v], brow.wrapping_add(v * LANES)) };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: element (r, p) of the tile's rows of `a`.
                let x = unsafe { *self.a.wrapping_add(r * self.a_row + p * self.a_col) };
                let x = _mm512_set1_ps(x);
                for (s, &b) in row.iter_mut().zip(&bv) {
                    *s = _mm512_fmadd_ps(x, b, *s);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, &s) in row.iter().enumerate() {
                let at = self.dst.wrapping_add(r * self.ldd + v * LANES);
                let mut x = _mm512_mul_ps(s, self.beta);
                // SAFETY: the lanes the mask keeps are inside `dst`.
                unsafe {
                    if self.accumulate {
                        x = _mm512_add_ps(_mm512_maskz_loadu_ps(self.masks[v], at), x);
                    }
                    _mm512_mask_storeu_ps(at, self.masks[v], x);
                }
            }
        }
    }
}
