//! The gate arithmetic of one LSTM or GRU step and its gradient, fused
//! (Backend `fused_lstm_cell`, `fused_lstm_cell_grad`, `fused_gru_cell`,
//! `fused_gru_cell_grad`): one pass over each batch row instead of a dozen
//! elementwise ops, rows in parallel when the step is big enough. The
//! formulas are lam-core's composite ones (`nn/rnn/fused.rs`), term for term.
//!
//! Inputs are read through their views (contiguous ones in place); every
//! output is contiguous. Gate order is PyTorch's: LSTM `i, f, g, o`, GRU
//! `r, z, n`.

use lam_core::backend::View;
use lam_core::{Error, Layout, Result};

use crate::elementwise::vectorised;
use crate::math::{sigmoid, tanh};
use crate::parallel::for_items;
use crate::storage::ReadLocks;
use crate::strided::gather;

/// `h' = o ⊙ tanh(c')` and `c' = f ⊙ c + i ⊙ g` from the two projections
/// `[B, 4H]` and `c` `[B, H]`: returns `hc` (`[2, B, H]`: every `h'`, then
/// every `c'`) and the activated gates `[B, 4H]`.
pub(crate) fn lstm_cell(xg: View, hg: View, c: View) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "lstm_cell";
    let (b, h) = matrix(OP, c.1, None)?;
    matrix(OP, xg.1, Some((b, 4 * h)))?;
    matrix(OP, hg.1, Some((b, 4 * h)))?;
    let locks = ReadLocks::new(OP, &[xg.0, hg.0, c.0])?;
    let x = gather(locks.f32(0, xg.1)?, xg.1)?;
    let y = gather(locks.f32(1, hg.1)?, hg.1)?;
    let c = gather(locks.f32(2, c.1)?, c.1)?;
    let mut hc = crate::pool::take(2 * b * h)?;
    let mut gates = crate::pool::take(4 * b * h)?;
    let (h_all, c_all) = hc.split_at_mut(b * h);
    let mut rows: Vec<_> = h_all
        .chunks_mut(h)
        .zip(c_all.chunks_mut(h))
        .zip(gates.chunks_mut(4 * h))
        .collect();
    for_items(&mut rows, 10 * h, |r, ((h_out, c_out), g_out)| {
        let at = r * 4 * h;
        let (x, y) = (&x[at..at + 4 * h], &y[at..at + 4 * h]);
        let c = &c[r * h..(r + 1) * h];
        vectorised(
            #[inline(always)]
            || lstm_row(x, y, c, h_out, c_out, g_out),
        );
    });
    Ok((hc, gates))
}

/// The gradient of [`lstm_cell`]: from `grad_h`, `grad_c` `[B, H]`, the
/// activated `gates` `[B, 4H]`, the step's input `c` and output `c_new`
/// `[B, H]`, the gradient of the summed projections `[B, 4H]` and of `c`.
pub(crate) fn lstm_cell_grad(
    grad_h: View,
    grad_c: View,
    gates: View,
    c: View,
    c_new: View,
) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "lstm_cell_grad";
    let (b, h) = matrix(OP, c.1, None)?;
    for l in [grad_h.1, grad_c.1, c_new.1] {
        matrix(OP, l, Some((b, h)))?;
    }
    matrix(OP, gates.1, Some((b, 4 * h)))?;
    let locks = ReadLocks::new(OP, &[grad_h.0, grad_c.0, gates.0, c.0, c_new.0])?;
    let dh = gather(locks.f32(0, grad_h.1)?, grad_h.1)?;
    let dc = gather(locks.f32(1, grad_c.1)?, grad_c.1)?;
    let act = gather(locks.f32(2, gates.1)?, gates.1)?;
    let c = gather(locks.f32(3, c.1)?, c.1)?;
    let cn = gather(locks.f32(4, c_new.1)?, c_new.1)?;
    let mut d_gates = crate::pool::take(4 * b * h)?;
    let mut d_c = crate::pool::take(b * h)?;
    let mut rows: Vec<_> = d_gates.chunks_mut(4 * h).zip(d_c.chunks_mut(h)).collect();
    for_items(&mut rows, 12 * h, |r, (dg_out, dc_out)| {
        let row = r * h..(r + 1) * h;
        let (dh, dc_in, c, cn) = (
            &dh[row.clone()],
            &dc[row.clone()],
            &c[row.clone()],
            &cn[row],
        );
        let a = &act[r * 4 * h..(r + 1) * 4 * h];
        vectorised(
            #[inline(always)]
            || lstm_grad_row(dh, dc_in, a, c, cn, dg_out, dc_out),
        );
    });
    Ok((d_gates, d_c))
}

