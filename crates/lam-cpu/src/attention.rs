//! Fused scaled-dot-product attention (Backend `fused_attention` and
//! `fused_attention_grad`), FlashAttention-2's algorithm on the CPU.
//!
//! Queries are cut into blocks of [`BLOCK_Q`] rows and keys into
//! tiles: one tile holding every key when there are at most
//! [`WHOLE_ROW_KEYS`] (a score row then stays in L1 and the softmax is
//! plain), else tiles of [`BLOCK_K`]. The forward walks the key tiles of one
//! query block keeping, per query row, the running maximum `m` and sum of
//! exponentials `l` (the online softmax), and rescales the output rows it
//! accumulates whenever `m` grows; only one `[rows, keys]` score tile exists
//! at a time, so the memory beyond the inputs and outputs is
//! `O(BLOCK_Q · tile)` per thread — never the `[L, S]` score matrix. Tasks
//! are (batch·head, query block) pairs, run on rayon's pool when the op is
//! big enough.
//!
//! The backward recomputes each score tile from `q`, `k` and the softmax
//! statistics the forward kept (`p = exp(s - m) / l`), and accumulates `dv += pᵀ dO`,
//! `dq += scale · ds k`, `dk += scale · dsᵀ q` with
//! `ds = p ∘ (dO vᵀ - rowsum(dO ∘ out))`; one task per batch·head, which
//! owns that head's `dk` and `dv`.
//!
//! Causal: key tiles wholly above the diagonal are never formed, within a
//! tile each row's exponentials stop at its last visible key, and with
//! AVX-512 each tile product covers only the band of keys its rows see
//! ([`Band`], per block of 4 rows): a causal head does about half the
//! multiply-adds, and a NaN or infinite value of a hidden key cannot
//! reach a row through a product by its zero weight. The tile products run
//! on lam's AVX-512 register tiles (`small.rs`; with `gemm`'s packing and
//! dispatch, a 64-query block of a 32-feature head took twice as long),
//! else through `gemm`; the row loops (maximum, exponentials and their
//! sum, the score gradient) run in the widest vectors the processor has,
//! with `math::exp_f32`. The mask is read through its strides, so a broadcast
//! mask is never materialised.
//!
//! NaN: a NaN score makes its row's maximum NaN, so the whole row's output
//! and gradients are NaN, as the composite softmax gives.
//!
//! `rows.rs` has the online softmax's row loops, `tiles.rs` the tile
//! products and their bands, `small.rs` the AVX-512 kernel, `heads.rs`
//! the operands' rows, read in place when each row's features are
//! contiguous (heads split from `[B, N, H·F]` as views), else gathered.

mod heads;
mod rows;
#[cfg(target_arch = "x86_64")]
mod small;
mod tiles;

use lam_core::backend::{AttentionInputs, View};
use lam_core::{Layout, Result};
use rayon::prelude::*;

use heads::HeadRows;
use rows::{dot, online_softmax_row, weights_row};
use tiles::{product, rows_of, Band, Mat};

use crate::elementwise::vectorised;
use crate::parallel::PAR_MIN_WORK;
use crate::storage::ReadLocks;
use crate::strided::gather;

/// Query rows per block (per task of the forward). Not smaller when
/// causal: at these sizes each tile product's fixed cost outweighs the
/// multiply-adds a finer cut of the triangle would skip.
const BLOCK_Q: usize = 64;
/// Up to this many keys, a score tile spans every key (a query block's
/// scores stay in L1/L2).
const WHOLE_ROW_KEYS: usize = 256;
/// Keys per tile beyond [`WHOLE_ROW_KEYS`]: the online softmax's step.
const BLOCK_K: usize = 64;

const OP: &str = "fused_attention";

