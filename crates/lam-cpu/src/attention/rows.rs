//! The online softmax over one score row of a tile, and the row loops it
//! is made of (maximum, exponentials and their sum), in lanes of an AVX-512
//! register.

use crate::math::exp_f32 as exp;

/// Lanes of the row loops' partial maxima and sums: an AVX-512 register.
const LANES: usize = 16;

/// One step of the online softmax on a score row of a tile: `row` becomes
/// `exp(row - m')` over its first `visible` keys and 0 beyond, where `m'`
/// is the running maximum `max` updated with the row's; the running sum
/// `sum` is rescaled to `m'` and grows by the row's exponentials. Returns
/// the factor `exp(m - m')` the row's output so far must be scaled by.
/// A row with nothing but `-∞` so far stays at `m = -∞`, `sum = 0`.
///
/// The keys past `visible` must hold `-∞` (as `scores` leaves a causal
/// tile's hidden keys): the loops run on whole vectors past `visible` (see
/// [`whole_vectors`]), where those keys' exponentials are exactly 0.
#[inline(always)]
pub(super) fn online_softmax_row(
    row: &mut [f32],
    visible: usize,
    max: &mut f32,
    sum: &mut f32,
) -> f32 {
    let (seen, hidden) = row.split_at_mut(whole_vectors(visible, row.len()));
    hidden.fill(0.0);
    let new_max = nan_max(*max, row_max(seen));
    if new_max == f32::NEG_INFINITY {
        // Every key so far masked: nothing to add yet.
        seen.fill(0.0);
        return 1.0;
    }
    let rescale = exp(*max - new_max);
    let row_sum = exp_and_sum(seen, new_max);
    *sum = *sum * rescale + row_sum;
    *max = new_max;
    rescale
}

/// A score row of a tile made its attention weights `exp(row - shift) /
/// sum` over its first `visible` keys, 0 beyond (and everywhere for a row
/// whose keys are all masked, kept as `sum = 0`). The keys past `visible`
/// must hold `-∞`, as for [`online_softmax_row`].
#[inline(always)]
pub(super) fn weights_row(row: &mut [f32], visible: usize, shift: f32, sum: f32) {
    let (seen, hidden) = row.split_at_mut(whole_vectors(visible, row.len()));
    hidden.fill(0.0);
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    seen.iter_mut().for_each(|x| *x = exp(*x - shift) * inv);
}

/// `Σ a[i] · b[i]` over two rows of one length, in [`LANES`] partial sums
/// (one chain of dependent additions waited on each one).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for (s, (x, y)) in lanes.iter_mut().zip(xa.iter().zip(xb)) {
            *s += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `visible` rounded up to whole [`LANES`], within `len`: a causal row's
/// visible keys end anywhere, and the scalar loop over a partial vector's
/// keys took longer than the vectors before it (exponentials one at a
/// time); the keys between `visible` and this are `-∞`, whose
/// exponentials are exactly 0 and which never raise a maximum.
#[inline(always)]
fn whole_vectors(visible: usize, len: usize) -> usize {
    visible.next_multiple_of(LANES).min(len)
}

/// The larger of two values, NaN if either is.
#[inline(always)]
fn nan_max(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// The maximum of a row (`-∞` when empty), NaN if any element is: kept in
/// [`LANES`] partial maxima so that the loop vectorises.
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = nan_max(*m, x);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| nan_max(m, x));
    lanes.iter().fold(tail, |m, &x| nan_max(m, x))
}

/// `row` becomes `exp(row - shift)`; returns its sum, kept in [`LANES`]
/// partial sums so that the loop vectorises.
#[inline(always)]
fn exp_and_sum(row: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, x) in lanes.iter_mut().zip(chunk) {
            *x = exp(*x - shift);
            *s += *x;
        }
    }
    let mut tail = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        tail += *x;
    }
    lanes.iter().sum::<f32>() + tail
}