/// One batch row of [`lstm_cell`]: the projections `x`, `y` (`4H`), `c`
/// (`H`) to `h'`, `c'` and the activated gates. Inlined into each caller's
/// vector-width variants.
#[inline(always)]
pub(crate) fn lstm_row(
    x: &[f32],
    y: &[f32],
    c: &[f32],
    h_out: &mut [f32],
    c_out: &mut [f32],
    gates: &mut [f32],
) {
    let h = c.len();
    let (x, y, h_out, c_out) = (&x[..4 * h], &y[..4 * h], &mut h_out[..h], &mut c_out[..h]);
    let (gi, rest) = gates[..4 * h].split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gg, go) = rest.split_at_mut(h);
    for j in 0..h {
        let i = sigmoid(x[j] + y[j]);
        let f = sigmoid(x[h + j] + y[h + j]);
        let g = tanh(x[2 * h + j] + y[2 * h + j]);
        let o = sigmoid(x[3 * h + j] + y[3 * h + j]);
        let cn = f * c[j] + i * g;
        c_out[j] = cn;
        h_out[j] = o * tanh(cn);
        (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
    }
}

/// One batch row of [`lstm_cell_grad`]: from `dh`, `dc` (`H`), the
/// activated gates `a` (`4H`), `c` and `c'`, the projections' gradient
/// `dg` (`4H`) and `c`'s.
#[inline(always)]
pub(crate) fn lstm_grad_row(
    dh: &[f32],
    dc: &[f32],
    a: &[f32],
    c: &[f32],
    cn: &[f32],
    dg: &mut [f32],
    dc_out: &mut [f32],
) {
    let h = c.len();
    let (dh, dc, a, cn, dc_out) = (&dh[..h], &dc[..h], &a[..4 * h], &cn[..h], &mut dc_out[..h]);
    let (di, rest) = dg[..4 * h].split_at_mut(h);
    let (df, rest) = rest.split_at_mut(h);
    let (dgg, d_o) = rest.split_at_mut(h);
    for j in 0..h {
        let (i, f, g, o) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
        let tc = tanh(cn[j]);
        let d_cell = dc[j] + dh[j] * o * (1.0 - tc * tc);
        di[j] = d_cell * g * i * (1.0 - i);
        df[j] = d_cell * c[j] * f * (1.0 - f);
        dgg[j] = d_cell * i * (1.0 - g * g);
        d_o[j] = dh[j] * tc * o * (1.0 - o);
        dc_out[j] = d_cell * f;
    }
}

/// `h' = n + z ⊙ (h − n)` with `r, z = σ(x + y)` and `n = tanh(x_n + r ⊙ y_n)`
/// from the input projection `x` and hidden projection `y` (`[B, 3H]`) and
/// `h` `[B, H]`: returns `h'` `[B, H]` and the activated gates `[B, 3H]`.
pub(crate) fn gru_cell(xg: View, hg: View, h_in: View) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "gru_cell";
    let (b, h) = matrix(OP, h_in.1, None)?;
    matrix(OP, xg.1, Some((b, 3 * h)))?;
    matrix(OP, hg.1, Some((b, 3 * h)))?;
    let locks = ReadLocks::new(OP, &[xg.0, hg.0, h_in.0])?;
    let x = gather(locks.f32(0, xg.1)?, xg.1)?;
    let y = gather(locks.f32(1, hg.1)?, hg.1)?;
    let hp = gather(locks.f32(2, h_in.1)?, h_in.1)?;
    let mut out = crate::pool::take(b * h)?;
    let mut gates = crate::pool::take(3 * b * h)?;
    let mut rows: Vec<_> = out.chunks_mut(h).zip(gates.chunks_mut(3 * h)).collect();
    for_items(&mut rows, 8 * h, |r, (h_out, g_out)| {
        let at = r * 3 * h;
        let (x, y) = (&x[at..at + 3 * h], &y[at..at + 3 * h]);
        let hp = &hp[r * h..(r + 1) * h];
        let (gr, rest) = g_out.split_at_mut(h);
        let (gz, gn) = rest.split_at_mut(h);
        vectorised(
            #[inline(always)]
            || {
                for j in 0..h {
                    let rg = sigmoid(x[j] + y[j]);
                    let z = sigmoid(x[h + j] + y[h + j]);
                    let n = tanh(x[2 * h + j] + rg * y[2 * h + j]);
                    h_out[j] = n + z * (hp[j] - n);
                    (gr[j], gz[j], gn[j]) = (rg, z, n);
                }
            },
        );
    });
    Ok((out, gates))
}

