//! Batched matrix product through the `gemm` crate.
//!
//! `gemm` takes a row stride and a column stride for each operand, so any
//! view — transposed (strides swapped), narrowed, or broadcast over the
//! batch (batch stride 0) — is passed as it is, never copied. The batch is a
//! loop over `B` offsetting each operand by its batch stride. Big products
//! of up to a thousand rows run one band of rows per thread; bigger ones
//! let `gemm` split one matrix across rayon's threads; many small ones are
//! spread over the batch instead; tiny ones stay on the calling thread.

use gemm::{gemm, Parallelism};
use lam_core::backend::{LinearActivation, View};
use lam_core::{Error, Layout, Result};
use rayon::prelude::*;

use crate::storage::ReadLocks;
use crate::strided::gather;
use crate::transpose::{transpose_into, transpose_into_parallel};

/// Multiply-adds (`m * n * k`) from which a product is worth threads.
/// Measured on 2 AVX-512 cores (best of 6): up to 160³ one thread is
/// faster, from 192³ two threads win.
const PAR_MIN_MACS: usize = 192 * 192 * 192;

/// Products of up to this many rows run one row at a time (see `product`).
const ROW_BY_ROW_MAX_M: usize = 8;

/// From this many rows a column-major right operand is first copied
/// row-major (see `product`).
const COPY_B_MIN_M: usize = 256;

/// A column-major right operand of at most this many columns is copied
/// row-major from [`COPY_B_NARROW_MIN_MK`] (see `product`).
const COPY_B_NARROW_N: usize = 64;

/// `m * k` from which a narrow column-major right operand is copied.
const COPY_B_NARROW_MIN_MK: usize = 16 * 1024;

/// Products summing at most this many terms per output are multiplied in
/// bands of rows (see `product`): an LSTM's input projection of 32
/// features, `[2048, 32] × [32, 1024]`, took 1.3 ms as one call.
const FEW_TERMS: usize = 64;

/// Parallel products of up to this many rows run one band of rows per
/// thread, each band a single-threaded gemm call, instead of letting gemm
/// split the product. Measured on 2 AVX-512 cores (best of 7, gemm's split
/// against two bands): `[128, 784] × [784, 512]` with a column-major right
/// operand 756–892 µs against 593–677, a weight gradient's `[128, 1024] ×
/// [1024, 512]` with a column-major left one 787–837 against 708–711,
/// `[512, 2048] × [2048, 1024]` 11.5–12.1 ms against 10.7–11.2; row-major
/// products of 128 to 2048 rows took the same time either way.
const BANDS_MAX_M: usize = 1024;

/// Output columns per band at least, where a product of fewer rows than
/// bands of [`BAND_MIN_ROWS`] is multiplied transposed (`bᵀ aᵀ`) in
/// parallel: bands of the transposed output's rows as for bands of rows
/// ([`BANDS_MAX_M`]). `[32, 784] × [784, 512]` with a column-major right
/// operand took 201 µs split by gemm, 136 µs in two bands; `[128, 128] ×
/// [128, 384]` 84 and 69 µs.
const SWAP_BAND: usize = 16;

/// Rows per band at least (see [`BANDS_MAX_M`]).
const BAND_MIN_ROWS: usize = 64;

/// Output elements per task of a parallel bias fill.
const CHUNK_ELEMENTS: usize = 16 * 1024;

/// Output elements per band of rows (256 KiB, within L2).
const BAND_ELEMENTS: usize = 64 * 1024;

/// `[B, M, K] x [B, K, N] -> [B, M, N]` (contiguous).
pub(crate) fn matmul(lhs: View, rhs: View) -> Result<Vec<f32>> {
    product(lhs, rhs, None, LinearActivation::Identity)
}

/// `act(input × weight + bias)` for `input [M, K]`, `weight [K, N]` and
/// `bias [N]`: the output rows start as copies of the bias and gemm adds the
/// product onto them (`read_dst`), so the bias costs no extra pass; the
/// activation is applied to each batch's block right after gemm writes it,
/// while it is still in cache.
pub(crate) fn linear(
    input: View,
    weight: View,
    bias: Option<View>,
    act: LinearActivation,
) -> Result<Vec<f32>> {
    let as3 = |l: &Layout| Layout {
        shape: [&[1], &l.shape[..]].concat(),
        strides: [&[0], &l.strides[..]].concat(),
        offset: l.offset,
    };
    input.1.expect_rank("fused_linear", "input [M, K]", 2)?;
    weight.1.expect_rank("fused_linear", "weight [K, N]", 2)?;
    let (li, lw) = (as3(input.1), as3(weight.1));
    product((input.0, &li), (weight.0, &lw), bias, act)
}

