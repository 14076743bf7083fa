//! The tile products of the fused attention: strided matrices inside a
//! slice ([`Mat`]) and one product per call, checked to stay inside its
//! operands — lam's register tiles (`small.rs`) where the processor has
//! AVX-512, else one gemm call.

use gemm::{gemm, Parallelism};
use lam_core::{Error, Result};

use super::OP;

/// Rows `first..first + count` of a row-major matrix of `width` columns.
#[inline]
pub(super) fn rows_of(t: &[f32], first: usize, count: usize, width: usize) -> &[f32] {
    &t[first * width..(first + count) * width]
}

/// A matrix inside a slice: element `(i, j)` at `i · row + j · col`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) row: usize,
    pub(super) col: usize,
}

impl Mat<'_> {
    /// True when every element of an `rows × cols` matrix lies in the slice.
    #[inline]
    pub(super) fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row + (cols - 1) * self.col < self.data.len()
    }
}

/// Which part of a tile product a causal attention needs, for row `i` of
/// the product (`d` is the query block's first position minus the key
/// tile's, so key `j` is visible from query `i` when `j <= i + d`). The
/// parts left out are hidden keys: scores that are masked anyway, or terms
/// whose attention weight (or its gradient) is 0.
#[derive(Debug, Clone, Copy)]
pub(super) enum Band {
    /// Every column and term.
    Full,
    /// Row `i` (a query) needs columns (keys) `j <= i + d` only.
    Cols(isize),
    /// Row `i` (a query) sums terms (keys) `p <= i + d` only.
    TermsUpTo(isize),
    /// Row `i` (a key) sums terms (queries) `p >= i - d` only.
    TermsFrom(isize),
}

impl Band {
    /// For rows `i0..i0 + rows` of an `[m, n]` product over `k` terms: the
    /// columns `0..cols` and the terms any of those rows needs (a block
    /// shares them; the extra entries are hidden ones, multiplied by 0 or
    /// masked afterwards).
    pub(super) fn limits(
        self,
        i0: usize,
        rows: usize,
        (n, k): (usize, usize),
    ) -> (usize, std::ops::Range<usize>) {
        let clamp = |x: isize, hi: usize| x.clamp(0, hi as isize) as usize;
        let last = (i0 + rows) as isize - 1;
        match self {
            Band::Full => (n, 0..k),
            Band::Cols(d) => (clamp(last + d + 1, n), 0..k),
            Band::TermsUpTo(d) => (n, 0..clamp(last + d + 1, k)),
            Band::TermsFrom(d) => (n, clamp(i0 as isize - d, k)..k),
        }
    }
}

/// `dst [m, n] (+)= beta · a [m, k] × b [k, n]`, `dst` row-major with row
/// stride `n`; adds onto `dst` when `accumulate`, else overwrites it. With
/// AVX-512 only the part `band` leaves is computed (columns it drops are
/// not written); elsewhere the whole product is.
pub(super) fn product(
    dst: &mut [f32],
    a: Mat<'_>,
    b: Mat<'_>,
    (m, n, k): (usize, usize, usize),
    beta: f32,
    accumulate: bool,
    band: Band,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if dst.len() < m * n || !a.holds(m, k) || !b.holds(k, n) {
        return Err(Error::invalid(OP, "a tile product outside its operands"));
    }
    let _ = band; // Without AVX-512, the whole product.
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: checked above (`dst` holds m·n elements, `a` and `b` their
        // matrices), and the processor has AVX-512F.
        unsafe { super::small::product(dst, a, b, (m, n, k), beta, accumulate, band) };
        return Ok(());
    }
    // SAFETY: checked above: `dst` holds m·n elements written with row
    // stride n and column stride 1; every (i, p) < (m, k) of `a` and
    // (p, j) < (k, n) of `b` is inside its slice. Strides are below the
    // slices' lengths (or unused), so fit in isize. gemm computes
    // dst = alpha · dst + beta · a × b, reading dst only when `accumulate`.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col as isize,
            a.row as isize,
            b.data.as_ptr(),
            b.col as isize,
            b.row as isize,
            1.0,
            beta,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
    Ok(())
}
