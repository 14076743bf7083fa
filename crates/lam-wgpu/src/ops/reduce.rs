//! Reductions over any set of axes (reduce.wgsl).
//!
//! The input's dims split into kept dims (one output row each, row-major)
//! and reduced dims (the row's elements); each set keeps its own strides, so
//! reducing axis 0 of a transposed view reads in place. Short rows take one
//! pass, one workgroup per row. When there are few rows and long ones, each
//! row is cut into chunks of [`CHUNK`] elements: a first pass writes one
//! partial per chunk and later passes reduce the partials, so a full
//! reduction of millions of elements still spreads over many workgroups.
//! Where the output is one contiguous row of columns and the reduced
//! elements lie apart (column sums: a Linear's bias gradient), a thread per
//! column folds a chunk of rows instead ([`Passes::Columns`]): a workgroup per
//! column read each row's element from its own memory segment, several
//! times the bytes it used. Every pass adds in a fixed order, so results
//! are deterministic.

use std::sync::Arc;

use lam_core::backend::{ReduceOp, View};
use lam_core::{DType, Error, Result, Storage};

use super::{input, output};
use crate::context::Gpu;
use crate::kernels::{reduce_code, REDUCE, REDUCE_COLUMNS};
use crate::params::{collapse, dims, fold_grid, to_u32, ReduceParams};
use crate::storage::GpuStorage;

/// Elements per workgroup when rows are split across workgroups.
const CHUNK: usize = 4096;

/// With at least this many rows, one workgroup per row already fills a GPU.
const MANY_ROWS: usize = 1024;

/// Reduces `axes` of an F32 view; the output has the input's shape with
/// those axes set to 1 (F32 values, or I32 indices for arg reductions).
pub(crate) fn reduce(gpu: &Arc<Gpu>, op: ReduceOp, src: View, axes: &[usize]) -> Result<Storage> {
    let (s, l) = input(gpu, "reduce", src, Some(DType::F32))?;
    if let Some(&bad) = axes.iter().find(|&&a| a >= l.rank()) {
        return Err(Error::OutOfRange {
            op: "reduce",
            index: bad as i64,
            size: l.rank(),
        });
    }
    let (kept, red): (Vec<usize>, Vec<usize>) = (0..l.rank()).partition(|d| !axes.contains(d));
    let pick = |ds: &[usize], v: &[usize]| ds.iter().map(|&d| v[d]).collect::<Vec<usize>>();
    let (kept_shape, kept_stride) = collapse(&pick(&kept, &l.shape), &[&pick(&kept, &l.strides)]);
    let (red_shape, red_stride) = collapse(&pick(&red, &l.shape), &[&pick(&red, &l.strides)]);
    let rows: usize = kept_shape.iter().product();
    let len: usize = red_shape.iter().product();
    let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
    let out = output(
        gpu,
        "reduce",
        rows,
        if arg { DType::I32 } else { DType::F32 },
    )?;
    if rows == 0 {
        return Ok(out.into_storage());
    }

    // A contiguous row of columns: a thread per column (module docs).
    let columns = kept_shape.len() == 1 && kept_stride[0][0] == 1 && rows >= MIN_COLUMNS;
    let p = ReduceParams {
        rows: to_u32("reduce", rows)?,
        offset: to_u32("reduce", l.offset)?,
        kept_rank: kept_shape.len() as u32,
        kept_shape: dims("reduce", &kept_shape)?,
        kept_stride: dims("reduce", &kept_stride[0])?,
        ..ReduceParams::default()
    };
    let red = Reduced {
        shape: red_shape,
        stride: red_stride[0].clone(),
        len,
    };
    let passes = if columns {
        Passes::Columns
    } else {
        Passes::Rows
    };
    passes.run(gpu, op, s, p, red, out)
}

/// Fewest output columns for which [`Passes::Columns`] reduces: below this
/// a thread per column leaves most of a workgroup idle.
const MIN_COLUMNS: usize = 32;

/// Rows (reduced elements) each thread of [`Passes::Columns`] folds at least.
const COLUMN_CHUNK: usize = 64;

/// Workgroups [`Passes::Columns`] aims for in its first pass.
const COLUMN_WORKGROUPS: usize = 256;

