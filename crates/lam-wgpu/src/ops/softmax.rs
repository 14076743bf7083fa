//! Fused kernels that replace lam-core's composites: softmax, log-softmax
//! and cross-entropy (softmax.wgsl, one workgroup per row, one dispatch
//! instead of five or more), and the Adam/AdamW step (adam.wgsl, one
//! dispatch per parameter instead of a dozen elementwise ops).

use std::sync::Arc;

use lam_core::backend::{AdamStep, View};
use lam_core::{BackendStorage, DType, Error, Layout, Result, Storage};

use super::{input, output};
use crate::context::Gpu;
use crate::kernels::{ADAM, CROSS_ENTROPY, SOFTMAX};
use crate::params::{fold_grid, to_u32, AdamParams, RowParams};
use crate::storage::GpuStorage;

/// Softmax (or log-softmax) over the last dim of a `[rows, cols]` view;
/// `None` for other ranks, which lam-core then composes.
pub(crate) fn softmax(gpu: &Arc<Gpu>, src: View, log: bool) -> Result<Option<Storage>> {
    let (s, l) = input(gpu, "softmax", src, Some(DType::F32))?;
    if l.rank() != 2 {
        return Ok(None);
    }
    let (rows, cols) = (l.shape[0], l.shape[1]);
    let out = output(gpu, "softmax", rows * cols, DType::F32)?;
    if rows * cols > 0 {
        let p = row_params("softmax", l)?;
        gpu.dispatch(
            SOFTMAX,
            &[("LOG", if log { 1.0 } else { 0.0 })],
            bytemuck::bytes_of(&p),
            &[s.buffer(), out.buffer()],
            fold_grid("softmax", rows as u64)?,
        )?;
    }
    Ok(Some(out.into_storage()))
}

/// Per-row losses `[rows]` and the gradient of their mean, `(softmax -
/// onehot) / rows`, of logits `[rows, cols]` against I32 targets `[rows]`.
pub(crate) fn cross_entropy(
    gpu: &Arc<Gpu>,
    logits: View,
    targets: View,
) -> Result<Option<(Storage, Storage)>> {
    let (s, l) = input(gpu, "cross_entropy", logits, Some(DType::F32))?;
    let (t, tl) = input(gpu, "cross_entropy", targets, Some(DType::I32))?;
    if l.rank() != 2 || tl.rank() != 1 {
        return Ok(None);
    }
    let (rows, cols) = (l.shape[0], l.shape[1]);
    if tl.shape[0] != rows {
        return Err(Error::shape(
            "cross_entropy",
            format!("targets of shape [{rows}]"),
            &tl.shape,
        ));
    }
    let loss = output(gpu, "cross_entropy", rows, DType::F32)?;
    let grad = output(gpu, "cross_entropy", rows * cols, DType::F32)?;
    if rows * cols > 0 {
        let p = RowParams {
            t_offset: to_u32("cross_entropy", tl.offset)?,
            t_stride: to_u32("cross_entropy", tl.strides[0])?,
            inv_rows: 1.0 / rows as f32,
            ..row_params("cross_entropy", l)?
        };
        gpu.dispatch(
            CROSS_ENTROPY,
            &[],
            bytemuck::bytes_of(&p),
            &[s.buffer(), t.buffer(), grad.buffer(), loss.buffer()],
            fold_grid("cross_entropy", rows as u64)?,
        )?;
    }
    Ok(Some((loss.into_storage(), grad.into_storage())))
}

/// One Adam/AdamW step in place. Returns `false` (not fused) when the
/// buffers are not four distinct equal-length F32 buffers of this device.
pub(crate) fn adam(
    gpu: &Arc<Gpu>,
    param: &Storage,
    grad: &Storage,
    m: &Storage,
    v: &Storage,
    step: &AdamStep,
) -> Result<bool> {
    let bufs = [param, grad, m, v].map(|s| GpuStorage::of(s, gpu, "adam"));
    let [param, grad, m, v] = match bufs {
        [Ok(p), Ok(g), Ok(m), Ok(v)] => [p, g, m, v],
        _ => return Ok(false),
    };
    let all = [param, grad, m, v];
    let n = param.len();
    let distinct = (0..4).all(|i| (i + 1..4).all(|j| !std::ptr::eq(all[i], all[j])));
    if !distinct || all.iter().any(|s| s.len() != n || s.dtype() != DType::F32) {
        return Ok(false);
    }
    if n == 0 {
        return Ok(true);
    }
    // Bias corrections in f64 once per step, as PyTorch computes them on the host.
    let t = i32::try_from(step.step.max(1)).unwrap_or(i32::MAX);
    let bc1 = 1.0 - f64::from(step.beta1).powi(t);
    let bc2 = 1.0 - f64::from(step.beta2).powi(t);
    let p = AdamParams {
        numel: to_u32("adam", n)?,
        decoupled: u32::from(step.decoupled),
        lr: step.lr,
        beta1: step.beta1,
        beta2: step.beta2,
        eps: step.eps,
        weight_decay: step.weight_decay,
        step_size: (f64::from(step.lr) / bc1) as f32,
        bc2_sqrt: bc2.sqrt() as f32,
        pad: [0; 3],
    };
    gpu.dispatch(
        ADAM,
        &[],
        bytemuck::bytes_of(&p),
        &[grad.buffer(), param.buffer(), m.buffer(), v.buffer()],
        super::grid_for("adam", n)?,
    )?;
    Ok(true)
}

fn row_params(op: &'static str, l: &Layout) -> Result<RowParams> {
    Ok(RowParams {
        rows: to_u32(op, l.shape[0])?,
        cols: to_u32(op, l.shape[1])?,
        offset: to_u32(op, l.offset)?,
        row_stride: to_u32(op, l.strides[0])?,
        col_stride: to_u32(op, l.strides[1])?,
        ..RowParams::default()
    })
}
