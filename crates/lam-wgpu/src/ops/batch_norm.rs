//! Batch normalization in training mode and its gradient (batch_norm.wgsl)
//! on an `[N, C, L]` input: each channel's sums in chunks of whole images
//! (a workgroup per channel and chunk), the chunks' sums per channel, then
//! a thread per element; four dispatches forward (the squares' kernel adds
//! up each channel's mean itself), three backward. The
//! running statistics' update after a batch is one more
//! (batch_norm_running.wgsl, a thread per channel).

use std::sync::Arc;

use lam_core::backend::{BatchNormRunning, View};
use lam_core::{DType, Error, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{
    BATCH_NORM_APPLY, BATCH_NORM_GRAD_INPUT, BATCH_NORM_GRAD_STATS, BATCH_NORM_GRAD_SUMS,
    BATCH_NORM_MEAN, BATCH_NORM_RUNNING, BATCH_NORM_SQUARES, BATCH_NORM_SUMS, BATCH_NORM_VARIANCE,
};
use crate::params::{fold_grid, to_u32, BatchNormParams, BatchNormRunningParams};

/// `(y, stats)` of `src` (`[N, C, L]`): `stats` is `[3, C]`, the mean,
/// biased variance and invstd of each channel.
pub(crate) fn batch_norm(
    gpu: &Arc<Gpu>,
    src: View,
    weight: Option<View>,
    bias: Option<View>,
    eps: f32,
) -> Result<(Storage, Storage)> {
    const OP: &str = "batch_norm";
    let (x, xl) = input(gpu, OP, src, Some(DType::F32))?;
    let mut p = params(OP, xl)?;
    p.eps = eps;
    let c = xl.shape[1];
    let w = weight
        .map(|v| input(gpu, OP, v, Some(DType::F32)))
        .transpose()?;
    let b = bias
        .map(|v| input(gpu, OP, v, Some(DType::F32)))
        .transpose()?;
    p.flags = u32::from(w.is_some()) | (u32::from(b.is_some()) << 1);
    for (k, v) in [(2, &w), (3, &b)] {
        if let Some((_, l)) = v {
            p.views[k] = vector(OP, l, c)?;
        }
    }
    let y = output(gpu, OP, xl.numel(), DType::F32)?;
    let stats = output(gpu, OP, 3 * c, DType::F32)?;
    // Absent operands bind the input, which the kernel then never reads.
    let w_buf = w.map_or(x.buffer(), |(s, _)| s.buffer());
    let b_buf = b.map_or(x.buffer(), |(s, _)| s.buffer());
    if c > 0 {
        let chunks = chunks(&p);
        // Each chunk's sum, then each chunk's sum of squares.
        let partial = output(gpu, OP, (2 * c * chunks).max(1), DType::F32)?;
        let params = bytemuck::bytes_of(&p);
        let (x, stats, partial) = (x.buffer(), stats.buffer(), partial.buffer());
        let per_chunk = fold_grid(OP, (c * chunks) as u64)?;
        let per_channel = grid_for(OP, c)?;
        if chunks > 0 {
            gpu.dispatch(BATCH_NORM_SUMS, &[], params, &[x, partial], per_chunk)?;
            // Also writes the means.
            gpu.dispatch(
                BATCH_NORM_SQUARES,
                &[],
                params,
                &[x, stats, partial],
                per_chunk,
            )?;
        } else {
            gpu.dispatch(
                BATCH_NORM_MEAN,
                &[],
                params,
                &[x, stats, partial],
                per_channel,
            )?;
        }
        gpu.dispatch(
            BATCH_NORM_VARIANCE,
            &[],
            params,
            &[stats, partial],
            per_channel,
        )?;
        if xl.numel() > 0 {
            gpu.dispatch(
                BATCH_NORM_APPLY,
                &[],
                params,
                &[x, w_buf, b_buf, y.buffer(), stats],
                grid_for(OP, xl.numel())?,
            )?;
        }
    }
    Ok((y.into_storage(), stats.into_storage()))
}

/// The input's gradient and the per-channel sums of `grad ⊙ x̂` and `grad`.
pub(crate) fn batch_norm_grad(
    gpu: &Arc<Gpu>,
    grad: View,
    src: View,
    mean: View,
    invstd: View,
    weight: Option<View>,
) -> Result<(Storage, Storage, Storage)> {
    const OP: &str = "batch_norm_grad";
    let (x, xl) = input(gpu, OP, src, Some(DType::F32))?;
    let mut p = params(OP, xl)?;
    let c = xl.shape[1];
    let (g, gl) = input(gpu, OP, grad, Some(DType::F32))?;
    if gl.shape != xl.shape {
        return Err(Error::shape(
            OP,
            format!("a gradient of the input's shape {:?}", xl.shape),
            &gl.shape,
        ));
    }
    p.views[1] = view3(OP, gl)?;
    let (m, ml) = input(gpu, OP, mean, Some(DType::F32))?;
    let (s, sl) = input(gpu, OP, invstd, Some(DType::F32))?;
    p.views[4] = vector(OP, ml, c)?;
    p.views[5] = vector(OP, sl, c)?;
    let w = weight
        .map(|v| input(gpu, OP, v, Some(DType::F32)))
        .transpose()?;
    if let Some((_, l)) = &w {
        p.views[2] = vector(OP, l, c)?;
    }
    p.flags = u32::from(w.is_some());
    let dx = output(gpu, OP, xl.numel(), DType::F32)?;
    let dw = output(gpu, OP, c, DType::F32)?;
    let db = output(gpu, OP, c, DType::F32)?;
    let w_buf = w.map_or(x.buffer(), |(s, _)| s.buffer());
    if c > 0 {
        let chunks = chunks(&p);
        let partial = output(gpu, OP, (2 * c * chunks).max(1), DType::F32)?;
        let params = bytemuck::bytes_of(&p);
        let (x, g, m, s) = (x.buffer(), g.buffer(), m.buffer(), s.buffer());
        let (dw, db, partial) = (dw.buffer(), db.buffer(), partial.buffer());
        if chunks > 0 {
            gpu.dispatch(
                BATCH_NORM_GRAD_SUMS,
                &[],
                params,
                &[x, g, m, partial],
                fold_grid(OP, (c * chunks) as u64)?,
            )?;
        }
        gpu.dispatch(
            BATCH_NORM_GRAD_STATS,
            &[],
            params,
            &[s, dw, db, partial],
            grid_for(OP, c)?,
        )?;
        if xl.numel() > 0 {
            gpu.dispatch(
                BATCH_NORM_GRAD_INPUT,
                &[],
                params,
                &[x, g, w_buf, m, s, dx.buffer(), dw, db],
                grid_for(OP, xl.numel())?,
            )?;
        }
    }
    Ok((dx.into_storage(), dw.into_storage(), db.into_storage()))
}

/// The next running mean and variance (`[C]` each) and, where `count` is
/// given, batch count, from the running ones and the batch's mean and
/// biased variance (`[C]` views); see Backend `fused_batch_norm_running`.
pub(crate) fn batch_norm_running(
    gpu: &Arc<Gpu>,
    u: &BatchNormRunning,
) -> Result<(Storage, Storage, Option<Storage>)> {
    const OP: &str = "batch_norm_running";
    let (count, momentum, correction) = (u.count, u.momentum, u.correction);
    let stats = [u.running_mean, u.running_var, u.mean, u.var];
    let c = stats[0].1.numel();
    let mut p = BatchNormRunningParams {
        c: to_u32(OP, c)?,
        flags: u32::from(count.is_some()),
        keep: 1.0 - momentum,
        momentum,
        correction,
        ..BatchNormRunningParams::default()
    };
    let mut buffers = Vec::with_capacity(8);
    for (k, view) in stats.into_iter().enumerate() {
        let (s, l) = input(gpu, OP, view, Some(DType::F32))?;
        p.views[k] = vector(OP, l, c)?;
        buffers.push(s.buffer());
    }
    let count = count
        .map(|v| input(gpu, OP, v, Some(DType::I32)))
        .transpose()?;
    match count {
        Some((s, l)) => {
            if l.numel() != 1 {
                return Err(Error::shape(OP, "a count of one element", &l.shape));
            }
            p.views[4] = [to_u32(OP, l.offset)?, 0, 0, 0];
            buffers.push(s.buffer());
        }
        // The running mean stands in; the kernel does not read it.
        None => buffers.push(buffers[0]),
    }
    let next_mean = output(gpu, OP, c, DType::F32)?;
    let next_var = output(gpu, OP, c, DType::F32)?;
    // Without a count the kernel writes none, but binding 8 needs a buffer.
    let next_count = output(gpu, OP, 1, DType::I32)?;
    buffers.extend([next_mean.buffer(), next_var.buffer(), next_count.buffer()]);
    gpu.dispatch(
        BATCH_NORM_RUNNING,
        &[],
        bytemuck::bytes_of(&p),
        &buffers,
        grid_for(OP, c.max(1))?,
    )?;
    let next_count = count.map(|_| next_count.into_storage());
    Ok((
        next_mean.into_storage(),
        next_var.into_storage(),
        next_count,
    ))
}

/// Values summed per chunk of a channel, about: whole images up to this
/// many values (or one image, if larger).
const CHUNK_VALUES: usize = 4096;

/// The chunks of a channel's values under `p.chunk_images`.
fn chunks(p: &BatchNormParams) -> usize {
    (p.n as usize).div_ceil(p.chunk_images as usize)
}

/// The sizes of an `[N, C, L]` input, with its view in slot 0.
fn params(op: &'static str, l: &Layout) -> Result<BatchNormParams> {
    let [n, c, len] = l.shape[..] else {
        return Err(Error::shape(op, "an [N, C, L] view", &l.shape));
    };
    // The kernels number a channel's values with one u32.
    to_u32(op, n.saturating_mul(len))?;
    let mut p = BatchNormParams {
        n: to_u32(op, n)?,
        c: to_u32(op, c)?,
        l: to_u32(op, len)?,
        chunk_images: to_u32(op, (CHUNK_VALUES / len.max(1)).clamp(1, n.max(1)))?,
        ..BatchNormParams::default()
    };
    // The element kernels number the output's values with one u32 too.
    to_u32(op, l.numel())?;
    p.views[0] = view3(op, l)?;
    Ok(p)
}

/// An `[N, C, L]` view as the kernel reads it: (offset, strides).
fn view3(op: &'static str, l: &Layout) -> Result<[u32; 4]> {
    Ok([
        to_u32(op, l.offset)?,
        to_u32(op, l.strides[0])?,
        to_u32(op, l.strides[1])?,
        to_u32(op, l.strides[2])?,
    ])
}

/// A `[len]` vector view as the kernel reads it: (offset, stride, 0, 0).
fn vector(op: &'static str, l: &Layout, len: usize) -> Result<[u32; 4]> {
    if l.shape[..] != [len] {
        return Err(Error::shape(op, format!("a vector of {len}"), &l.shape));
    }
    Ok([to_u32(op, l.offset)?, to_u32(op, l.strides[0])?, 0, 0])
}
