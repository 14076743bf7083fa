//! Cross-entropy of logits against class indices, fused with its gradient
//! (Backend `fused_cross_entropy`): per-row losses
//! `logsumexp(row) - row[target]` and `(softmax - onehot) / rows`, from one
//! pass over each row. A target outside `0..cols` is an error.

use lam_core::backend::View;
use lam_core::{Error, Result};

use crate::parallel::for_chunks;
use crate::softmax::{last_dim, max_and_sum_exp};
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
    // Per row: max and Σ exp(x - max); the loss and the gradient follow.
    let stats: Vec<(f32, f32)> = x.chunks(cols.max(1)).map(max_and_sum_exp).collect();
    let losses = x
        .chunks(cols.max(1))
        .zip(&stats)
        .zip(&targets)
        .map(|((row, &(max, sum)), &t)| max + sum.ln() - row[t])
        .collect();
    let mut grad = crate::pool::take(x.len())?;
    let scale = 1.0 / rows as f32;
    for_chunks(&mut grad, cols, x.len(), |start, g| {
        let r = start / cols;
        let (max, sum) = stats[r];
        for (j, (o, &v)) in g.iter_mut().zip(&x[start..]).enumerate() {
            let onehot = if j == targets[r] { 1.0 } else { 0.0 };
            *o = ((v - max).exp() / sum - onehot) * scale;
        }
    });
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
