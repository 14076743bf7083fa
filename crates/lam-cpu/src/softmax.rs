//! Softmax and log-softmax over the last dim of a `[rows, cols]` view, fused
//! (Backend `fused_softmax`): each row's max, its exponentials written once
//! (vectorised, see [`exp_shifted`]) and summed in `f64`, then the
//! normalised row, following lam-core's composite step by step so the two
//! agree to a tight tolerance.

use lam_core::backend::View;
use lam_core::{Layout, Result};

use crate::elementwise::map_chunk;
use crate::math::exp;
use crate::parallel::for_chunks;
use crate::runs;
use crate::storage::ReadLocks;
use crate::strided::gather;

/// `[rows, cols] -> [rows, cols]`: softmax (or log-softmax) of each row,
/// `cols` being the view's last dim.
pub(crate) fn softmax(src: View, log: bool) -> Result<Vec<f32>> {
    let locks = ReadLocks::new("softmax", &[src.0])?;
    let x = gather(locks.f32(0, src.1)?, src.1)?;
    let cols = last_dim(src.1);
    let mut out = crate::pool::take(x.len())?;
    for_chunks(&mut out, cols, x.len(), |start, row| {
        let x = &x[start..start + cols];
        // The exponentials are written once into the output row, then
        // divided by their sum (or replaced by the log-softmax).
        let max = row_max(x);
        exp_shifted(row, x, max);
        let sum = row_sum(row);
        if log {
            let log_sum = sum.ln();
            for (o, &v) in row.iter_mut().zip(x) {
                *o = v - max - log_sum;
            }
        } else {
            for o in row.iter_mut() {
                *o /= sum;
            }
        }
    });
    Ok(out)
}

/// The length of the last dim (1 for a scalar).
pub(crate) fn last_dim(layout: &Layout) -> usize {
    layout.shape.last().copied().unwrap_or(1)
}

/// The largest element of a row (`-∞` when empty), in vector lanes
/// ([`runs::max`]); NaN if any element is, which makes the whole row NaN,
/// as a NaN's own exponential does through the sum.
pub(crate) fn row_max(row: &[f32]) -> f32 {
    runs::max(row, f32::NEG_INFINITY)
}

/// The sum of a row's exponentials, in `f64` vector lanes ([`runs::sum`]):
/// one chain of dependent additions took longer than the exponentials.
pub(crate) fn row_sum(row: &[f32]) -> f32 {
    runs::sum(row) as f32
}

/// `out[j] = exp(row[j] - max)`, the difference taken in `f32` and the
/// exponential in `f64` ([`crate::math::exp`], rounded once), in the
/// widest vectors the processor has: several times faster than libm's
/// scalar `expf`, which bounds softmax and cross-entropy.
pub(crate) fn exp_shifted(out: &mut [f32], row: &[f32], max: f32) {
    map_chunk(
        out,
        row,
        #[inline(always)]
        |v: f32| exp((v - max) as f64) as f32,
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use lam_core::Backend;

    use crate::test_util::*;

    /// Softmax of one row by the textbook formula, in f64.
    pub(crate) fn softmax_row(row: &[f32]) -> Vec<f64> {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    }

    #[test]
    fn softmax_and_log_softmax_match_the_formula() {
        let b = backend();
        let (rows, cols) = (37, 129);
        let mut xs = values(rows * cols, 5);
        xs.iter_mut().for_each(|x| *x *= 30.0); // Large logits test the max shift.
        let (s, l) = f32s(&xs, &[rows, cols]);
        let sm = read(
            &b.fused_softmax((&s, &l), false).unwrap().unwrap(),
            &[rows * cols],
        );
        let lsm = read(
            &b.fused_softmax((&s, &l), true).unwrap().unwrap(),
            &[rows * cols],
        );
        for r in 0..rows {
            let want = softmax_row(&xs[r * cols..(r + 1) * cols]);
            let w32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            let wlog: Vec<f32> = want.iter().map(|&v| v.ln() as f32).collect();
            assert_close(&sm[r * cols..(r + 1) * cols], &w32, 1e-6);
            assert_close(&lsm[r * cols..(r + 1) * cols], &wlog, 1e-5);
        }
        // A transposed view is softmaxed along its own last dim.
        let (s, l) = f32s(&[1., 3., 2., 4.], &[2, 2]);
        let t = l.permute(&[1, 0]).unwrap();
        let r = read(&b.fused_softmax((&s, &t), false).unwrap().unwrap(), &[4]);
        let want = softmax_row(&[1., 2.]);
        assert_close(
            &r,
            &[
                want[0] as f32,
                want[1] as f32,
                want[0] as f32,
                want[1] as f32,
            ],
            1e-6,
        );
    }
}