/// The gradient of [`gru_cell`]: from `grad_h` `[B, H]`, the activated
/// `gates` and the hidden projection `[B, 3H]`, and the step's input `h`,
/// the gradients of the input projection, the hidden projection and `h`.
pub(crate) fn gru_cell_grad(
    grad_h: View,
    gates: View,
    hg: View,
    h_in: View,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    const OP: &str = "gru_cell_grad";
    let (b, h) = matrix(OP, h_in.1, None)?;
    matrix(OP, grad_h.1, Some((b, h)))?;
    matrix(OP, gates.1, Some((b, 3 * h)))?;
    matrix(OP, hg.1, Some((b, 3 * h)))?;
    let locks = ReadLocks::new(OP, &[grad_h.0, gates.0, hg.0, h_in.0])?;
    let dh = gather(locks.f32(0, grad_h.1)?, grad_h.1)?;
    let act = gather(locks.f32(1, gates.1)?, gates.1)?;
    let y = gather(locks.f32(2, hg.1)?, hg.1)?;
    let hp = gather(locks.f32(3, h_in.1)?, h_in.1)?;
    let mut d_x = crate::pool::take(3 * b * h)?;
    let mut d_y = crate::pool::take(3 * b * h)?;
    let mut d_h = crate::pool::take(b * h)?;
    let mut rows: Vec<_> = d_x
        .chunks_mut(3 * h)
        .zip(d_y.chunks_mut(3 * h))
        .zip(d_h.chunks_mut(h))
        .collect();
    for_items(&mut rows, 14 * h, |r, ((dx, dy), dh_out)| {
        let at = r * 3 * h;
        let (a, y) = (&act[at..at + 3 * h], &y[at..at + 3 * h]);
        let (dh, hp) = (&dh[r * h..(r + 1) * h], &hp[r * h..(r + 1) * h]);
        vectorised(
            #[inline(always)]
            || {
                for j in 0..h {
                    let (rg, z, n) = (a[j], a[h + j], a[2 * h + j]);
                    let dn = dh[j] * (1.0 - z) * (1.0 - n * n);
                    let dz = dh[j] * (hp[j] - n) * z * (1.0 - z);
                    let dr = dn * y[2 * h + j] * rg * (1.0 - rg);
                    (dx[j], dx[h + j], dx[2 * h + j]) = (dr, dz, dn);
                    (dy[j], dy[h + j], dy[2 * h + j]) = (dr, dz, dn * rg);
                    dh_out[j] = dh[j] * z;
                }
            },
        );
    });
    Ok((d_x, d_y, d_h))
}

/// The `(rows, cols)` of a rank-2 view, checked against `want` when given.
fn matrix(op: &'static str, l: &Layout, want: Option<(usize, usize)>) -> Result<(usize, usize)> {
    let dims = match l.shape[..] {
        [r, c] => (r, c),
        _ => return Err(Error::shape(op, "a [batch, features] view", &l.shape)),
    };
    match want {
        Some(w) if w != dims => Err(Error::shape(
            op,
            format!("a view of shape [{}, {}]", w.0, w.1),
            &l.shape,
        )),
        _ => Ok(dims),
    }
}

