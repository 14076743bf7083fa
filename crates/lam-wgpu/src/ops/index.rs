//! index_select, gather and scatter_add along one dim (index.wgsl).
//!
//! Dims are not collapsed here (the indexed dim must stay addressable), so
//! these take views of rank at most 8. scatter_add is deterministic: each
//! output element sums its matching sources in index order. When the index
//! varies only along `dim` (the gradients of index_select and embeddings),
//! it is first inverted into per-row lists (index_scatter.wgsl), so each
//! source element is read once instead of once per output row; otherwise
//! every output element scans the index (index.wgsl).
//!
//! The kernels check every index on the device and record an out-of-range
//! one in the device's fault words, which the next readback reports
//! (`fault.rs`); lam-core's bounds spare no kernel this check.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{BackendStorage, DType, Error, Layout, Result, Storage};

use super::copy::zeroed;
use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{
    Kernel, CSR_COUNT, CSR_FILL, CSR_SCAN, CSR_SORT, GATHER, INDEX_SELECT, SCATTER_ADD,
    SCATTER_ROWS,
};
use crate::params::{dims, to_u32, IndexParams};
use crate::storage::GpuStorage;

/// `out[.., i, ..] = src[.., index[i], ..]` along `dim`; `index` is 1-d I32.
pub(crate) fn index_select(gpu: &Arc<Gpu>, src: View, dim: usize, index: View) -> Result<Storage> {
    let (s, sl) = input(gpu, "index_select", src, None)?;
    let (i, il) = input(gpu, "index_select", index, Some(DType::I32))?;
    check_dim("index_select", dim, sl)?;
    if il.rank() != 1 {
        return Err(Error::RankMismatch {
            op: "index_select",
            expected: "1".into(),
            found: il.rank(),
            shape: il.shape.clone(),
        });
    }
    let mut shape = sl.shape.clone();
    shape[dim] = il.shape[0];
    let p = IndexParams {
        idx_offset: to_u32("index_select", il.offset)?,
        idx_len: to_u32("index_select", il.shape[0])?,
        idx_stride1d: to_u32("index_select", il.strides[0])?,
        src_dim: to_u32("index_select", sl.shape[dim])?,
        ..base_params("index_select", &shape, dim, sl)?
    };
    // One thread per index element too, so each is checked once.
    let threads = il.shape[0];
    run(gpu, INDEX_SELECT, p, &shape, threads, (s, i), s.dtype())
}

/// `out[p] = src[p with p[dim] = index[p]]`; the output has `index`'s shape.
pub(crate) fn gather(gpu: &Arc<Gpu>, src: View, dim: usize, index: View) -> Result<Storage> {
    let (s, sl) = input(gpu, "gather", src, None)?;
    let (i, il) = input(gpu, "gather", index, Some(DType::I32))?;
    check_dim("gather", dim, sl)?;
    check_same_rank("gather", sl, il)?;
    let p = IndexParams {
        idx_offset: to_u32("gather", il.offset)?,
        src_dim: to_u32("gather", sl.shape[dim])?,
        idx_shape: dims("gather", &il.shape)?,
        idx_stride: dims("gather", &il.strides)?,
        ..base_params("gather", &il.shape, dim, sl)?
    };
    run(gpu, GATHER, p, &il.shape, 0, (s, i), s.dtype())
}

/// Zeros of `shape` plus `src` summed into the positions `index` names along
/// `dim`; `index` and `src` share one shape.
pub(crate) fn scatter_add(
    gpu: &Arc<Gpu>,
    shape: &[usize],
    dim: usize,
    index: View,
    src: View,
) -> Result<Storage> {
    let (i, il) = input(gpu, "scatter_add", index, Some(DType::I32))?;
    let (s, sl) = input(gpu, "scatter_add", src, Some(DType::F32))?;
    let out_layout = Layout::contiguous(shape);
    check_dim("scatter_add", dim, &out_layout)?;
    check_same_rank("scatter_add", &out_layout, il)?;
    if il.shape != sl.shape {
        return Err(Error::shape(
            "scatter_add",
            format!("src of index's shape {:?}", il.shape),
            &sl.shape,
        ));
    }
    let p = IndexParams {
        idx_offset: to_u32("scatter_add", il.offset)?,
        idx_len: to_u32("scatter_add", il.shape[dim])?,
        idx_shape: dims("scatter_add", &il.shape)?,
        idx_stride: dims("scatter_add", &il.strides)?,
        ..base_params("scatter_add", shape, dim, sl)?
    };
    let varies_only_along_dim =
        (0..il.rank()).all(|d| d == dim || il.strides[d] == 0 || il.shape[d] == 1);
    if varies_only_along_dim {
        return scatter_rows(gpu, p, shape, dim, i, s);
    }
    // One thread per index element too, so each is checked once (even
    // where the output is empty along dim).
    run(gpu, SCATTER_ADD, p, shape, il.numel(), (s, i), DType::F32)
}