/// The reduced dims of a view: shape, strides and element count.
struct Reduced {
    shape: Vec<usize>,
    stride: Vec<usize>,
    len: usize,
}

/// How a reduction's passes are laid out over the GPU.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Passes {
    /// A workgroup per chunk of a row (reduce.wgsl's `reduce`); partials
    /// `[rows, chunks]`.
    Rows,
    /// A thread per output column, the kept dim being one contiguous row of
    /// columns (`reduce_columns`); partials `[chunks, columns]`.
    Columns,
}

impl Passes {
    /// Reduces `red` of `src` into `out` (the kept dims and offset in `p`),
    /// pass after pass until one chunk per output is left.
    fn run(
        self,
        gpu: &Arc<Gpu>,
        op: ReduceOp,
        src: &GpuStorage,
        mut p: ReduceParams,
        red: Reduced,
        out: GpuStorage,
    ) -> Result<Storage> {
        let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
        let rows = p.rows as usize;
        let blocks = rows.div_ceil(256);
        let kernel = match self {
            Passes::Rows => REDUCE,
            Passes::Columns => REDUCE_COLUMNS,
        };
        let constants = [("OP", f64::from(reduce_code(op)))];
        let Reduced {
            mut shape,
            mut stride,
            mut len,
        } = red;
        // The current pass's inputs: values, and indices from the previous pass.
        let mut src_val: Option<GpuStorage> = None;
        let mut src_idx: Option<GpuStorage> = None;
        loop {
            let chunk = match self {
                Passes::Rows if rows >= MANY_ROWS => len.max(1),
                Passes::Rows => CHUNK,
                Passes::Columns => len
                    .div_ceil(COLUMN_WORKGROUPS.div_ceil(blocks))
                    .max(COLUMN_CHUNK),
            };
            let chunks = len.div_ceil(chunk).max(1);
            let last = chunks == 1;
            let partials = rows * chunks;
            p.len = to_u32("reduce", len)?;
            p.chunk = to_u32("reduce", chunk)?;
            p.chunks = to_u32("reduce", chunks)?;
            p.red_rank = shape.len() as u32;
            p.red_shape = dims("reduce", &shape)?;
            p.red_stride = dims("reduce", &stride)?;
            p.use_idx = u32::from(src_idx.is_some());

            // Value output: the result itself for a final value reduction,
            // otherwise partials (arg reductions keep values only as partials).
            let val_tmp = if last && !arg {
                None
            } else {
                Some(output(gpu, "reduce", partials, DType::F32)?)
            };
            let idx_tmp = if arg && !last {
                Some(output(gpu, "reduce", partials, DType::I32)?)
            } else {
                None
            };
            let input_val = src_val.as_ref().map_or(src.buffer(), |t| t.buffer());
            // Unused bindings get a harmless stand-in: the value buffer for the
            // index input (both read-only), the scratch buffer for the index output.
            let input_idx = src_idx.as_ref().map_or(input_val, |t| t.buffer());
            let out_val = val_tmp.as_ref().map_or(out.buffer(), |t| t.buffer());
            let out_idx = match (&idx_tmp, arg) {
                (Some(t), _) => t.buffer(),
                (None, true) => out.buffer(),
                (None, false) => &gpu.scratch,
            };
            let workgroups = match self {
                Passes::Rows => partials,
                Passes::Columns => blocks * chunks,
            };
            gpu.dispatch(
                kernel,
                &constants,
                bytemuck::bytes_of(&p),
                &[input_val, input_idx, out_val, out_idx],
                fold_grid("reduce", workgroups as u64)?,
            )?;
            if last {
                return Ok(out.into_storage());
            }
            // Next pass: the partials, as `chunks` elements of each output.
            p.offset = 0;
            shape = vec![chunks];
            len = chunks;
            stride = match self {
                Passes::Rows => {
                    // Rows of `chunks` contiguous partials.
                    p.kept_rank = 1;
                    p.kept_shape = dims("reduce", &[rows])?;
                    p.kept_stride = dims("reduce", &[chunks])?;
                    vec![1]
                }
                // `chunks` rows of the same columns.
                Passes::Columns => vec![rows],
            };
            src_val = val_tmp;
            if arg {
                src_idx = idx_tmp;
            }
        }
    }
}
