//! The LSTM forward loop ([`crate::lstm_sequence`]) for fewer batch rows
//! than the pool has threads — one sequence at a time, as a policy acting
//! step by step or a model serving one request runs it. Splitting the
//! batch would leave the other threads idle (one row: one task), so each
//! step's hidden units are split instead: a task owns a range of units,
//! multiplies `[x | h]` by their four gate columns of the stacked weight
//! (packed per task, [`Packed::stacked_columns`]) and applies their gates;
//! the states of all units then go into the step's `h` and `c` before the
//! next step, which reads all of `h`. That costs a fork and a join per
//! step, so it is taken only where a step's product is big enough to pay
//! for them.
//!
//! Every unit is computed as in the batch-split loop: the same products
//! (each output column summed over the same `k` in the same order) and
//! the same gate arithmetic on the same 16-lane chunks (a task's range
//! starts at a multiple of [`GROUP`]), so both loops give the same bits.

use rayon::prelude::*;

use lam_core::{Layout, Result};

use crate::lstm_gates::lstm_row_fast;
use crate::packed::{Packed, GROUP};

/// A step's multiply-adds (`B · 4H · (in + H)`) from which its hidden units
/// are split across the pool. On 2 Zen 4 cores, one row through 64 steps
/// of hidden size 256 (262 Ki multiply-adds a step) took 915 µs on one
/// thread and 511 µs split in two, packing included (97 and 51 µs).
const MIN_STEP_WORK: usize = 128 * 1024;

/// Hidden units per task where the loop over `b` rows of hidden size `h`
/// (`inputs` features projected inside, else 0) should split each step by
/// units: fewer rows than threads, a hidden size of whole [`GROUP`]s, at
/// least two groups, and [`MIN_STEP_WORK`] per step. `None` where the
/// batch split is the better one.
pub(crate) fn units_per_task(b: usize, h: usize, inputs: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    let groups = h / GROUP;
    let step_work = b.saturating_mul(4 * h).saturating_mul(h + inputs);
    if b >= threads || !h.is_multiple_of(GROUP) || groups < 2 || step_work < MIN_STEP_WORK {
        return None;
    }
    Some(groups.div_ceil(threads.min(groups)) * GROUP)
}

/// One task's units `j0..j0 + w` and its buffers.
struct Task {
    j0: usize,
    w: usize,
    /// `[W_ihᵀ; W_hhᵀ]` (or `W_hhᵀ`) restricted to the units' gate
    /// columns: `i`, `f`, `g`, `o`, `w` each.
    packed: Packed,
    /// The bias of those columns (`4w`), where the input is projected here.
    bias: Vec<f32>,
    /// Per row: the product `[B, 4w]`, the projection's columns (when given
    /// one), and the gates, `h` and `c` of the step.
    y: Vec<f32>,
    x: Vec<f32>,
    gates: Vec<f32>,
    h: Vec<f32>,
    c: Vec<f32>,
}

/// What the loop multiplies and adds: `weights` stacked along `K` (`[in,
/// 4H]` and `[H, 4H]` views, or the latter alone), and either the input
/// rows `x` `[T, B, in]` with the `[4H]` bias, or the projection `x`
/// `[T, B, 4H]` (`bias` `None`).
pub(crate) struct Operands<'a> {
    pub weights: &'a [(&'a [f32], &'a Layout)],
    pub x: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub inputs: usize,
}