/// scatter_add through per-row lists of the index (see index_scatter.wgsl).
fn scatter_rows(
    gpu: &Arc<Gpu>,
    p: IndexParams,
    shape: &[usize],
    dim: usize,
    index: &GpuStorage,
    src: &GpuStorage,
) -> Result<Storage> {
    const OP: &str = "scatter_add";
    let (rows, len) = (shape[dim], p.idx_len as usize);
    let p = IndexParams {
        src_dim: to_u32(OP, rows)?,
        idx_stride1d: p.idx_stride[dim / 4][dim % 4],
        ..p
    };
    let params = bytemuck::bytes_of(&p);
    let counts = zeroed(gpu, OP, rows + 1, DType::I32)?;
    let offsets = output(gpu, OP, rows + 1, DType::I32)?;
    let list = output(gpu, OP, len, DType::I32)?;
    let (c, o, l) = (counts.buffer(), offsets.buffer(), list.buffer());
    gpu.dispatch(
        CSR_COUNT,
        &[],
        params,
        &[index.buffer(), c, &gpu.range_faults],
        grid_for(OP, len)?,
    )?;
    gpu.dispatch(CSR_SCAN, &[], params, &[c, o], [1, 1, 1])?;
    gpu.dispatch(
        CSR_FILL,
        &[],
        params,
        &[index.buffer(), c, o, l],
        grid_for(OP, len)?,
    )?;
    gpu.dispatch(CSR_SORT, &[], params, &[o, l], grid_for(OP, rows)?)?;
    let n: usize = shape.iter().product();
    let out = output(gpu, OP, n, DType::F32)?;
    gpu.dispatch(
        SCATTER_ROWS,
        &[],
        params,
        &[o, l, src.buffer(), out.buffer()],
        grid_for(OP, n)?,
    )?;
    Ok(out.into_storage())
}

/// Output shape, dim and the src view's offset and strides.
fn base_params(op: &'static str, shape: &[usize], dim: usize, src: &Layout) -> Result<IndexParams> {
    Ok(IndexParams {
        numel: to_u32(op, shape.iter().product())?,
        rank: shape.len() as u32,
        dim: dim as u32,
        src_offset: to_u32(op, src.offset)?,
        shape: dims(op, shape)?,
        src_stride: dims(op, &src.strides)?,
        ..IndexParams::default()
    })
}

/// One dispatch of an index kernel into a fresh output of `shape`, over
/// at least `threads` threads (see index.wgsl).
fn run(
    gpu: &Arc<Gpu>,
    kernel: Kernel,
    p: IndexParams,
    shape: &[usize],
    threads: usize,
    (src, index): (&GpuStorage, &GpuStorage),
    dtype: DType,
) -> Result<Storage> {
    let n: usize = shape.iter().product();
    let out = output(gpu, kernel.entry, n, dtype)?;
    gpu.dispatch(
        kernel,
        &[],
        bytemuck::bytes_of(&p),
        &[
            src.buffer(),
            index.buffer(),
            out.buffer(),
            &gpu.range_faults,
        ],
        grid_for(kernel.entry, n.max(threads))?,
    )?;
    Ok(out.into_storage())
}

fn check_dim(op: &'static str, dim: usize, l: &Layout) -> Result<()> {
    if dim >= l.rank() {
        return Err(Error::OutOfRange {
            op,
            index: dim as i64,
            size: l.rank(),
        });
    }
    Ok(())
}

fn check_same_rank(op: &'static str, a: &Layout, b: &Layout) -> Result<()> {
    if a.rank() != b.rank() {
        return Err(Error::RankMismatch {
            op,
            expected: a.rank().to_string(),
            found: b.rank(),
            shape: b.shape.clone(),
        });
    }
    Ok(())
}
