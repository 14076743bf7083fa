//! The gradient of an LSTM layer's whole time loop in one direction
//! (Backend `fused_lstm_sequence_grad`), the steps undone in reverse order
//! of [`crate::lstm_sequence`]'s: per step, each task's batch rows through
//! the gate gradient ([`crate::lstm_gates`]), then the product of their
//! gate gradients by `Wₕₕ`, packed once for the whole loop
//! ([`crate::packed`]), for the gradient reaching the step before. Tasks
//! split the batch as the forward loop does and never synchronise between
//! steps.

use lam_core::backend::{lstm_sequence_sizes, View};
use lam_core::Result;

use crate::lstm_gates::lstm_grad_row_fast;
use crate::lstm_sequence::{rows_per_task, split};
use crate::packed::Packed;
use crate::parallel::for_items;
use crate::storage::ReadLocks;
use crate::strided::gather;

/// The gradient of [`lstm_sequence`]: from the gradient reaching each
/// step's output `h` (`grad_hs`, `[T, B, H]` in time order) and the final
/// `c` (`grad_c`, `[B, H]`), the `gates` `[T, B, 4H]` and `cs`
/// `[T + 1, B, H]` it returned and `w_hh`, the gradient of the input
/// projection (`[T, B, 4H]`, time order), of the initial `h` and `c`, and
/// of the bias (`[4H]`: the projection's gradient summed over steps and
/// rows).
pub(crate) fn lstm_sequence_grad(
    grad_hs: View,
    grad_c: View,
    gates: View,
    cs: View,
    w_hh: View,
    reverse: bool,
) -> Result<SequenceGrad> {
    const OP: &str = "lstm_sequence_grad";
    let (steps, b, h) = lstm_sequence_sizes(OP, gates.1, w_hh.1)?;
    grad_hs
        .1
        .expect_shape(OP, "the outputs' gradient", &[steps, b, h])?;
    grad_c
        .1
        .expect_shape(OP, "the final c's gradient", &[b, h])?;
    cs.1.expect_shape(OP, "the cell states", &[steps + 1, b, h])?;
    let locks = ReadLocks::new(OP, &[grad_hs.0, grad_c.0, gates.0, cs.0, w_hh.0])?;
    let g = gather(locks.f32(0, grad_hs.1)?, grad_hs.1)?;
    let act = gather(locks.f32(2, gates.1)?, gates.1)?;
    let cs = gather(locks.f32(3, cs.1)?, cs.1)?;
    let packed = Packed::new(OP, locks.f32(4, w_hh.1)?, w_hh.1)?;
    let bh = b * h;
    if bh == 0 {
        return Ok(SequenceGrad {
            d_xp: Vec::new(),
            d_h: Vec::new(),
            d_c: Vec::new(),
            d_bias: vec![0.0; 4 * h],
        });
    }
    let mut d_xp = crate::pool::take(steps * 4 * bh)?;
    // Each batch row's sum of its `d_xp` rows over the steps, added while
    // they are in cache: reading the 8 MiB `d_xp` of a `[64, 32, 256]`
    // layer back to sum its columns cost 0.2-0.3 ms.
    let mut row_sums = crate::pool::zeroed(4 * bh)?;
    // The gradient reaching `h` and `c` before the step being undone; at
    // the end, that of the initial state.
    let mut d_h = crate::pool::zeroed(bh)?;
    let mut d_c = crate::pool::take(bh)?;
    d_c.copy_from_slice(&gather(locks.f32(1, grad_c.1)?, grad_c.1)?);
    // Each task's rows of d_h, d_c and of every step's d_xp (in `gates`).
    let rows = rows_per_task(b, h, steps);
    let mut tasks = split(
        b.div_ceil(rows),
        [
            (&mut d_h, bh, rows * h),
            (&mut d_c, bh, rows * h),
            (&mut d_xp, 4 * bh, rows * 4 * h),
        ],
    );
    let mut items: Vec<_> = tasks
        .iter_mut()
        .zip(row_sums.chunks_mut(rows * 4 * h))
        .collect();
    for_items(&mut items, steps * rows * 4 * h * h, |i, (task, sums)| {
        let r0 = i * rows;
        let mut d_c_next = vec![0.0; task.c[0].len()];
        let mut dh_row = vec![0.0; h];
        for k in (0..steps).rev() {
            let t = if reverse { steps - 1 - k } else { k };
            let g_t = &g[t * bh..(t + 1) * bh];
            let a_k = &act[k * 4 * bh..(k + 1) * 4 * bh];
            let (c_k, c_new) = (&cs[k * bh..(k + 1) * bh], &cs[(k + 1) * bh..(k + 2) * bh]);
            let (d_xp_t, d_h, d_c) = (&mut *task.gates[t], &mut *task.h[0], &*task.c[0]);
            for (j, dg) in d_xp_t.chunks_mut(4 * h).enumerate() {
                let (r, at) = (r0 + j, j * h);
                let row = r * h..(r + 1) * h;
                let dh = [&g_t[row.clone()], &d_h[at..at + h]];
                let (dc, c, cn) = (&d_c[at..at + h], &c_k[row.clone()], &c_new[row]);
                let (a, dc_out) = (&a_k[r * 4 * h..(r + 1) * 4 * h], &mut d_c_next[at..at + h]);
                lstm_grad_row_fast(dh, dc, a, c, cn, dg, dc_out, &mut dh_row);
                for (s, &d) in sums[j * 4 * h..(j + 1) * 4 * h].iter_mut().zip(&*dg) {
                    *s += d;
                }
            }
            packed.multiply(d_xp_t, 4 * h, d_h, h);
            task.c[0].copy_from_slice(&d_c_next);
        }
    });
    drop(items);
    drop(tasks);
    // The rows' sums added in row order: the same sum whatever the split.
    let mut bias = vec![0.0; 4 * h];
    for row in row_sums.chunks_exact(4 * h) {
        for (s, &v) in bias.iter_mut().zip(row) {
            *s += v;
        }
    }
    crate::pool::give(row_sums);
    Ok(SequenceGrad {
        d_xp,
        d_h,
        d_c,
        d_bias: bias,
    })
}

/// What [`lstm_sequence_grad`] returns.
pub(crate) struct SequenceGrad {
    /// `[T, B, 4H]`, time order.
    pub d_xp: Vec<f32>,
    /// `[B, H]` each: the initial state's.
    pub d_h: Vec<f32>,
    pub d_c: Vec<f32>,
    /// `[4H]`: `d_xp` summed over steps and rows.
    pub d_bias: Vec<f32>,
}
