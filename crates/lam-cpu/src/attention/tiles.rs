//! The tile products of the fused attention: strided matrices inside a
//! slice ([`Mat`]) and one gemm call per product, checked to stay inside
//! its operands.

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

/// `dst [m, n] (+)= beta · a [m, k] × b [k, n]`, `dst` row-major with row
/// stride `n`; adds onto `dst` when `accumulate`, else overwrites it.
pub(super) fn product(
    dst: &mut [f32],
    a: Mat<'_>,
    b: Mat<'_>,
    (m, n, k): (usize, usize, usize),
    beta: f32,
    accumulate: bool,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if dst.len() < m * n || !a.holds(m, k) || !b.holds(k, n) {
        return Err(Error::invalid(OP, "a tile product outside its operands"));
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
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
