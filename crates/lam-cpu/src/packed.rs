//! Products by a right operand packed once and used many times: a
//! recurrent layer multiplies by the same `[K, N]` weight at every time
//! step, a few rows at a time (`[32, 256] × [256, 1024]` for an LSTM of
//! hidden size 256 and batch 32). `gemm` re-packs that 1 MiB weight on
//! every call, which for so few rows costs as much as the arithmetic;
//! [`Packed`] does it once per sequence.
//!
//! The packed layout is column groups of [`GROUP`] columns (zero-padded at
//! the right edge), each group stored `k`-major: `GROUP` consecutive floats
//! per row of the weight, so that the kernel streams one group with
//! unit-stride loads. The kernel keeps a tile of up to [`TILE_ROWS`] rows ×
//! `GROUP` columns of sums in registers: with AVX-512, 6 × 4 accumulators
//! of 16 lanes, 4 loads of the weight and 6 broadcasts per 24 fused
//! multiply-adds. Without AVX-512 the same loop in plain arithmetic
//! (vectorised for the widest vectors there are).

use lam_core::{Error, Layout, Result};

/// Columns per packed group.
pub(crate) const GROUP: usize = 64;

/// Rows per register tile.
const TILE_ROWS: usize = 6;

/// A `[K, N]` right operand in the packed layout.
pub(crate) struct Packed {
    k: usize,
    n: usize,
    /// `n.div_ceil(GROUP)` groups of `k * GROUP` floats.
    data: Vec<f32>,
}

impl Packed {
    /// Packs the rank-2 view `layout` of `src` (any strides), checking that
    /// every element it names lies in `src`. Groups are packed in parallel
    /// when the weight is big enough; a row-major view is copied a group row
    /// at a time and a column-major one (a transposed weight) by blocked
    /// transposes, both a few times faster than element by element, which
    /// cost a recurrent layer as much as three of its steps.
    pub(crate) fn new(op: &'static str, src: &[f32], layout: &Layout) -> Result<Packed> {
        Packed::stacked(op, &[(src, layout)])
    }

    /// Packs the views `parts` (`[K_i, N]` each, any strides) stacked
    /// along `K` into one `[ΣK_i, N]` operand, as [`Packed::new`] packs one:
    /// an LSTM step multiplies `[x | h]` by `[W_ihᵀ; W_hhᵀ]`.
    pub(crate) fn stacked(op: &'static str, parts: &[(&[f32], &Layout)]) -> Result<Packed> {
        let n = parts
            .first()
            .map_or(0, |p| p.1.shape.get(1).copied().unwrap_or(0));
        Packed::stacked_columns(op, parts, &[(0, n)])
    }

