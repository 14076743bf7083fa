//! Reductions over any set of axes (reduce.wgsl).
//!
//! The input's dims split into kept dims (one output row each, row-major)
//! and reduced dims (the row's elements); each set keeps its own strides, so
//! reducing axis 0 of a transposed view reads in place. Short rows take one
//! pass, one workgroup per row. When there are few rows and long ones, each
//! row is cut into chunks of [`CHUNK`] elements: a first pass writes one
//! partial per chunk and later passes reduce the partials, so a full
//! reduction of millions of elements still spreads over many workgroups.
//! Every pass adds in a fixed order, so results are deterministic.

use std::sync::Arc;

use lam_core::backend::{ReduceOp, View};
use lam_core::{DType, Error, Result, Storage};

use super::{input, output};
use crate::context::Gpu;
use crate::kernels::{reduce_code, REDUCE};
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

    let constants = [("OP", f64::from(reduce_code(op)))];
    let mut p = ReduceParams {
        rows: to_u32("reduce", rows)?,
        offset: to_u32("reduce", l.offset)?,
        kept_rank: kept_shape.len() as u32,
        kept_shape: dims("reduce", &kept_shape)?,
        kept_stride: dims("reduce", &kept_stride[0])?,
        ..ReduceParams::default()
    };
    let (mut red_shape, mut red_stride) = (red_shape, red_stride[0].clone());
    let mut len = len;
    // The current pass's inputs: values, and indices from the previous pass.
    let mut src_val: Option<GpuStorage> = None;
    let mut src_idx: Option<GpuStorage> = None;
    loop {
        let chunk = if rows >= MANY_ROWS { len.max(1) } else { CHUNK };
        let chunks = len.div_ceil(chunk).max(1);
        let last = chunks == 1;
        let partials = rows * chunks;
        p.len = to_u32("reduce", len)?;
        p.chunk = to_u32("reduce", chunk)?;
        p.chunks = to_u32("reduce", chunks)?;
        p.red_rank = red_shape.len() as u32;
        p.red_shape = dims("reduce", &red_shape)?;
        p.red_stride = dims("reduce", &red_stride)?;
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
        let input_val = src_val.as_ref().map_or(s.buffer(), |t| t.buffer());
        // Unused bindings get a harmless stand-in: the value buffer for the
        // index input (both read-only), the scratch buffer for the index output.
        let input_idx = src_idx.as_ref().map_or(input_val, |t| t.buffer());
        let out_val = val_tmp.as_ref().map_or(out.buffer(), |t| t.buffer());
        let out_idx = match (&idx_tmp, arg) {
            (Some(t), _) => t.buffer(),
            (None, true) => out.buffer(),
            (None, false) => &gpu.scratch,
        };
        gpu.dispatch(
            REDUCE,
            &constants,
            bytemuck::bytes_of(&p),
            &[input_val, input_idx, out_val, out_idx],
            fold_grid("reduce", partials as u64)?,
        )?;
        if last {
            return Ok(out.into_storage());
        }
        // Next pass: rows of `chunks` contiguous partials.
        p.offset = 0;
        p.kept_rank = 1;
        p.kept_shape = dims("reduce", &[rows])?;
        p.kept_stride = dims("reduce", &[chunks])?;
        red_shape = vec![chunks];
        red_stride = vec![1];
        len = chunks;
        src_val = val_tmp;
        if arg {
            src_idx = idx_tmp;
        }
    }
}