/// The output `[B, H, L, Ev]` and the softmax statistics `[B, H, L, 2]`
/// (each row's shift `m` and sum `l`; `(0, 0)` for a row with every key
/// masked), contiguous.
pub(crate) fn attention(inputs: &AttentionInputs<'_>) -> Result<(Vec<f32>, Vec<f32>)> {
    let shape = Shape::of(inputs)?;
    let mut storages = vec![inputs.q.0, inputs.k.0, inputs.v.0];
    storages.extend(inputs.mask.map(|m| m.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let operands = Operands::read(&locks, inputs, &shape)?;
    let Shape { bh, l, ev, .. } = shape;
    let mut out = crate::pool::zeroed(bh * l * ev)?;
    let mut stats = crate::pool::take(bh * l * 2)?;

    // One task per (batch·head, query block), each owning its output rows.
    let mut tasks = Vec::new();
    let (mut out_rest, mut stats_rest) = (&mut out[..], &mut stats[..]);
    for head in 0..bh {
        for q0 in (0..l).step_by(BLOCK_Q) {
            let rows = BLOCK_Q.min(l - q0);
            let (o, rest) = std::mem::take(&mut out_rest).split_at_mut(rows * ev);
            out_rest = rest;
            let (m, rest) = std::mem::take(&mut stats_rest).split_at_mut(rows * 2);
            stats_rest = rest;
            tasks.push((head, q0, o, m));
        }
    }
    let run = |(head, q0, o, m): (usize, usize, &mut [f32], &mut [f32])| {
        operands.forward_block(head, q0, o, m)
    };
    if shape.work() >= PAR_MIN_WORK {
        tasks.into_par_iter().try_for_each(run)?;
    } else {
        tasks.into_iter().try_for_each(run)?;
    }
    Ok((out, stats))
}

/// `dq [B, H, L, E]`, `dk [B, H, S, E]`, `dv [B, H, S, Ev]`, contiguous.
pub(crate) fn attention_grad(
    inputs: &AttentionInputs<'_>,
    out: View,
    stats: View,
    grad: View,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let shape = Shape::of(inputs)?;
    let Shape { bh, l, s, e, ev } = shape;
    out.1.expect_shape(
        OP,
        "output",
        &[inputs.q.1.shape[0], inputs.q.1.shape[1], l, ev],
    )?;
    grad.1.expect_shape(OP, "output gradient", &out.1.shape)?;
    let mut stats_shape = out.1.shape.clone();
    stats_shape[3] = 2;
    stats
        .1
        .expect_shape(OP, "softmax statistics", &stats_shape)?;
    // The mask comes first after the inputs, as in the forward.
    let mut storages = vec![inputs.q.0, inputs.k.0, inputs.v.0];
    storages.extend(inputs.mask.map(|m| m.0));
    let saved_at = storages.len();
    storages.extend([out.0, stats.0, grad.0]);
    let locks = ReadLocks::new(OP, &storages)?;
    let operands = Operands::read(&locks, inputs, &shape)?;
    let stats = gather(locks.f32(saved_at + 1, stats.1)?, stats.1)?;
    let saved = Saved {
        out: HeadRows::read(locks.f32(saved_at, out.1)?, out.1)?,
        stats: &stats,
        grad: HeadRows::read(locks.f32(saved_at + 2, grad.1)?, grad.1)?,
    };
    let mut dq = crate::pool::zeroed(bh * l * e)?;
    let mut dk = crate::pool::zeroed(bh * s * e)?;
    let mut dv = crate::pool::zeroed(bh * s * ev)?;
    // One task per batch·head, owning its rows of dq, dk and dv (some of
    // which may be empty: E = 0 still has a dv).
    let mut tasks = Vec::with_capacity(bh);
    let (mut dq_rest, mut dk_rest, mut dv_rest) = (&mut dq[..], &mut dk[..], &mut dv[..]);
    for head in 0..bh {
        let (a, rest) = std::mem::take(&mut dq_rest).split_at_mut(l * e);
        dq_rest = rest;
        let (b, rest) = std::mem::take(&mut dk_rest).split_at_mut(s * e);
        dk_rest = rest;
        let (c, rest) = std::mem::take(&mut dv_rest).split_at_mut(s * ev);
        dv_rest = rest;
        tasks.push((head, a, b, c));
    }
    type Task<'g> = (usize, &'g mut [f32], &'g mut [f32], &'g mut [f32]);
    let run = |(head, dq, dk, dv): Task<'_>| operands.backward_head(head, &saved, dq, dk, dv);
    if shape.work() >= PAR_MIN_WORK {
        tasks.into_par_iter().try_for_each(run)?;
    } else {
        tasks.into_iter().try_for_each(run)?;
    }
    Ok((dq, dk, dv))
}

/// The sizes of one call: `bh` batch·heads, `l` queries, `s` keys, `e`
/// query/key features, `ev` value features.
#[derive(Debug, Clone, Copy)]
struct Shape {
    bh: usize,
    l: usize,
    s: usize,
    e: usize,
    ev: usize,
}

impl Shape {
    fn of(inputs: &AttentionInputs<'_>) -> Result<Shape> {
        let (b, h, l, s, e, ev) = inputs.sizes();
        inputs
            .q
            .1
            .expect_shape(OP, "queries [B, H, L, E]", &[b, h, l, e])?;
        inputs
            .k
            .1
            .expect_shape(OP, "keys [B, H, S, E]", &[b, h, s, e])?;
        inputs
            .v
            .1
            .expect_shape(OP, "values [B, H, S, Ev]", &[b, h, s, ev])?;
        if let Some(m) = inputs.mask {
            m.1.expect_shape(OP, "a mask [B, H, L, S]", &[b, h, l, s])?;
        }
        Ok(Shape {
            bh: b * h,
            l,
            s,
            e,
            ev,
        })
    }

    /// Multiply-adds, roughly: what decides whether threads pay.
    fn work(&self) -> usize {
        self.bh * self.l * self.s * (self.e + self.ev)
    }
}

/// The inputs as the loops read them: `q [B, H, L, E]`, `k [B, H, S, E]`,
/// `v [B, H, S, Ev]` row by row ([`HeadRows`]), the mask through its own
/// strides.
struct Operands<'a> {
    q: HeadRows<'a>,
    k: HeadRows<'a>,
    v: HeadRows<'a>,
    mask: Option<(&'a [f32], &'a Layout)>,
    heads: usize,
    causal: bool,
    scale: f32,
    shape: Shape,
}

