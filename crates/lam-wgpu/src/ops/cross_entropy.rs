//! Fused cross-entropy against class indices (cross_entropy.wgsl): each
//! row's loss and the gradient of their mean in one pass over the logits,
//! one workgroup per row. F16 logits are read as halves (the row kernels'
//! `HALF` constant), widened exactly, so they need no F32 copy. The kernel
//! checks each target and records one outside the classes for the next
//! readback (`fault.rs`).

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Error, Result, Storage};

use super::{input, output};
use crate::context::Gpu;
use crate::kernels::CROSS_ENTROPY;
use crate::params::{fold_grid, row_params, to_u32, RowParams};

/// Per-row losses `[rows]` and the gradient of their mean, `(softmax -
/// onehot) / rows`, of F32 or F16 logits `[rows, cols]` against I32
/// targets `[rows]`, both F32.
pub(crate) fn cross_entropy(
    gpu: &Arc<Gpu>,
    logits: View,
    targets: View,
) -> Result<Option<(Storage, Storage)>> {
    let half = logits.0.dtype() == DType::F16;
    let want = if half { DType::F16 } else { DType::F32 };
    let (s, l) = input(gpu, "cross_entropy", logits, Some(want))?;
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
            &[("HALF", if half { 1.0 } else { 0.0 })],
            bytemuck::bytes_of(&p),
            &[
                s.buffer(),
                t.buffer(),
                grad.buffer(),
                loss.buffer(),
                &gpu.range_faults,
            ],
            fold_grid("cross_entropy", rows as u64)?,
        )?;
    }
    Ok(Some((loss.into_storage(), grad.into_storage())))
}