    /// [`Packed::stacked`] of the column ranges `columns` (`(start, width)`)
    /// only, side by side in that order: the product's column `j` is then
    /// the `j`-th listed column. Every range but the last is a whole number
    /// of [`GROUP`]s wide, so that no padding falls between them: an LSTM
    /// step split by hidden units multiplies each task's units' four gate
    /// columns.
    pub(crate) fn stacked_columns(
        op: &'static str,
        parts: &[(&[f32], &Layout)],
        columns: &[(usize, usize)],
    ) -> Result<Packed> {
        let mut sizes = Vec::with_capacity(parts.len());
        for (src, layout) in parts {
            let (k, n) = match layout.shape[..] {
                [k, n] => (k, n),
                _ => return Err(Error::shape(op, "a [K, N] weight", &layout.shape)),
            };
            let (rs, cs) = (layout.strides[0], layout.strides[1]);
            // Strides are not negative: the last element is the furthest.
            if k * n > 0 && layout.offset + (k - 1) * rs + (n - 1) * cs >= src.len() {
                return Err(Error::shape(op, "a view inside its buffer", &layout.shape));
            }
            sizes.push((k, n));
        }
        let n = sizes.first().map_or(0, |s| s.1);
        if let Some(&(_, other)) = sizes.iter().find(|s| s.1 != n) {
            let why = format!("stacked weights of {n} columns");
            return Err(Error::shape(op, why, &[other]));
        }
        let k: usize = sizes.iter().map(|s| s.0).sum();
        // Each packed group's first source column and width.
        let mut groups = Vec::new();
        for (i, &(start, width)) in columns.iter().enumerate() {
            let inside = start.checked_add(width).is_some_and(|end| end <= n);
            if !inside || (i + 1 < columns.len() && !width.is_multiple_of(GROUP)) {
                let why = format!(
                    "columns {start}..{} of {n}, whole groups but the last",
                    start.saturating_add(width)
                );
                return Err(Error::shape(op, why, &[start, width]));
            }
            groups.extend(
                (0..width)
                    .step_by(GROUP)
                    .map(|c| (start + c, GROUP.min(width - c))),
            );
        }
        let n: usize = columns.iter().map(|c| c.1).sum();
        let mut data = crate::pool::take(groups.len() * k * GROUP)?;
        if k * n > 0 {
            crate::parallel::for_chunks(&mut data, k * GROUP, k * n, |start, group| {
                let (c0, width) = groups[start / (k * GROUP)];
                if width < GROUP {
                    group.fill(0.0); // The padding columns.
                }
                let mut rows = &mut group[..];
                for (&(src, layout), &(k_part, _)) in parts.iter().zip(&sizes) {
                    let (part, rest) = rows.split_at_mut(k_part * GROUP);
                    pack_rows(src, layout, c0, width, part);
                    rows = rest;
                }
            });
        }
        Ok(Packed { k, n, data })
    }