/// The batched product with an optional bias row added to every output row
/// and an activation.
fn product(lhs: View, rhs: View, bias: Option<View>, act: LinearActivation) -> Result<Vec<f32>> {
    let mut inputs = vec![lhs.0, rhs.0];
    inputs.extend(bias.map(|b| b.0));
    let locks = ReadLocks::new("matmul", &inputs)?;
    let (la, lb) = (lhs.1, rhs.1);
    let [batch, m, k] = dims3(la)?;
    let [batch_b, k_b, n] = dims3(lb)?;
    if batch != batch_b || k != k_b {
        return Err(Error::shape(
            "matmul",
            format!("[{batch}, {k}, N] to multiply [{batch}, {m}, {k}]"),
            &lb.shape,
        ));
    }
    // Bounds-checked: every element the views name lies inside its buffer,
    // which is what makes the unsafe call below sound.
    let a = locks.f32(0, la)?;
    let b = locks.f32(1, lb)?;
    let bias_row = match bias {
        None => None,
        Some((_, l)) => {
            if l.shape != [n] {
                return Err(Error::shape(
                    "fused_linear",
                    format!("a bias of shape [{n}]"),
                    &l.shape,
                ));
            }
            Some(gather(locks.f32(2, l)?, l)?)
        }
    };
    if batch * m * n == 0 {
        return Ok(Vec::new());
    }
    // Every element is written: gemm overwrites `dst` (read_dst = false)
    // unless `block` first filled it with the bias, just before multiplying
    // (so on the thread and in the cache that then adds onto it).
    let mut out = crate::pool::take(batch * m * n)?;
    if k == 0 {
        // An empty sum is zero: the output is the bias, or zero.
        match &bias_row {
            Some(row) => out.chunks_mut(n).for_each(|r| r.copy_from_slice(row)),
            None => out.fill(0.0),
        }
    }
    let read_dst = bias_row.is_some();
    let [a_rows, a_cols] = matrix_strides(la);
    let [b_rows, b_cols] = matrix_strides(lb);

    // A few rows times a column-major right operand (a Linear's transposed
    // weight) are multiplied one row at a time: for several rows gemm packs
    // all of `b` on every call, which costs more than the product, but a
    // single row reads it in place. Measured on 2 AVX-512 cores, 2 rows by
    // a 512×512 weight took 192 µs packed and 20 µs row by row (1024×1024:
    // 1.7 ms and 87 µs). Row-major operands (convolution columns) keep one
    // call: row by row was slower there.
    let column_major_b = b_rows.unsigned_abs() <= 1;
    let rows_at_once = if m <= ROW_BY_ROW_MAX_M && column_major_b {
        1
    } else {
        m
    };
    // More rows times a column-major operand are multiplied transposed,
    // `outᵀ = bᵀ aᵀ` into a row-major buffer, then copied back transposed:
    // gemm is 10–20× slower on a column-major right operand. Measured on 2
    // AVX-512 cores, 16 rows by a 512×512 Linear weight: 620–1140 µs as
    // `a b`, 64–70 µs as `bᵀ aᵀ` (a row-major copy of the weight: 38 µs,
    // plus the copy itself, 200 µs); the output's transpose is small.
    // Many rows amortise a row-major copy of a column-major `b` (K·N
    // element moves against M·K·N multiply-adds), and then the plain call
    // is fastest: a Linear's `[1024, 128] × [128, 384]` took 790 µs on the
    // transposed weight, 294 µs with the copy. Below COPY_B_MIN_M rows the
    // copy costs more than it saves (an MLP's `[128, 784] × [784, 512]` and
    // a LeNet's 64-row layers ran 10–35% slower with it), and `swap` is used
    // — except for narrow outputs: `swap` then multiplies by `aᵀ`, a
    // column-major operand of M·K elements, into only N rows, and the copy
    // is only K·N moves. A classifier's head, `[128, 256] × [256, 10]`,
    // took 35 µs swapped and 13 µs on a copy, `[64, 512] × [512, 64]` 103
    // and 52 µs; below the `m · k` bound the copy does not pay
    // (`[16, 512] × [512, 10]`: 3.3 and 7.7 µs).
    let narrow = n <= COPY_B_NARROW_N && m * k >= COPY_B_NARROW_MIN_MK;
    let b_copy = if column_major_b
        && rows_at_once > 1
        && (m >= COPY_B_MIN_M || narrow)
        && (batch == 1 || lb.strides[0] == 0)
    {
        let mut t = crate::pool::take(k * n)?;
        let (rs, cs) = (b_rows.unsigned_abs(), b_cols.unsigned_abs());
        if rs == 1 && cs == k {
            // A contiguous column-major `b` is a row-major `[N, K]`.
            transpose_into_parallel(&b[lb.offset..lb.offset + n * k], n, k, &mut t);
        } else {
            const BLOCK: usize = 32;
            for c0 in (0..n).step_by(BLOCK) {
                for q0 in (0..k).step_by(BLOCK) {
                    for c in c0..(c0 + BLOCK).min(n) {
                        for q in q0..(q0 + BLOCK).min(k) {
                            t[q * n + c] = b[lb.offset + q * rs + c * cs];
                        }
                    }
                }
            }
        }
        Some(t)
    } else {
        None
    };
    let (b, b_offset, b_batch_stride, b_rows, b_cols) = match &b_copy {
        Some(t) => (&t[..], 0, 0, n as isize, 1),
        None => (b, lb.offset, lb.strides[0], b_rows, b_cols),
    };
    let swap = column_major_b && rows_at_once > 1 && b_copy.is_none();
    let threads = rayon::current_num_threads();
    // The first allocation failure inside a block (blocks may run on
    // other threads), returned once all have run.
    let failure = std::sync::OnceLock::new();

    // out[i] [M, N] (+)= a[i] [M, K] x b[i] [K, N], then the activation,
    // for the rows of block i from `row0` that `dst` holds.
    let block = |i: usize, row0: usize, dst: &mut [f32], parallelism: Parallelism| {
        if k > 0 {
            let b_start = b_offset + i * b_batch_stride;
            for (r, dst) in dst.chunks_mut(rows_at_once * n).enumerate() {
                let rows = dst.len() / n;
                let first = row0 + r * rows_at_once;
                let a_start = la.offset + i * la.strides[0] + first * la.strides[1];
                if let (Some(row), false) = (&bias_row, swap) {
                    if matches!(parallelism, Parallelism::None) {
                        dst.chunks_mut(n).for_each(|r| r.copy_from_slice(row));
                    } else {
                        // gemm splits this call across the pool: so is the fill.
                        dst.par_chunks_mut(n)
                            .with_min_len(CHUNK_ELEMENTS.div_ceil(n))
                            .for_each(|r| r.copy_from_slice(row));
                    }
                }
                // SAFETY: `dst` holds exactly rows * n elements written with
                // row stride n and column stride 1: rows from `first` (row0
                // + r * rows_at_once, below m) of block i. By `check_bounds`, for every
                // p < m, q < k, c < n the offsets (la.offset + i *
                // la.strides[0]) + p*a_rows + q*a_cols and b_start +
                // q*b_rows + c*b_cols are < the lengths of `a` and `b`, and
                // a_start is that first offset at p = first.
                // Strides of dims longer than 1 are below the buffer length,
                // so fit in isize; `matrix_strides` zeroes the others. gemm
                // computes dst = alpha * dst + beta * a * b, reading `dst`
                // only when `read_dst` (then it holds the bias rows). A
                // row-major copy of `b` (`b_copy`) holds K·N elements with
                // strides (N, 1) and batch stride 0, all in bounds.
                //
                // Transposed (`swap`), gemm writes `t = bᵀ aᵀ` ([N, rows],
                // row-major, holding the bias columns when `read_dst`) from
                // the same operand offsets and strides, swapped; `t` is then
                // copied into `dst` transposed. Split into bands, band j
                // writes its own rows c0 = j * band.. of `t` (disjoint
                // chunks) from `b`'s columns c0.. (c0 < n), in bounds by the
                // same argument.
                unsafe {
                    if swap {
                        let mut t = match crate::pool::take(n * rows) {
                            Ok(t) => t,
                            Err(e) => {
                                failure.get_or_init(|| e);
                                return;
                            }
                        };
                        if let Some(bias) = &bias_row {
                            for (t_row, &v) in t.chunks_mut(rows).zip(bias.iter()) {
                                t_row.fill(v);
                            }
                        }
                        // `tb`: rows `c0..` of `t`, columns `c0..` of `b`.
                        let multiply = |tb: &mut [f32], c0: usize, parallelism| {
                            gemm(
                                tb.len() / rows,
                                rows,
                                k,
                                tb.as_mut_ptr(),
                                1,
                                rows as isize,
                                read_dst,
                                b.as_ptr().add(b_start).offset(c0 as isize * b_cols),
                                b_rows,
                                b_cols,
                                a.as_ptr().add(a_start),
                                a_rows,
                                a_cols,
                                if read_dst { 1.0 } else { 0.0 },
                                1.0,
                                false,
                                false,
                                false,
                                parallelism,
                            )
                        };
                        if matches!(parallelism, Parallelism::Rayon(_)) && n >= 2 * SWAP_BAND {
                            // One band of `t`'s rows (the output's columns)
                            // per thread, as for bands of rows below.
                            let band = n.div_ceil(threads).next_multiple_of(SWAP_BAND);
                            t.par_chunks_mut(band * rows)
                                .enumerate()
                                .for_each(|(j, tb)| multiply(tb, j * band, Parallelism::None));
                        } else {
                            multiply(&mut t, 0, parallelism);
                        }
                        transpose_into(&t, n, rows, dst);
                        crate::pool::give(t);
                    } else {
                        gemm(
                            rows,
                            n,
                            k,
                            dst.as_mut_ptr(),
                            1,
                            n as isize,
                            read_dst,
                            a.as_ptr().add(a_start),
                            a_cols,
                            a_rows,
                            b.as_ptr().add(b_start),
                            b_cols,
                            b_rows,
                            if read_dst { 1.0 } else { 0.0 },
                            1.0,
                            false,
                            false,
                            false,
                            parallelism,
                        )
                    }
                }
            }
        }
        if act == LinearActivation::Relu {
            // `x < 0` rather than `x > 0` so NaN propagates, as in PyTorch.
            // A select, every element stored, so that it compiles to vector
            // compares and blends: written as a conditional store it stayed
            // a scalar branch per element, 16% of an MLP's forward pass.
            crate::elementwise::vectorised(|| {
                dst.iter_mut()
                    .for_each(|x| *x = if *x < 0.0 { 0.0 } else { *x })
            });
        }
    };
    let macs = m * n * k;
    if macs < PAR_MIN_MACS && batch * macs >= PAR_MIN_MACS {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, dst)| block(i, 0, dst, Parallelism::None));
    } else if k <= FEW_TERMS && macs >= PAR_MIN_MACS && rows_at_once == m && !swap {
        // Few terms per output: writing the output is most of the work.
        // Bands of rows, each filled with the bias and multiplied on one
        // thread while it is in cache, write it once; one call over all
        // rows filled it first and had gemm read it back.
        let band = (BAND_ELEMENTS / n).max(1);
        for (i, item) in out.chunks_mut(m * n).enumerate() {
            item.par_chunks_mut(band * n)
                .enumerate()
                .for_each(|(c, dst)| block(i, c * band, dst, Parallelism::None));
        }
    } else if macs >= PAR_MIN_MACS && m <= BANDS_MAX_M && m >= threads * BAND_MIN_ROWS {
        // One band of rows per thread, each multiplied on its own: gemm's
        // own split of a product of few rows synchronises its threads more
        // than it multiplies (see BANDS_MAX_M).
        let band = m.div_ceil(threads);
        for (i, item) in out.chunks_mut(m * n).enumerate() {
            item.par_chunks_mut(band * n)
                .enumerate()
                .for_each(|(c, dst)| block(i, c * band, dst, Parallelism::None));
        }
    } else {
        let parallelism = if macs >= PAR_MIN_MACS {
            Parallelism::Rayon(0)
        } else {
            Parallelism::None
        };
        out.chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, dst)| block(i, 0, dst, parallelism));
    }
    if let Some(t) = b_copy {
        crate::pool::give(t);
    }
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    Ok(out)
}

fn dims3(layout: &Layout) -> Result<[usize; 3]> {
    match layout.shape[..] {
        [b, r, c] => Ok([b, r, c]),
        _ => Err(Error::RankMismatch {
            op: "matmul",
            expected: "3 ([batch, rows, cols])".to_string(),
            found: layout.rank(),
            shape: layout.shape.clone(),
        }),
    }
}

/// Row and column strides as gemm wants them; a dim of size 1 gets stride
/// 0, since its stride is never used and may be arbitrarily large.
fn matrix_strides(layout: &Layout) -> [isize; 2] {
    let s = |d: usize| {
        if layout.shape[d] <= 1 {
            0
        } else {
            layout.strides[d] as isize
        }
    };
    [s(1), s(2)]
}

#[cfg(test)]
mod tests;
