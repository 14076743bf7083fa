//! Cross-entropy of logits against class indices, fused with its gradient
//! (Backend `fused_cross_entropy`): per-row losses
//! `logsumexp(row) - row[target]` and `(softmax - onehot) / rows`, from one
//! pass over each row. A target outside `0..cols` is an error.

use lam_core::backend::View;
use lam_core::{Error, Result};

use rayon::prelude::*;

use crate::parallel::{CHUNK, PAR_MIN_WORK};
use crate::softmax::{exp_shifted, last_dim, row_max, row_sum};
use crate::storage::ReadLocks;
use crate::strided::gather;

/// Logits `[rows, cols]` and `I32` targets `[rows]` to per-row losses
/// `[rows]` (`logsumexp(row) - row[target]`) and the gradient of their mean,
/// `(softmax - onehot) / rows`, `[rows, cols]`.
pub(crate) fn cross_entropy(logits: View, targets: View) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "cross_entropy";
    let locks = ReadLocks::new(OP, &[logits.0, targets.0])?;
    let x = gather(locks.f32(0, logits.1)?, logits.1)?;
    let cols = last_dim(logits.1);
    let rows: usize = logits.1.shape.iter().rev().skip(1).product();
    let targets = gather(locks.i32(1, targets.1)?, targets.1)?;
    if targets.len() != rows {
        return Err(Error::shape(
            OP,
            format!("[{rows}] targets"),
            &[targets.len()],
        ));
    }
    let targets = targets
        .iter()
        .map(|&t| match usize::try_from(t) {
            Ok(t) if t < cols => Ok(t),
            _ => Err(Error::OutOfRange {
                op: OP,
                index: t as i64,
                size: cols,
            }),
        })
        .collect::<Result<Vec<usize>>>()?;
    // Per row: the exponentials exp(x - max) straight into the gradient's
    // row, their sum, then the gradient (softmax - onehot) / rows; the
    // losses follow from each row's max and sum.
    let mut grad = crate::pool::take(x.len())?;
    let scale = 1.0 / rows as f32;
    let cols = cols.max(1);
    let mut stats = vec![(0.0f32, 0.0f32); rows];
    // Rows per task: enough that each touches ~CHUNK elements.
    let per_task = CHUNK.div_ceil(cols);
    // Each task: its rows' (max, sum) and their gradient rows.
    type Task<'a> = (&'a mut [(f32, f32)], &'a mut [f32]);
    let mut tasks: Vec<Task<'_>> = stats
        .chunks_mut(per_task)
        .zip(grad.chunks_mut(per_task * cols))
        .collect();
    let work = x.len();
    let fill = |first_row: usize, task: &mut Task<'_>| {
        let (stats, grad) = task;
        for (i, (st, g)) in stats.iter_mut().zip(grad.chunks_mut(cols)).enumerate() {
            let r = first_row + i;
            let row = &x[r * cols..(r + 1) * cols];
            let max = row_max(row);
            exp_shifted(g, row, max);
            let sum = row_sum(g);
            *st = (max, sum);
            for o in g.iter_mut() {
                *o = *o / sum * scale;
            }
            g[targets[r]] -= scale;
        }
    };
    if work >= PAR_MIN_WORK && tasks.len() > 1 {
        tasks
            .par_iter_mut()
            .enumerate()
            .for_each(|(k, task)| fill(k * per_task, task));
    } else {
        for (k, task) in tasks.iter_mut().enumerate() {
            fill(k * per_task, task);
        }
    }
    let losses = x
        .chunks(cols)
        .zip(&stats)
        .zip(&targets)
        // `ln(sum) - (x_t - max)`, not `max + ln(sum) - x_t`: the latter
        // rounds at the logits' magnitude, so a loss of 0.0176 from logits
        // near -72 lost 1e-4 of its value (and more for larger logits).
        .map(|((row, &(max, sum)), &t)| sum.ln() - (row[t] - max))
        .collect();
    Ok((losses, grad))
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Layout};

    use crate::softmax::tests::softmax_row;
    use crate::test_util::*;

    #[test]
    fn cross_entropy_losses_and_gradient() {
        let b = backend();
        let (rows, cols) = (5, 7);
        let xs = values(rows * cols, 8);
        let ts = [0, 6, 3, 3, 1];
        let (s, l) = f32s(&xs, &[rows, cols]);
        let t = b.from_i32(&ts).unwrap();
        let (loss, grad) = b
            .fused_cross_entropy((&s, &l), (&t, &Layout::contiguous(&[rows])))
            .unwrap()
            .unwrap();
        let (loss, grad) = (read(&loss, &[rows]), read(&grad, &[rows * cols]));
        for r in 0..rows {
            let p = softmax_row(&xs[r * cols..(r + 1) * cols]);
            assert!((loss[r] as f64 + p[ts[r] as usize].ln()).abs() < 1e-6);
            for j in 0..cols {
                let onehot = if j == ts[r] as usize { 1.0 } else { 0.0 };
                let want = (p[j] - onehot) / rows as f64;
                assert!((grad[r * cols + j] as f64 - want).abs() < 1e-7);
            }
        }
        let bad = b.from_i32(&[0, 7, 0, 0, 0]).unwrap();
        assert!(b
            .fused_cross_entropy((&s, &l), (&bad, &Layout::contiguous(&[rows])))
            .is_err());
    }
}