    /// `out[r, :] = a[r, :] × B` for the `m = out.len() / ldo` rows, `a`
    /// row-major with row stride `lda` (`K` used of each row), `out`
    /// row-major with row stride `ldo >= N`.
    pub(crate) fn multiply(&self, a: &[f32], lda: usize, out: &mut [f32], ldo: usize) {
        let m = out.len() / ldo;
        assert!(lda >= self.k && ldo >= self.n, "packed product strides");
        assert!(
            m == 0 || a.len() >= (m - 1) * lda + self.k,
            "packed product rows"
        );
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F, checked just above.
            return unsafe { self.multiply_avx512(a, lda, out, ldo, m) };
        }
        crate::elementwise::vectorised(
            #[inline(always)]
            || self.multiply_with(a, lda, out, ldo, m, tile_portable),
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn multiply_avx512(&self, a: &[f32], lda: usize, out: &mut [f32], ldo: usize, m: usize) {
        self.multiply_with(a, lda, out, ldo, m, |rows, a, lda, b, k, tile| {
            avx512::tile(rows, a, lda, b, k, tile)
        });
    }

    /// The loop over column groups and row tiles around `tile_fn`, which
    /// fills `tile[r][..]` with row `r`'s sums for one group.
    #[inline(always)]
    fn multiply_with(
        &self,
        a: &[f32],
        lda: usize,
        out: &mut [f32],
        ldo: usize,
        m: usize,
        tile_fn: impl Fn(usize, &[f32], usize, &[f32], usize, &mut [[f32; GROUP]; TILE_ROWS]),
    ) {
        let k = self.k;
        if k == 0 {
            for row in out.chunks_mut(ldo) {
                row[..self.n].fill(0.0);
            }
            return;
        }
        let mut tile = [[0.0f32; GROUP]; TILE_ROWS];
        for (g, b) in self.data.chunks(k * GROUP).enumerate() {
            let c0 = g * GROUP;
            let width = GROUP.min(self.n - c0);
            for r0 in (0..m).step_by(TILE_ROWS) {
                let rows = TILE_ROWS.min(m - r0);
                tile_fn(rows, &a[r0 * lda..], lda, b, k, &mut tile);
                for (r, sums) in tile.iter().take(rows).enumerate() {
                    let at = (r0 + r) * ldo + c0;
                    out[at..at + width].copy_from_slice(&sums[..width]);
                }
            }
        }
    }
}

impl Drop for Packed {
    /// The packed weight goes back to the pool: a fresh one per sequence
    /// would fault in its pages every time.
    fn drop(&mut self) {
        crate::pool::give(std::mem::take(&mut self.data));
    }
}

/// Columns `c0..c0 + width` of the `[K, N]` view `layout` of `src` into
/// `group` (`K` rows of [`GROUP`] floats, the columns past `width` left
/// alone).
fn pack_rows(src: &[f32], layout: &Layout, c0: usize, width: usize, group: &mut [f32]) {
    let (k, n) = (layout.shape[0], layout.shape[1]);
    let (rs, cs) = (layout.strides[0], layout.strides[1]);
    let at = |q: usize, c: usize| layout.offset + q * rs + c * cs;
    if cs == 1 || n == 1 {
        for (q, row) in group.chunks_exact_mut(GROUP).enumerate() {
            row[..width].copy_from_slice(&src[at(q, c0)..at(q, c0) + width]);
        }
    } else if rs == 1 && width == GROUP {
        // Column `c` of the view is `k` consecutive floats, so a whole
        // group is the transpose of `GROUP` such runs `cs` apart, which
        // the vector transpose moves in squares. Packing both layers of
        // the `lstm` benchmark's model for one sequence took 0.7 ms (16%
        // of its forward pass on one thread) where the loop below took
        // 1.5 ms (29%).
        let n = (width - 1) * cs + k;
        crate::transpose::transpose_rows_into(&src[at(0, c0)..at(0, c0) + n], width, k, cs, group);
    } else if rs == 1 || k == 1 {
        // Column `c` of the view is `k` consecutive floats: block by block,
        // each read row stays in cache while its floats are written to
        // `TRANSPOSE` group rows.
        const TRANSPOSE: usize = 16;
        for q0 in (0..k).step_by(TRANSPOSE) {
            let q1 = (q0 + TRANSPOSE).min(k);
            for j in 0..width {
                let col = &src[at(q0, c0 + j)..at(q0, c0 + j) + (q1 - q0)];
                for (q, &v) in (q0..q1).zip(col) {
                    group[q * GROUP + j] = v;
                }
            }
        }
    } else {
        for (q, row) in group.chunks_exact_mut(GROUP).enumerate() {
            for (j, slot) in row[..width].iter_mut().enumerate() {
                *slot = src[at(q, c0 + j)];
            }
        }
    }
}

/// The tile in plain arithmetic: `tile[r][c] = Σ_q a[r·lda + q] b[q·GROUP + c]`
/// for `r < rows`.
#[inline(always)]
fn tile_portable(
    rows: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    k: usize,
    tile: &mut [[f32; GROUP]; TILE_ROWS],
) {
    for (r, sums) in tile.iter_mut().take(rows).enumerate() {
        *sums = [0.0; GROUP];
        let a_row = &a[r * lda..r * lda + k];
        for (&av, b_row) in a_row.iter().zip(b.chunks_exact(GROUP)) {
            for (s, &bv) in sums.iter_mut().zip(b_row) {
                *s += av * bv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{GROUP, TILE_ROWS};

    /// [`super::tile_portable`] with the sums in registers: `rows` picks
    /// the instance compiled for that many rows, so that each keeps its
    /// `rows × 4` accumulators in registers.
    #[target_feature(enable = "avx512f")]
    pub(super) fn tile(
        rows: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        k: usize,
        tile: &mut [[f32; GROUP]; TILE_ROWS],
    ) {
        assert!(b.len() >= k * GROUP && rows <= TILE_ROWS);
        assert!(rows == 0 || a.len() >= (rows - 1) * lda + k);
        // SAFETY: the bounds of every access are checked just above.
        unsafe {
            match rows {
                1 => rows_tile::<1>(a, lda, b, k, tile),
                2 => rows_tile::<2>(a, lda, b, k, tile),
                3 => rows_tile::<3>(a, lda, b, k, tile),
                4 => rows_tile::<4>(a, lda, b, k, tile),
                5 => rows_tile::<5>(a, lda, b, k, tile),
                6 => rows_tile::<6>(a, lda, b, k, tile),
                _ => {}
            }
        }
    }

    /// # Safety
    /// `a` holds `R` rows of `k` at stride `lda`, `b` holds `k * GROUP`.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_tile<const R: usize>(
        a: &[f32],
        lda: usize,
        b: &[f32],
        k: usize,
        tile: &mut [[f32; GROUP]; TILE_ROWS],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        for q in 0..k {
            // SAFETY: q < k, so the loads stay inside `b` and the rows of `a`.
            unsafe {
                let bq = bp.add(q * GROUP);
                let w = [
                    _mm512_loadu_ps(bq),
                    _mm512_loadu_ps(bq.add(16)),
                    _mm512_loadu_ps(bq.add(32)),
                    _mm512_loadu_ps(bq.add(48)),
                ];
                for (r, sums) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*ap.add(r * lda + q));
                    for (s, wv) in sums.iter_mut().zip(w) {
                        *s = _mm512_fmadd_ps(av, wv, *s);
                    }
                }
            }
        }
        for (sums, row) in acc.iter().zip(tile.iter_mut()) {
            for (j, s) in sums.iter().enumerate() {
                // SAFETY: 16 floats at 16·j < GROUP inside the row.
                unsafe { _mm512_storeu_ps(row.as_mut_ptr().add(16 * j), *s) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::values;

    /// The product in f64 by the definition, through the view.
    fn reference(a: &[f32], m: usize, k: usize, b: &[f32], l: &Layout) -> Vec<f64> {
        let n = l.shape[1];
        let at = |q: usize, c: usize| l.offset + q * l.strides[0] + c * l.strides[1];
        let mut out = vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = (0..k)
                    .map(|q| f64::from(a[r * k + q]) * f64::from(b[at(q, c)]))
                    .sum();
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_odd_sizes_and_views() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 5, 3),
            (13, 33, 65),
            (6, 17, 128),
            (32, 40, 130),
            // Big enough to be packed in parallel.
            (3, 96, 400),
        ] {
            let a = values(m * k, 1);
            // The weight read transposed from a wider buffer at an offset
            // (a recurrent layer's `Wᵀ`), row by row with a row stride past
            // its width, and through strides of neither kind.
            for (stored, l) in [
                (
                    values(n * (k + 3) + 2, 2),
                    Layout {
                        shape: vec![k, n],
                        strides: vec![1, k + 3],
                        offset: 2,
                    },
                ),
                (
                    values(k * (n + 2) + 1, 3),
                    Layout {
                        shape: vec![k, n],
                        strides: vec![n + 2, 1],
                        offset: 1,
                    },
                ),
                (
                    values(2 * k * n + n, 4),
                    Layout {
                        shape: vec![k, n],
                        strides: vec![2, 2 * k + 1],
                        offset: 0,
                    },
                ),
            ] {
                check_view(&a, (m, k, n), &stored, &l);
            }
        }
    }

    /// The packed product of `a` `[m, k]` by the view `l` of `stored`
    /// against [`reference`], and its portable tile against the AVX-512 one.
    fn check_view(a: &[f32], (m, k, n): (usize, usize, usize), stored: &[f32], l: &Layout) {
        let want = reference(a, m, k, stored, l);
        let packed = Packed::new("test", stored, l).unwrap();
        let ldo = n + 1;
        let mut out = vec![f32::NAN; m * ldo];
        packed.multiply(a, k, &mut out, ldo);
        for r in 0..m {
            for c in 0..n {
                let (got, w) = (out[r * ldo + c], want[r * n + c]);
                assert!(
                    (f64::from(got) - w).abs() < 1e-5 * (1.0 + w.abs()),
                    "{m}x{k}x{n} [{r}, {c}]"
                );
            }
            assert!(out[r * ldo + n].is_nan(), "padding column written");
        }
        let mut portable = vec![0.0; m * ldo];
        packed.multiply_with(a, k, &mut portable, ldo, m, tile_portable);
        for (p, o) in portable.iter().zip(&out) {
            assert!((p - o).abs() <= 1e-5 * (1.0 + o.abs()) || o.is_nan());
        }
    }

    #[test]
    fn stacked_views_multiply_as_their_concatenation() {
        for &(m, k1, k2, n) in &[
            (5, 3, 7, 70),
            (6, 32, 17, 64),
            (2, 0, 4, 9),
            (3, 96, 40, 400),
        ] {
            // `[k1, n]` read transposed from `[n, k1]`, `[k2, n]` row-major
            // at an offset.
            let (top, bottom) = (values(n * k1, 5), values(k2 * n + 2, 6));
            let top_l = Layout::contiguous(&[n, k1]).permute(&[1, 0]).unwrap();
            let bottom_l = Layout {
                offset: 2,
                ..Layout::contiguous(&[k2, n])
            };
            let packed = Packed::stacked("test", &[(&top, &top_l), (&bottom, &bottom_l)]).unwrap();
            let k = k1 + k2;
            let mut whole = Vec::with_capacity(k * n);
            for q in 0..k1 {
                whole.extend((0..n).map(|c| top[c * k1 + q]));
            }
            whole.extend_from_slice(&bottom[2..]);
            let a = values(m * k, 7);
            let want = reference(&a, m, k, &whole, &Layout::contiguous(&[k, n]));
            let mut out = vec![0.0; m * n];
            packed.multiply(&a, k, &mut out, n);
            for (got, w) in out.iter().zip(&want) {
                assert!(
                    (f64::from(*got) - w).abs() < 1e-5 * (1.0 + w.abs()),
                    "{m}x{k}x{n}"
                );
            }
        }
        let (a, b) = (values(6, 1), values(8, 2));
        let (la, lb) = (Layout::contiguous(&[2, 3]), Layout::contiguous(&[2, 4]));
        assert!(Packed::stacked("test", &[(&a, &la), (&b, &lb)]).is_err());
    }

    #[test]
    fn column_ranges_multiply_as_the_columns_they_pick() {
        let (m, k, n) = (7, 40, 300);
        let (b, a) = (values(k * n, 8), values(m * k, 9));
        let lb = Layout::contiguous(&[k, n]);
        let full = reference(&a, m, k, &b, &lb);
        let columns = [(64, 64), (200, 64), (10, 37)];
        let packed = Packed::stacked_columns("test", &[(&b, &lb)], &columns).unwrap();
        let width = 64 + 64 + 37;
        let mut out = vec![0.0; m * width];
        packed.multiply(&a, k, &mut out, width);
        let picked: Vec<usize> = columns.iter().flat_map(|&(s, w)| s..s + w).collect();
        for r in 0..m {
            for (j, &c) in picked.iter().enumerate() {
                let (got, want) = (f64::from(out[r * width + j]), full[r * n + c]);
                assert!(
                    (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "row {r} column {c}"
                );
            }
        }
        // A range short of whole groups before another, past the end, or
        // overflowing.
        for bad in [&[(0, 30), (64, 64)][..], &[(290, 20)], &[(usize::MAX, 2)]] {
            assert!(Packed::stacked_columns("test", &[(&b, &lb)], bad).is_err());
        }
    }

    #[test]
    fn views_outside_their_buffer_are_errors() {
        let l = Layout::contiguous(&[4, 4]);
        assert!(Packed::new("test", &[0.0; 15], &l).is_err());
        assert!(Packed::new("test", &[0.0; 16], &Layout::contiguous(&[16])).is_err());
        let empty = Packed::new("test", &[], &Layout::contiguous(&[0, 3])).unwrap();
        let mut out = vec![1.0; 6];
        empty.multiply(&[], 0, &mut out, 3);
        assert_eq!(out, vec![0.0; 6]);
    }
}
