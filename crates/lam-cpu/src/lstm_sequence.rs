//! A whole LSTM layer's time loop in one direction (Backend
//! `fused_lstm_sequence`; its gradient, `fused_lstm_sequence_grad`, is
//! [`crate::lstm_sequence_grad`]): the recurrent weight is packed once per
//! call ([`crate::packed`]) instead of once per step. A batch row's
//! recurrence never reads another row, so the batch is split into slices,
//! one task each, and every task runs its rows through all the steps — per
//! step the product of its rows by the packed weight, then their gates
//! ([`crate::lstm_gates`]) — with no synchronisation between steps: the
//! pool wakes once per layer, not once per step. With fewer rows than
//! threads (one sequence at a time) the forward loop splits each step by
//! hidden units instead ([`crate::lstm_units`]).
//!
//! Steps run in time order, or backwards when `reverse`; the states and
//! gates kept for the gradient are in the order run, the projections and
//! their gradient in time order.

use lam_core::backend::{lstm_sequence_sizes, View};
use lam_core::{Error, Layout, Result};

use crate::lstm_gates::lstm_row_fast;
use crate::lstm_units::{lstm_by_units, units_per_task, Operands};
use crate::packed::Packed;
use crate::parallel::{for_items, PAR_MIN_WORK};
use crate::storage::ReadLocks;
use crate::strided::gather;

/// What the forward loop adds to each step's `h Wₕₕᵀ`.
pub(crate) enum StepInput<'a> {
    /// The input projection `[T, B, 4H]` (any strides), biases included.
    Projected(View<'a>),
    /// The input `x` `[T, B, in]`, multiplied by `w_ih` `[4H, in]` in the
    /// same product as `h` (`[x | h] × [W_ihᵀ; W_hhᵀ]`), and the `[4H]`
    /// bias: no `[T, B, 4H]` projection is written and read back.
    Rows {
        x: View<'a>,
        w_ih: View<'a>,
        bias: Option<View<'a>>,
    },
}

/// Whether the forward loop projects an input of `inputs` features itself
/// ([`StepInput::Rows`]) for hidden size `hidden`: where the stacked weight
/// `[W_ihᵀ; W_hhᵀ]` is at most 2 MiB (it is read once per step) or the
/// input at most a quarter of the hidden size (each step's product grows
/// by at most a quarter). A separate projection writes `[T, B, 4H]` gates
/// that the loop reads back, memory traffic that cost more than the
/// arithmetic: for a 2-layer LSTM of hidden size 256 over `[64, 32, 32]`,
/// projecting inside both layers' loops made the training step 5–10%
/// faster on 2 AVX-512 cores.
///
/// A loop over fewer rows than threads ([`crate::lstm_units`], `batch`
/// rows) only takes the narrow inputs: its steps are products of one or
/// two rows, bound by reading the weight, which the stacked one makes up
/// to twice as long, where a separate projection is one product over all
/// steps. One sequence of 64 steps through a 2-layer LSTM of hidden size
/// 256 (32 features in) on 2 cores: 2.8 ms with the second layer's 256
/// inputs projected inside, 2.5 ms apart.
pub(crate) fn projects_inside(batch: usize, inputs: usize, hidden: usize) -> bool {
    const STACKED_BYTES: usize = 2 << 20;
    let stacked = (inputs + hidden).saturating_mul(16 * hidden);
    let narrow = 4 * inputs <= hidden;
    if units_per_task(batch, hidden, inputs).is_some() {
        return narrow;
    }
    narrow || stacked <= STACKED_BYTES
}