#[cfg(test)]
mod tests {
    use lam_core::Backend;

    use crate::test_util::*;

    /// One LSTM step by the textbook formulas, in f64: `(h', c')`.
    fn lstm_ref(x: &[f32], y: &[f32], c: &[f32], b: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for r in 0..b {
            for j in 0..h {
                let pre = |k: usize| (x[r * 4 * h + k * h + j] + y[r * 4 * h + k * h + j]) as f64;
                let (i, f, g, o) = (sig(pre(0)), sig(pre(1)), pre(2).tanh(), sig(pre(3)));
                let cn = f * c[r * h + j] as f64 + i * g;
                cs.push(cn as f32);
                hs.push((o * cn.tanh()) as f32);
            }
        }
        (hs, cs)
    }

    #[test]
    fn lstm_cell_matches_the_formulas_on_transposed_views() {
        let b_ = backend();
        let (b, h) = (3, 5);
        let (xv, yv, cv) = (values(b * 4 * h, 1), values(b * 4 * h, 2), values(b * h, 3));
        let (x, xl) = f32s(&xv, &[b, 4 * h]);
        // The hidden projection stored transposed, read through its view.
        let mut yt = vec![0.0; yv.len()];
        for r in 0..b {
            for k in 0..4 * h {
                yt[k * b + r] = yv[r * 4 * h + k];
            }
        }
        let (y, yl) = f32s(&yt, &[4 * h, b]);
        let yl = yl.permute(&[1, 0]).unwrap();
        let (c, cl) = f32s(&cv, &[b, h]);
        let (hc, gates) = b_
            .fused_lstm_cell((&x, &xl), (&y, &yl), (&c, &cl))
            .unwrap()
            .unwrap();
        let hc = read(&hc, &[2 * b * h]);
        let (hs, cs) = lstm_ref(&xv, &yv, &cv, b, h);
        assert_close(&hc[..b * h], &hs, 1e-6);
        assert_close(&hc[b * h..], &cs, 1e-6);
        assert_eq!(read(&gates, &[b * 4 * h]).len(), b * 4 * h);
    }

    #[test]
    fn lstm_cell_grad_matches_finite_differences_of_the_forward() {
        let b_ = backend();
        let (b, h) = (2, 3);
        let (xv, cv) = (values(b * 4 * h, 4), values(b * h, 5));
        let zeros = vec![0.0; b * 4 * h];
        let (dhv, dcv) = (values(b * h, 6), values(b * h, 7));
        // loss = Σ dh ⊙ h' + dc ⊙ c'
        let loss = |x: &[f32], c: &[f32]| -> f64 {
            let (hs, cs) = lstm_ref(x, &zeros, c, b, h);
            (0..b * h)
                .map(|k| dhv[k] as f64 * hs[k] as f64 + dcv[k] as f64 * cs[k] as f64)
                .sum()
        };
        let (x, xl) = f32s(&xv, &[b, 4 * h]);
        let (z, zl) = f32s(&zeros, &[b, 4 * h]);
        let (c, cl) = f32s(&cv, &[b, h]);
        let (hc, gates) = b_
            .fused_lstm_cell((&x, &xl), (&z, &zl), (&c, &cl))
            .unwrap()
            .unwrap();
        let c_new = lam_core::Layout {
            offset: b * h,
            ..cl.clone()
        };
        let (dh, dhl) = f32s(&dhv, &[b, h]);
        let (dc, dcl) = f32s(&dcv, &[b, h]);
        let gl = lam_core::Layout::contiguous(&[b, 4 * h]);
        let (dg, dcp) = b_
            .fused_lstm_cell_grad(
                (&dh, &dhl),
                (&dc, &dcl),
                (&gates, &gl),
                (&c, &cl),
                (&hc, &c_new),
            )
            .unwrap()
            .unwrap();
        let (dg, dcp) = (read(&dg, &[b * 4 * h]), read(&dcp, &[b * h]));
        let eps = 1e-3;
        for k in 0..b * 4 * h {
            let (mut p, mut m) = (xv.clone(), xv.clone());
            p[k] += eps;
            m[k] -= eps;
            let num = (loss(&p, &cv) - loss(&m, &cv)) / (2.0 * eps as f64);
            assert!(
                (dg[k] as f64 - num).abs() < 1e-3,
                "gate {k}: {} vs {num}",
                dg[k]
            );
        }
        for k in 0..b * h {
            let (mut p, mut m) = (cv.clone(), cv.clone());
            p[k] += eps;
            m[k] -= eps;
            let num = (loss(&xv, &p) - loss(&xv, &m)) / (2.0 * eps as f64);
            assert!(
                (dcp[k] as f64 - num).abs() < 1e-3,
                "c {k}: {} vs {num}",
                dcp[k]
            );
        }
    }

