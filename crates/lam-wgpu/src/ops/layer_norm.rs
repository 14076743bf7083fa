//! Layer normalization and its gradient (layer_norm.wgsl): the forward
//! pass one dispatch (a workgroup per row), the gradient two (the input's,
//! a workgroup per row; the weight's and the bias's, a thread per column).

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Error, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{
    LAYER_NORM, LAYER_NORM_GRAD_INPUT, LAYER_NORM_GRAD_PARAMS, LAYER_NORM_GRAD_PARAMS_SUM,
};
use crate::params::{fold_grid, to_u32, LayerNormParams};
use crate::storage::GpuStorage;

/// Rows per partial sum of the parameters' gradients: `CHUNK_ROWS` in
/// shaders/layer_norm.wgsl.
const CHUNK_ROWS: usize = 64;

/// `(y, mean, rstd)` of each row of `src` (`[rows, cols]`).
pub(crate) fn layer_norm(
    gpu: &Arc<Gpu>,
    src: View,
    weight: Option<View>,
    bias: Option<View>,
    eps: f32,
) -> Result<(Storage, Storage, Storage)> {
    const OP: &str = "layer_norm";
    let (x, xl) = input(gpu, OP, src, Some(DType::F32))?;
    let (rows, cols) = matrix(OP, xl)?;
    let w = weight
        .map(|v| input(gpu, OP, v, Some(DType::F32)))
        .transpose()?;
    let b = bias
        .map(|v| input(gpu, OP, v, Some(DType::F32)))
        .transpose()?;
    let mut p = LayerNormParams {
        rows: to_u32(OP, rows)?,
        cols: to_u32(OP, cols)?,
        eps,
        flags: u32::from(w.is_some()) | (u32::from(b.is_some()) << 1),
        ..LayerNormParams::default()
    };
    p.views[0] = view(OP, xl)?;
    for (k, v) in [(2, &w), (3, &b)] {
        if let Some((_, l)) = v {
            vector(OP, l, cols)?;
            p.views[k] = view(OP, l)?;
        }
    }
    let y = output(gpu, OP, rows * cols, DType::F32)?;
    let mean = output(gpu, OP, rows, DType::F32)?;
    let rstd = output(gpu, OP, rows, DType::F32)?;
    // Absent operands bind the input, which the kernel then never reads.
    let w_buf = w.map_or(x.buffer(), |(s, _)| s.buffer());
    let b_buf = b.map_or(x.buffer(), |(s, _)| s.buffer());
    if rows * cols > 0 {
        gpu.dispatch(
            LAYER_NORM,
            &[],
            bytemuck::bytes_of(&p),
            &[
                x.buffer(),
                w_buf,
                b_buf,
                y.buffer(),
                mean.buffer(),
                rstd.buffer(),
            ],
            fold_grid(OP, rows as u64)?,
        )?;
    }
    Ok((y.into_storage(), mean.into_storage(), rstd.into_storage()))
}

/// The input's gradient and the per-column sums of `grad ⊙ x̂` and `grad`.
pub(crate) fn layer_norm_grad(
    gpu: &Arc<Gpu>,
    grad: View,
    src: View,
    mean: View,
    rstd: View,
    weight: Option<View>,
) -> Result<(Storage, Storage, Storage)> {
    const OP: &str = "layer_norm_grad";
    let (x, xl) = input(gpu, OP, src, Some(DType::F32))?;
    let (rows, cols) = matrix(OP, xl)?;
    let (g, gl) = input(gpu, OP, grad, Some(DType::F32))?;
    if matrix(OP, gl)? != (rows, cols) {
        return Err(Error::shape(
            OP,
            format!("a gradient of shape [{rows}, {cols}]"),
            &gl.shape,
        ));
    }
    let (m, ml) = input(gpu, OP, mean, Some(DType::F32))?;
    let (s, sl) = input(gpu, OP, rstd, Some(DType::F32))?;
    vector(OP, ml, rows)?;
    vector(OP, sl, rows)?;
    let w = weight
        .map(|v| input(gpu, OP, v, Some(DType::F32)))
        .transpose()?;
    let mut p = LayerNormParams {
        rows: to_u32(OP, rows)?,
        cols: to_u32(OP, cols)?,
        flags: u32::from(w.is_some()),
        ..LayerNormParams::default()
    };
    p.views[0] = view(OP, xl)?;
    p.views[1] = view(OP, gl)?;
    p.views[4] = view(OP, ml)?;
    p.views[5] = view(OP, sl)?;
    if let Some((_, l)) = &w {
        vector(OP, l, cols)?;
        p.views[2] = view(OP, l)?;
    }
    let dx = output(gpu, OP, rows * cols, DType::F32)?;
    // With no rows the sums are zero.
    let sums = || -> Result<GpuStorage> {
        if rows == 0 {
            super::copy::zeroed(gpu, OP, cols, DType::F32)
        } else {
            output(gpu, OP, cols, DType::F32)
        }
    };
    let (dw, db) = (sums()?, sums()?);
    let w_buf = w.map_or(x.buffer(), |(s, _)| s.buffer());
    if rows * cols > 0 {
        let params = bytemuck::bytes_of(&p);
        gpu.dispatch(
            LAYER_NORM_GRAD_INPUT,
            &[],
            params,
            &[
                x.buffer(),
                g.buffer(),
                w_buf,
                m.buffer(),
                s.buffer(),
                dx.buffer(),
            ],
            fold_grid(OP, rows as u64)?,
        )?;
        // Partial sums per chunk of CHUNK_ROWS rows, then the chunks'.
        let chunks = rows.div_ceil(CHUNK_ROWS);
        let partial = output(gpu, OP, 2 * chunks * cols, DType::F32)?;
        gpu.dispatch(
            LAYER_NORM_GRAD_PARAMS,
            &[],
            params,
            &[
                x.buffer(),
                g.buffer(),
                m.buffer(),
                s.buffer(),
                partial.buffer(),
            ],
            grid_for(OP, chunks * cols)?,
        )?;
        gpu.dispatch(
            LAYER_NORM_GRAD_PARAMS_SUM,
            &[],
            params,
            &[partial.buffer(), dw.buffer(), db.buffer()],
            grid_for(OP, cols)?,
        )?;
    }
    Ok((dx.into_storage(), dw.into_storage(), db.into_storage()))
}

/// A view as the kernel reads it: (offset, row stride, column stride, 0);
/// a vector's one stride is its row stride.
fn view(op: &'static str, l: &Layout) -> Result<[u32; 4]> {
    let (rs, cs) = match l.strides[..] {
        [rs, cs] => (rs, cs),
        [rs] => (rs, 0),
        _ => (0, 0),
    };
    Ok([to_u32(op, l.offset)?, to_u32(op, rs)?, to_u32(op, cs)?, 0])
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