/// The forward loop over `steps` steps of `b` rows of hidden size `h`,
/// `units` per task ([`units_per_task`]), writing `hs`, `cs` (`[T + 1, B,
/// H]`, the initial state already in place) and `gates` (`[T, B, 4H]`) in
/// the order run, as [`crate::lstm_sequence`] does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lstm_by_units(
    op: &'static str,
    operands: Operands,
    [steps, b, h]: [usize; 3],
    units: usize,
    reverse: bool,
    hs: &mut [f32],
    cs: &mut [f32],
    gates: &mut [f32],
) -> Result<()> {
    let Operands {
        weights,
        x,
        bias,
        inputs,
    } = operands;
    // The input rows and the bias, or a projection.
    let rows = bias.is_some();
    let mut tasks = (0..h)
        .step_by(units)
        .map(|j0| {
            let w = units.min(h - j0);
            let columns: Vec<(usize, usize)> = (0..4).map(|q| (q * h + j0, w)).collect();
            let bias = bias.map_or_else(Vec::new, |bias| {
                columns
                    .iter()
                    .flat_map(|&(s, w)| &bias[s..s + w])
                    .copied()
                    .collect()
            });
            Ok(Task {
                j0,
                w,
                packed: Packed::stacked_columns(op, weights, &columns)?,
                bias,
                y: vec![0.0; b * 4 * w],
                x: vec![0.0; if rows { 0 } else { b * 4 * w }],
                gates: vec![0.0; b * 4 * w],
                h: vec![0.0; b * w],
                c: vec![0.0; b * w],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let bh = b * h;
    let k = inputs + h;
    // `[x | h]` of every row, where the input is projected here.
    let mut xh = vec![0.0; if rows { b * k } else { 0 }];
    // The loop runs on a thread of the pool, so that each step's fork and
    // join stay inside it: forked from outside, every step would park the
    // calling thread until the pool's threads finished, and wake it.
    rayon::scope(|_| {
        for step in 0..steps {
            let t = if reverse { steps - 1 - step } else { step };
            let (h_done, h_next) = hs.split_at_mut((step + 1) * bh);
            let (c_done, c_next) = cs.split_at_mut((step + 1) * bh);
            let (h_prev, c_prev) = (&h_done[step * bh..], &c_done[step * bh..]);
            let (h_out, c_out) = (&mut h_next[..bh], &mut c_next[..bh]);
            let g_out = &mut gates[step * 4 * bh..(step + 1) * 4 * bh];
            let (lhs, lda) = if rows {
                let x_t = &x[t * b * inputs..(t + 1) * b * inputs];
                let rows = xh.chunks_exact_mut(k).zip(x_t.chunks_exact(inputs));
                for ((row, x), h_row) in rows.zip(h_prev.chunks_exact(h)) {
                    row[..inputs].copy_from_slice(x);
                    row[inputs..].copy_from_slice(h_row);
                }
                (&xh[..], k)
            } else {
                (h_prev, h)
            };
            let projection = (!rows).then(|| &x[t * 4 * bh..(t + 1) * 4 * bh]);
            tasks
                .par_iter_mut()
                .for_each(|task| task.step(lhs, lda, projection, c_prev, b, h));
            // Every unit's state, before the next step reads them.
            for task in &tasks {
                let (j0, w) = (task.j0, task.w);
                for r in 0..b {
                    let at = r * h + j0;
                    h_out[at..at + w].copy_from_slice(&task.h[r * w..(r + 1) * w]);
                    c_out[at..at + w].copy_from_slice(&task.c[r * w..(r + 1) * w]);
                    for q in 0..4 {
                        let to = r * 4 * h + q * h + j0;
                        let from = (r * 4 + q) * w;
                        g_out[to..to + w].copy_from_slice(&task.gates[from..from + w]);
                    }
                }
            }
        }
    });
    Ok(())
}

impl Task {
    /// The task's units for one step: the product of `lhs` (`b` rows,
    /// `lda` apart) by its columns, then the gates of each row, from the
    /// bias or the `projection` (`[B, 4H]`) and `c_prev` (`[B, H]`).
    fn step(
        &mut self,
        lhs: &[f32],
        lda: usize,
        projection: Option<&[f32]>,
        c_prev: &[f32],
        b: usize,
        h: usize,
    ) {
        let (j0, w) = (self.j0, self.w);
        self.packed.multiply(lhs, lda, &mut self.y, 4 * w);
        for r in 0..b {
            let row = r * 4 * w..(r + 1) * 4 * w;
            let x = match projection {
                Some(p) => {
                    for q in 0..4 {
                        let from = r * 4 * h + q * h + j0;
                        let to = (r * 4 + q) * w;
                        self.x[to..to + w].copy_from_slice(&p[from..from + w]);
                    }
                    &self.x[row.clone()]
                }
                None => &self.bias[..],
            };
            lstm_row_fast(
                x,
                &self.y[row.clone()],
                &c_prev[r * h + j0..r * h + j0 + w],
                &mut self.h[r * w..(r + 1) * w],
                &mut self.c[r * w..(r + 1) * w],
                &mut self.gates[row],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use lam_core::Backend;

    use super::units_per_task;
    use crate::lstm_sequence::projects_inside;
    use crate::test_util::*;

    /// `(hs, cs, gates)` of one layer, on a pool of `threads` threads,
    /// the input projected inside the loop (`rows`) or given as a
    /// projection; and whether the loop split its steps by units.
    fn layer(threads: usize, rows: bool, [t, b, h, inputs]: [usize; 4]) -> (Vec<Vec<f32>>, bool) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let be = backend();
            let (x, xl) = f32s(&values(t * b * inputs, 21), &[t, b, inputs]);
            let (p, pl) = f32s(&values(t * b * 4 * h, 22), &[t, b, 4 * h]);
            let scaled =
                |n: usize, seed| values(n, seed).iter().map(|v| v * 0.2).collect::<Vec<_>>();
            let (w, wl) = f32s(&scaled(4 * h * inputs, 23), &[4 * h, inputs]);
            let (wh, whl) = f32s(&scaled(4 * h * h, 24), &[4 * h, h]);
            let (bias, bl) = f32s(&values(4 * h, 25), &[4 * h]);
            let (s, sl) = f32s(&values(b * h, 26), &[b, h]);
            let state = ((&s, &sl), (&s, &sl));
            let out = if rows {
                be.fused_lstm_layer(
                    (&x, &xl),
                    (&w, &wl),
                    Some((&bias, &bl)),
                    (&wh, &whl),
                    state,
                    true,
                )
            } else {
                be.fused_lstm_sequence((&p, &pl), (&wh, &whl), state.0, state.1, false)
            };
            let (hs, cs, gates) = out.unwrap().expect("the CPU runs the whole loop");
            let n = (t + 1) * b * h;
            let got = vec![
                read(&hs, &[n]),
                read(&cs, &[n]),
                read(&gates, &[t * b * 4 * h]),
            ];
            (
                got,
                units_per_task(b, h, if rows { inputs } else { 0 }).is_some(),
            )
        })
    }

    #[test]
    fn splitting_steps_by_units_gives_the_bits_of_the_batch_split() {
        // Hidden sizes of 4, 3 and 5 groups (tasks of 2 groups and a last
        // narrower one), one and two rows, both inputs. All but the two
        // runs of two rows on two threads split.
        let mut splits = 0;
        for sizes in [[5, 1, 256, 32], [4, 2, 192, 40], [3, 1, 320, 64]] {
            for rows in [true, false] {
                let (want, split) = layer(1, rows, sizes);
                assert!(!split, "one thread splits nothing");
                for threads in [2, 3, 4] {
                    let (got, split) = layer(threads, rows, sizes);
                    splits += usize::from(split);
                    for (g, w) in got.iter().zip(&want) {
                        let same = g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{sizes:?} rows {rows} on {threads} threads");
                    }
                }
            }
        }
        assert_eq!(splits, 16);
    }

    #[test]
    fn small_steps_and_batches_that_fill_the_pool_keep_the_batch_split() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(units_per_task(1, 256, 32), Some(128));
            assert_eq!(units_per_task(2, 256, 32), None, "two rows, two threads");
            assert_eq!(units_per_task(1, 64, 512), None, "one group");
            assert_eq!(units_per_task(1, 200, 32), None, "not whole groups");
            assert_eq!(
                units_per_task(1, 128, 0),
                None,
                "65 Ki multiply-adds a step"
            );
            // One row projects only narrow inputs inside its loop.
            assert!(projects_inside(1, 32, 256) && !projects_inside(1, 256, 256));
            assert!(projects_inside(32, 256, 256));
        });
    }
}