/// What the backward reads besides the inputs: `out` and `grad` `[B, H,
/// L, Ev]`, `stats` `[BH, L, 2]` (contiguous).
struct Saved<'a> {
    out: HeadRows<'a>,
    stats: &'a [f32],
    grad: HeadRows<'a>,
}

impl<'a> Operands<'a> {
    fn read(
        locks: &'a ReadLocks<'a>,
        inputs: &'a AttentionInputs<'a>,
        shape: &Shape,
    ) -> Result<Operands<'a>> {
        let (q, k, v) = (inputs.q.1, inputs.k.1, inputs.v.1);
        let mask = match inputs.mask {
            Some((_, layout)) => Some((locks.f32(3, layout)?, layout)),
            None => None,
        };
        Ok(Operands {
            q: HeadRows::read(locks.f32(0, q)?, q)?,
            k: HeadRows::read(locks.f32(1, k)?, k)?,
            v: HeadRows::read(locks.f32(2, v)?, v)?,
            mask,
            heads: q.shape[1],
            causal: inputs.causal,
            scale: inputs.scale,
            shape: *shape,
        })
    }

    /// The scores of queries `q0..q0 + rows` against keys `k0..k0 + cols`
    /// of `head` into `tile` (`[rows, cols]`, row stride `cols`): `scale ·
    /// q kᵀ`, plus the mask, `-∞` above the diagonal when causal.
    fn scores(
        &self,
        head: usize,
        (q0, rows): (usize, usize),
        (k0, cols): (usize, usize),
        tile: &mut [f32],
    ) -> Result<()> {
        let e = self.shape.e;
        // tile [rows, cols] = scale · q [rows, E] × kᵀ [E, cols].
        product(
            &mut tile[..rows * cols],
            self.q.rows(head, q0),
            self.k.columns(head, k0),
            (rows, cols, e),
            self.scale,
            false,
            self.band(q0, k0, Band::Cols),
        )?;
        if let Some((mask, layout)) = self.mask {
            let st = &layout.strides;
            let base = layout.offset + (head / self.heads) * st[0] + (head % self.heads) * st[1];
            for (i, row) in tile.chunks_mut(cols).take(rows).enumerate() {
                let start = base + (q0 + i) * st[2] + k0 * st[3];
                for (j, x) in row.iter_mut().enumerate() {
                    *x += mask[start + j * st[3]];
                }
            }
        }
        if self.causal {
            for (i, row) in tile.chunks_mut(cols).take(rows).enumerate() {
                // Keys past query q0 + i are hidden.
                let first_hidden = (q0 + i + 1).saturating_sub(k0).min(cols);
                row[first_hidden..].fill(f32::NEG_INFINITY);
            }
        }
        Ok(())
    }

    /// The keys query rows `q0..q0 + rows` may see: all, or up to the
    /// last row's position when causal.
    fn key_end(&self, q0: usize, rows: usize) -> usize {
        if self.causal {
            self.shape.s.min(q0 + rows)
        } else {
            self.shape.s
        }
    }

    /// The part of a tile product of query block `q0` and key tile `k0`
    /// a causal attention needs (`kind` of the offset `q0 - k0`), else all.
    fn band(&self, q0: usize, k0: usize, kind: fn(isize) -> Band) -> Band {
        if self.causal {
            kind(q0 as isize - k0 as isize)
        } else {
            Band::Full
        }
    }

    /// How many of the keys `k0..k0 + cols` query `q` sees: all of them, or
    /// those up to its own position when causal.
    fn visible(&self, q: usize, k0: usize, cols: usize) -> usize {
        if self.causal {
            (q + 1).saturating_sub(k0).min(cols)
        } else {
            cols
        }
    }

    /// Keys per score tile.
    fn block_k(&self) -> usize {
        if self.shape.s <= WHOLE_ROW_KEYS {
            self.shape.s.max(1)
        } else {
            BLOCK_K
        }
    }

    /// One query block's output rows `out` (`[rows, Ev]`, zeroed) and
    /// softmax statistics `stats` (`[rows, 2]`).
    fn forward_block(
        &self,
        head: usize,
        q0: usize,
        out: &mut [f32],
        stats: &mut [f32],
    ) -> Result<()> {
        let ev = self.shape.ev;
        let rows = stats.len() / 2;
        let block_k = self.block_k();
        let mut tile = vec![0.0f32; rows * block_k];
        let mut max = vec![f32::NEG_INFINITY; rows];
        let mut sum = vec![0.0f32; rows];
        let end = self.key_end(q0, rows);
        for k0 in (0..end).step_by(block_k) {
            let cols = block_k.min(end - k0);
            let tile = &mut tile[..rows * cols];
            self.scores(head, (q0, rows), (k0, cols), tile)?;
            vectorised(
                #[inline(always)]
                || {
                    for (i, row) in tile.chunks_mut(cols).enumerate() {
                        let visible = self.visible(q0 + i, k0, cols);
                        let rescale = online_softmax_row(row, visible, &mut max[i], &mut sum[i]);
                        if rescale != 1.0 {
                            out[i * ev..(i + 1) * ev]
                                .iter_mut()
                                .for_each(|o| *o *= rescale);
                        }
                    }
                },
            );
            // out [rows, Ev] += p [rows, cols] × v [cols, Ev].
            product(
                out,
                Mat {
                    data: tile,
                    row: cols,
                    col: 1,
                },
                self.v.rows(head, k0),
                (rows, ev, cols),
                1.0,
                true,
                self.band(q0, k0, Band::TermsUpTo),
            )?;
        }
        for (i, row) in out.chunks_mut(ev.max(1)).take(rows).enumerate() {
            if sum[i] == 0.0 {
                // Every key masked: the output stays 0.
                stats[2 * i..2 * i + 2].fill(0.0);
                continue;
            }
            let inv = 1.0 / sum[i];
            row.iter_mut().for_each(|o| *o *= inv);
            stats[2 * i] = max[i];
            stats[2 * i + 1] = sum[i];
        }
        Ok(())
    }

    /// The gradients of one batch·head: `dq [L, E]`, `dk [S, E]`,
    /// `dv [S, Ev]`, zeroed.
    fn backward_head(
        &self,
        head: usize,
        saved: &Saved<'_>,
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) -> Result<()> {
        let Shape { l, e, ev, .. } = self.shape;
        let (block_q, block_k) = (BLOCK_Q, self.block_k());
        let mut p = vec![0.0f32; block_q * block_k];
        let mut dp = vec![0.0f32; block_q * block_k];
        let mut rowsum = vec![0.0f32; block_q];
        for q0 in (0..l).step_by(block_q) {
            let rows = block_q.min(l - q0);
            let stats = rows_of(saved.stats, head * l + q0, rows, 2);
            let (g, q) = (saved.grad.rows(head, q0), self.q.rows(head, q0));
            // rowsum(dO ∘ out), the softmax's correction term.
            for (i, r) in rowsum.iter_mut().take(rows).enumerate() {
                let gi = saved.grad.row(head, q0 + i, ev)?;
                let oi = saved.out.row(head, q0 + i, ev)?;
                vectorised(
                    #[inline(always)]
                    || *r = dot(gi, oi),
                );
            }
            let dq_rows = &mut dq[q0 * e..(q0 + rows) * e];
            let end = self.key_end(q0, rows);
            for k0 in (0..end).step_by(block_k) {
                let cols = block_k.min(end - k0);
                let (p, dp) = (&mut p[..rows * cols], &mut dp[..rows * cols]);
                self.scores(head, (q0, rows), (k0, cols), p)?;
                vectorised(
                    #[inline(always)]
                    || {
                        for (i, (row, st)) in p.chunks_mut(cols).zip(stats.chunks(2)).enumerate() {
                            let visible = self.visible(q0 + i, k0, cols);
                            weights_row(row, visible, st[0], st[1]);
                        }
                    },
                );
                // dv [cols, Ev] += pᵀ [cols, rows] × dO [rows, Ev].
                product(
                    &mut dv[k0 * ev..(k0 + cols) * ev],
                    Mat {
                        data: p,
                        row: 1,
                        col: cols,
                    },
                    g,
                    (cols, ev, rows),
                    1.0,
                    true,
                    self.band(q0, k0, Band::TermsFrom),
                )?;
                // dp [rows, cols] = dO [rows, Ev] × vᵀ [Ev, cols].
                product(
                    dp,
                    g,
                    self.v.columns(head, k0),
                    (rows, cols, ev),
                    1.0,
                    false,
                    self.band(q0, k0, Band::Cols),
                )?;
                // ds = p ∘ (dp - rowsum), kept in dp; 0 for hidden keys,
                // whose dp the banded product may not have written.
                vectorised(
                    #[inline(always)]
                    || {
                        for (i, ((prow, dprow), &r)) in p
                            .chunks(cols)
                            .zip(dp.chunks_mut(cols))
                            .zip(&rowsum)
                            .enumerate()
                        {
                            let (seen, hidden) = dprow.split_at_mut(self.visible(q0 + i, k0, cols));
                            for (d, &pv) in seen.iter_mut().zip(prow) {
                                *d = pv * (*d - r);
                            }
                            hidden.fill(0.0);
                        }
                    },
                );
                // dq [rows, E] += scale · ds [rows, cols] × k [cols, E].
                product(
                    dq_rows,
                    Mat {
                        data: dp,
                        row: cols,
                        col: 1,
                    },
                    self.k.rows(head, k0),
                    (rows, e, cols),
                    self.scale,
                    true,
                    self.band(q0, k0, Band::TermsUpTo),
                )?;
                // dk [cols, E] += scale · dsᵀ [cols, rows] × q [rows, E].
                product(
                    &mut dk[k0 * e..(k0 + cols) * e],
                    Mat {
                        data: dp,
                        row: 1,
                        col: cols,
                    },
                    q,
                    (cols, e, rows),
                    self.scale,
                    true,
                    self.band(q0, k0, Band::TermsFrom),
                )?;
            }
        }
        Ok(())
    }
}
