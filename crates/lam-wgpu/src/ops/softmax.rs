//! Fused softmax and log-softmax over the last dim (softmax.wgsl): one
//! workgroup per row, one dispatch instead of the five or more of lam-core's
//! composite.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Result, Storage};

use super::{input, output};
use crate::context::Gpu;
use crate::kernels::SOFTMAX;
use crate::params::{fold_grid, row_params};

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