    #[test]
    fn gru_cell_and_its_gradient_match_the_formulas() {
        let b_ = backend();
        let (b, h) = (2, 3);
        let (xv, yv, hv) = (
            values(b * 3 * h, 8),
            values(b * 3 * h, 9),
            values(b * h, 10),
        );
        let dhv = values(b * h, 11);
        let gru = |x: &[f32], y: &[f32], hp: &[f32]| -> Vec<f64> {
            let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
            let mut out = Vec::new();
            for r in 0..b {
                for j in 0..h {
                    let at = |k: usize| r * 3 * h + k * h + j;
                    let rg = sig((x[at(0)] + y[at(0)]) as f64);
                    let z = sig((x[at(1)] + y[at(1)]) as f64);
                    let n = (x[at(2)] as f64 + rg * y[at(2)] as f64).tanh();
                    out.push(n + z * (hp[r * h + j] as f64 - n));
                }
            }
            out
        };
        let (x, xl) = f32s(&xv, &[b, 3 * h]);
        let (y, yl) = f32s(&yv, &[b, 3 * h]);
        let (hp, hl) = f32s(&hv, &[b, h]);
        let (out, gates) = b_
            .fused_gru_cell((&x, &xl), (&y, &yl), (&hp, &hl))
            .unwrap()
            .unwrap();
        let want: Vec<f32> = gru(&xv, &yv, &hv).iter().map(|&v| v as f32).collect();
        assert_close(&read(&out, &[b * h]), &want, 1e-6);
        let (dh, dhl) = f32s(&dhv, &[b, h]);
        let gl = lam_core::Layout::contiguous(&[b, 3 * h]);
        let (dx, dy, dhp) = b_
            .fused_gru_cell_grad((&dh, &dhl), (&gates, &gl), (&y, &yl), (&hp, &hl))
            .unwrap()
            .unwrap();
        let loss = |x: &[f32], y: &[f32], hp: &[f32]| -> f64 {
            gru(x, y, hp)
                .iter()
                .zip(&dhv)
                .map(|(a, &d)| a * d as f64)
                .sum()
        };
        let eps = 1e-3;
        let numeric = |which: usize, k: usize| -> f64 {
            let mut args = [xv.clone(), yv.clone(), hv.clone()];
            args[which][k] += eps;
            let p = loss(&args[0], &args[1], &args[2]);
            args[which][k] -= 2.0 * eps;
            let m = loss(&args[0], &args[1], &args[2]);
            (p - m) / (2.0 * eps as f64)
        };
        let grads = [
            read(&dx, &[b * 3 * h]),
            read(&dy, &[b * 3 * h]),
            read(&dhp, &[b * h]),
        ];
        for (which, g) in grads.iter().enumerate() {
            for (k, &v) in g.iter().enumerate() {
                let num = numeric(which, k);
                assert!(
                    (v as f64 - num).abs() < 1e-3,
                    "input {which}[{k}]: {v} vs {num}"
                );
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let b_ = backend();
        let (x, xl) = f32s(&values(2 * 8, 1), &[2, 8]);
        let (c, cl) = f32s(&values(2 * 3, 2), &[2, 3]);
        assert!(b_.fused_lstm_cell((&x, &xl), (&x, &xl), (&c, &cl)).is_err());
        assert!(b_.fused_gru_cell((&x, &xl), (&x, &xl), (&c, &cl)).is_err());
    }
}