/// The forward loop: from the `input` (see [`StepInput`]), `w_hh`
/// `[4H, H]` and the initial `h`, `c` `[B, H]`, returns `hs` and `cs`
/// (`[T + 1, B, H]`: the initial state, then each step's) and the activated
/// gates `[T, B, 4H]`, all in the order run.
pub(crate) fn lstm_sequence(
    input: StepInput,
    w_hh: View,
    h0: View,
    c0: View,
    reverse: bool,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    const OP: &str = "lstm_sequence";
    let (xv, w_ih, bias) = match input {
        StepInput::Projected(xp) => (xp, None, None),
        StepInput::Rows { x, w_ih, bias } => (x, Some(w_ih), bias),
    };
    let (steps, b, h, inputs) = match w_ih {
        None => {
            let (steps, b, h) = lstm_sequence_sizes(OP, xv.1, w_hh.1)?;
            (steps, b, h, 0)
        }
        Some(w_ih) => rows_sizes(xv.1, w_ih.1, bias.map(|b| b.1), w_hh.1)?,
    };
    for l in [h0.1, c0.1] {
        l.expect_shape(OP, "an initial state", &[b, h])?;
    }
    let mut storages = vec![xv.0, w_hh.0, h0.0, c0.0];
    storages.extend(w_ih.map(|w| w.0));
    storages.extend(bias.map(|b| b.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let x = gather(locks.f32(0, xv.1)?, xv.1)?;
    let w_t = w_hh.1.permute(&[1, 0])?;
    let w_hh_t = (locks.f32(1, w_hh.1)?, &w_t);
    // `[W_ihᵀ; W_hhᵀ]` and the bias for rows, `W_hhᵀ` alone for a
    // projection.
    let w_ih_t = w_ih.map(|w| w.1.permute(&[1, 0])).transpose()?;
    let (weights, bias) = match (w_ih, &w_ih_t) {
        (Some(w_ih), Some(w_ih_t)) => {
            let bias = match bias {
                Some(bias) => gather(locks.f32(5, bias.1)?, bias.1)?.into_owned(),
                None => vec![0.0; 4 * h],
            };
            (vec![(locks.f32(4, w_ih.1)?, w_ih_t), w_hh_t], Some(bias))
        }
        _ => (vec![w_hh_t], None),
    };
    let bh = b * h;
    if bh == 0 {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    let mut hs = crate::pool::take((steps + 1) * bh)?;
    let mut cs = crate::pool::take((steps + 1) * bh)?;
    hs[..bh].copy_from_slice(&gather(locks.f32(2, h0.1)?, h0.1)?);
    cs[..bh].copy_from_slice(&gather(locks.f32(3, c0.1)?, c0.1)?);
    let mut gates = crate::pool::take(steps * 4 * bh)?;
    if let Some(units) = units_per_task(b, h, inputs) {
        let operands = Operands {
            weights: &weights,
            x: &x,
            bias: bias.as_deref(),
            inputs,
        };
        let sizes = [steps, b, h];
        lstm_by_units(
            OP, operands, sizes, units, reverse, &mut hs, &mut cs, &mut gates,
        )?;
        return Ok((hs, cs, gates));
    }
    let packed = Packed::stacked(OP, &weights)?;
    // Each task's slices of every step's h, c and gates: its batch rows.
    let rows = rows_per_task(b, h + inputs, steps);
    let mut tasks = split(
        b.div_ceil(rows),
        [
            (&mut hs, bh, rows * h),
            (&mut cs, bh, rows * h),
            (&mut gates, 4 * bh, rows * 4 * h),
        ],
    );
    for_items(
        &mut tasks,
        steps * rows * 4 * h * (h + inputs),
        |i, task| {
            let r0 = i * rows;
            let n = task.h[0].len() / h;
            // The task's `n` rows of one step's gate pre-activations, and
            // of the product's left operand `[x | h]` where the input is
            // projected here.
            let mut y = vec![0.0; 4 * h * n];
            let mut xh = vec![0.0; (inputs + h) * n];
            for k in 0..steps {
                let t = if reverse { steps - 1 - k } else { k };
                let (h_done, h_next) = task.h.split_at_mut(k + 1);
                let (c_done, c_next) = task.c.split_at_mut(k + 1);
                let (h_prev, c_prev) = (&*h_done[k], &*c_done[k]);
                let (h_out, c_out) = (&mut *h_next[0], &mut *c_next[0]);
                let g_out = &mut *task.gates[k];
                if bias.is_some() {
                    let x_t = &x[(t * b + r0) * inputs..(t * b + r0 + n) * inputs];
                    let parts = xh
                        .chunks_exact_mut(inputs + h)
                        .zip(x_t.chunks_exact(inputs));
                    for ((row, x), h) in parts.zip(h_prev.chunks_exact(h)) {
                        row[..inputs].copy_from_slice(x);
                        row[inputs..].copy_from_slice(h);
                    }
                    packed.multiply(&xh, inputs + h, &mut y, 4 * h);
                } else {
                    packed.multiply(h_prev, h, &mut y, 4 * h);
                }
                for (j, y) in y.chunks(4 * h).enumerate() {
                    let at = j * h;
                    // What the product left out: the projection's row, or the
                    // bias.
                    let x = match &bias {
                        Some(bias) => &bias[..],
                        None => &x[(t * b + r0 + j) * 4 * h..],
                    };
                    let c = &c_prev[at..at + h];
                    let (h_out, c_out) = (&mut h_out[at..at + h], &mut c_out[at..at + h]);
                    let g_out = &mut g_out[j * 4 * h..];
                    lstm_row_fast(x, y, c, h_out, c_out, g_out);
                }
            }
        },
    );
    drop(tasks);
    Ok((hs, cs, gates))
}

/// `(T, B, H, in)` of [`StepInput::Rows`], checked: `x` `[T, B, in]`,
/// `w_ih` `[4H, in]`, `bias` `[4H]`, `w_hh` `[4H, H]`.
fn rows_sizes(
    x: &Layout,
    w_ih: &Layout,
    bias: Option<&Layout>,
    w_hh: &Layout,
) -> Result<(usize, usize, usize, usize)> {
    const OP: &str = "lstm_sequence";
    let h = match w_hh.shape[..] {
        [g, h] if g == 4 * h => h,
        _ => return Err(Error::shape(OP, "a [4H, H] recurrent weight", &w_hh.shape)),
    };
    let [t, b, inputs] = x.shape[..] else {
        return Err(Error::shape(OP, "an input [T, B, in]", &x.shape));
    };
    w_ih.expect_shape(OP, "an input weight [4H, in]", &[4 * h, inputs])?;
    if let Some(bias) = bias {
        bias.expect_shape(OP, "a bias [4H]", &[4 * h])?;
    }
    Ok((t, b, h, inputs))
}

/// One task's share of a time loop: its batch rows' slice of each step's
/// buffers (the backward keeps d_h, d_c and each step's d_xp in them).
pub(crate) struct Rows<'a> {
    pub h: Vec<&'a mut [f32]>,
    pub c: Vec<&'a mut [f32]>,
    pub gates: Vec<&'a mut [f32]>,
}

/// `buf`, whose steps are `step` floats each, dealt out to `tasks` tasks:
/// task `i` gets the `i`-th `piece` floats of every step.
fn deal(buf: &mut [f32], step: usize, piece: usize, tasks: usize) -> Vec<Vec<&mut [f32]>> {
    let mut dealt: Vec<Vec<&mut [f32]>> = (0..tasks).map(|_| Vec::new()).collect();
    for step in buf.chunks_mut(step) {
        for (list, part) in dealt.iter_mut().zip(step.chunks_mut(piece)) {
            list.push(part);
        }
    }
    dealt
}

/// Each task's [`Rows`] of the three buffers `(buf, step, piece)` (see
/// [`deal`]).
pub(crate) fn split<'a>(
    tasks: usize,
    [h, c, gates]: [(&'a mut [f32], usize, usize); 3],
) -> Vec<Rows<'a>> {
    deal(h.0, h.1, h.2, tasks)
        .into_iter()
        .zip(deal(c.0, c.1, c.2, tasks))
        .zip(deal(gates.0, gates.1, gates.2, tasks))
        .map(|((h, c), gates)| Rows { h, c, gates })
        .collect()
}

/// Batch rows per task: the batch split evenly over the pool's threads
/// when the whole loop's products (`steps` of them) are big enough to pay
/// for waking them.
pub(crate) fn rows_per_task(b: usize, h: usize, steps: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tasks = if steps.saturating_mul(b * 4 * h * h) >= 8 * PAR_MIN_WORK {
        threads.min(b)
    } else {
        1
    };
    b.div_ceil(tasks).max(1)
}

#[cfg(test)]
mod tests;
