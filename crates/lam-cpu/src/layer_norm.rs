//! Layer normalization of the rows of a `[rows, cols]` view and its
//! gradient, fused (Backend `fused_layer_norm`, `fused_layer_norm_grad`):
//! each row's mean and variance (summed in `f64`), the normalized row and
//! the affine map in one pass per row, rows in parallel; the gradient in
//! one pass per block of rows, blocks in parallel, each writing its rows of
//! the input's gradient and summing the per-column sums (the weight's and
//! the bias's) into `f64` partials of its own. The inner loops are
//! `runs.rs`'s, compiled for the widest vectors. The formulas are
//! lam-core's composite ones (`nn/norm.rs`).

use lam_core::backend::View;
use lam_core::{Error, Layout, Result};

use crate::parallel::for_items;
use crate::runs;
use crate::storage::ReadLocks;
use crate::strided::gather;

/// The gradient's blocks of rows (at most): each a task, with its own
/// partial column sums.
const BLOCKS: usize = 64;

/// Rows per block of the gradient (at least, where there are as many): the
/// blocks' `f64` partials, 16 bytes per column each, then take at most
/// half the input's bytes.
const MIN_BLOCK_ROWS: usize = 8;

/// `(y, mean, rstd)`: `y = (x − mean) · rstd ⊙ weight + bias` for each row
/// of `input` (`[rows, cols]`), `rstd = 1 / √(var + eps)`.
pub(crate) fn layer_norm(
    input: View,
    weight: Option<View>,
    bias: Option<View>,
    eps: f32,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    const OP: &str = "layer_norm";
    let (rows, cols) = matrix(OP, input.1)?;
    let mut storages = vec![input.0];
    storages.extend(weight.iter().chain(&bias).map(|v| v.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let x = gather(locks.f32(0, input.1)?, input.1)?;
    let mut next = 1;
    let mut affine = |v: Option<View>| -> Result<Option<Vec<f32>>> {
        let Some((_, l)) = v else { return Ok(None) };
        vector(OP, l, cols)?;
        let data = gather(locks.f32(next, l)?, l)?.into_owned();
        next += 1;
        Ok(Some(data))
    };
    let (w, b) = (affine(weight)?, affine(bias)?);
    let mut y = crate::pool::take(rows * cols)?;
    let mut mean = crate::pool::take(rows)?;
    let mut rstd = crate::pool::take(rows)?;
    let mut items: Vec<_> = y
        .chunks_mut(cols.max(1))
        .zip(mean.iter_mut())
        .zip(rstd.iter_mut())
        .collect();
    // A missing weight is ones and a missing bias zeros: multiplying by 1
    // and adding 0 change no value, and one loop serves every case.
    let w = w.unwrap_or_else(|| vec![1.0; cols]);
    let b = b.unwrap_or_else(|| vec![0.0; cols]);
    for_items(&mut items, 3 * cols, |r, ((y_row, m_out), s_out)| {
        let row = &x[r * cols..(r + 1) * cols];
        let m = runs::sum(row) / cols as f64;
        let var = runs::sum_squared_deviation(row, m) / cols as f64;
        let s = 1.0 / (var + eps as f64).sqrt();
        let (m, s) = (m as f32, s as f32);
        runs::affine(y_row, row, m, s, &w, &b);
        (**m_out, **s_out) = (m, s);
    });
    Ok((y, mean, rstd))
}

/// The gradient of [`layer_norm`]: the input's (`[rows, cols]`) and the
/// per-column sums of `grad ⊙ x̂` and of `grad` (`[cols]` each).
pub(crate) fn layer_norm_grad(
    grad: View,
    input: View,
    mean: View,
    rstd: View,
    weight: Option<View>,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    const OP: &str = "layer_norm_grad";
    let (rows, cols) = matrix(OP, input.1)?;
    if matrix(OP, grad.1)? != (rows, cols) {
        return Err(Error::shape(
            OP,
            format!("a gradient of shape [{rows}, {cols}]"),
            &grad.1.shape,
        ));
    }
    vector(OP, mean.1, rows)?;
    vector(OP, rstd.1, rows)?;
    let mut storages = vec![grad.0, input.0, mean.0, rstd.0];
    storages.extend(weight.map(|v| v.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let g = gather(locks.f32(0, grad.1)?, grad.1)?;
    let x = gather(locks.f32(1, input.1)?, input.1)?;
    let m = gather(locks.f32(2, mean.1)?, mean.1)?;
    let s = gather(locks.f32(3, rstd.1)?, rstd.1)?;
    let w = match weight {
        Some((_, l)) => {
            vector(OP, l, cols)?;
            Some(gather(locks.f32(4, l)?, l)?)
        }
        None => None,
    };
    // One pass over blocks of rows, in parallel: each block writes its
    // rows of dx and sums its rows' `g ⊙ x̂` and `g` into f64 partials of
    // its own, while the rows are in cache; the partials are then added in
    // block order. The blocks depend only on the shape, so the sums do not
    // depend on the thread count.
    let block = rows.div_ceil(BLOCKS).max(MIN_BLOCK_ROWS);
    let mut dx = crate::pool::take(rows * cols)?;
    let mut partials: Vec<f64> = crate::pool::fresh_zeroed(rows.div_ceil(block) * 2 * cols)?;
    let mut items: Vec<_> = dx
        .chunks_mut(block * cols.max(1))
        .zip(partials.chunks_mut(2 * cols.max(1)))
        .collect();
    for_items(&mut items, 6 * block * cols, |k, (dx_block, sums)| {
        let (pw, pb) = sums.split_at_mut(cols);
        // gy = g ⊙ weight, in a row of its own only when there is a weight.
        let mut weighted = vec![0.0; if w.is_some() { cols } else { 0 }];
        for (i, dx_row) in dx_block.chunks_mut(cols.max(1)).enumerate() {
            let r = k * block + i;
            let (x_row, g_row) = (&x[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
            let (stats, sums) = ((m[r], s[r]), (&mut pw[..], &mut pb[..]));
            runs::layer_norm_grad_row(
                dx_row,
                g_row,
                x_row,
                w.as_deref(),
                &mut weighted,
                stats,
                sums,
            );
        }
    });
    let mut dw = crate::pool::take(cols)?;
    let mut db = crate::pool::take(cols)?;
    let (mut sw, mut sb) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for sums in partials.chunks(2 * cols.max(1)) {
        let (pw, pb) = sums.split_at(cols);
        for (a, &v) in sw.iter_mut().zip(pw) {
            *a += v;
        }
        for (a, &v) in sb.iter_mut().zip(pb) {
            *a += v;
        }
    }
    for (o, v) in dw.iter_mut().zip(sw) {
        *o = v as f32;
    }
    for (o, v) in db.iter_mut().zip(sb) {
        *o = v as f32;
    }
    Ok((dx, dw, db))
}

/// The `(rows, cols)` of a rank-2 view.
fn matrix(op: &'static str, l: &Layout) -> Result<(usize, usize)> {
    match l.shape[..] {
        [r, c] => Ok((r, c)),
        _ => Err(Error::shape(op, "a [rows, cols] view", &l.shape)),
    }
}

/// An error unless `l` is a vector of `len` elements.
fn vector(op: &'static str, l: &Layout, len: usize) -> Result<()> {
    if l.shape[..] != [len] {
        return Err(Error::shape(op, format!("a vector of {len}"), &l.shape));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    #[test]
    fn layer_norm_and_its_gradient_match_the_formulas() {
        // 130 rows: blocks of 8 rows, the last one partial; 700 rows:
        // blocks of 11, the last one partial.
        for (rows, cols) in [(3, 70), (130, 5), (700, 9)] {
            check_formulas(rows, cols);
        }
    }

    fn check_formulas(rows: usize, cols: usize) {
        let b_ = backend();
        let xv: Vec<f32> = values(rows * cols, 1)
            .iter()
            .map(|v| 50.0 + 4.0 * v)
            .collect();
        let (wv, bv, gv) = (values(cols, 2), values(cols, 3), values(rows * cols, 4));
        let (x, xl) = f32s(&xv, &[rows, cols]);
        let (w, wl) = f32s(&wv, &[cols]);
        let (b, bl) = f32s(&bv, &[cols]);
        let eps = 1e-5;
        let (y, mean, rstd) = b_
            .fused_layer_norm((&x, &xl), Some((&w, &wl)), Some((&b, &bl)), eps)
            .unwrap()
            .unwrap();
        let y = read(&y, &[rows * cols]);
        // loss = Σ g ⊙ y, in f64.
        let forward = |x: &[f32], w: &[f32], b: &[f32]| -> Vec<f64> {
            let mut out = Vec::new();
            for r in 0..rows {
                let row: Vec<f64> = x[r * cols..(r + 1) * cols]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let m = row.iter().sum::<f64>() / cols as f64;
                let var = row.iter().map(|v| (v - m).powi(2)).sum::<f64>() / cols as f64;
                for j in 0..cols {
                    out.push((row[j] - m) / (var + eps as f64).sqrt() * w[j] as f64 + b[j] as f64);
                }
            }
            out
        };
        let want: Vec<f32> = forward(&xv, &wv, &bv).iter().map(|&v| v as f32).collect();
        assert_close(&y, &want, 1e-5);
        let ml = Layout::contiguous(&[rows]);
        let (gs, gl) = f32s(&gv, &[rows, cols]);
        let (dx, dw, db) = b_
            .fused_layer_norm_grad(
                (&gs, &gl),
                (&x, &xl),
                (&mean, &ml),
                (&rstd, &ml),
                Some((&w, &wl)),
            )
            .unwrap()
            .unwrap();
        let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            forward(x, w, b)
                .iter()
                .zip(&gv)
                .map(|(a, &g)| a * g as f64)
                .sum()
        };
        let eps_fd = 1e-2;
        let numeric = |which: usize, k: usize| -> f64 {
            let mut args = [xv.clone(), wv.clone(), bv.clone()];
            args[which][k] += eps_fd;
            let p = loss(&args[0], &args[1], &args[2]);
            args[which][k] -= 2.0 * eps_fd;
            let m = loss(&args[0], &args[1], &args[2]);
            (p - m) / (2.0 * eps_fd as f64)
        };
        for (which, got) in [
            read(&dx, &[rows * cols]),
            read(&dw, &[cols]),
            read(&db, &[cols]),
        ]
        .iter()
        .enumerate()
        {
            for (k, &v) in got.iter().enumerate().step_by(7) {
                let num = numeric(which, k);
                assert!(
                    (v as f64 - num).abs() < 2e-3 * (1.0 + num.abs()),
                    "input {which}[{k}]: {v} vs {num}"
                );
            }
        }
    }
}
