//! Loss scaling's unscale (unscale.wgsl, Backend `fused_unscale`): one
//! dispatch per gradient, every one OR-ing into the caller's flag, where
//! composing it took five per gradient and a sum of their counts.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{BackendStorage, DType, Error, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::UNSCALE;
use crate::params::{elementwise, EwParams};
use crate::storage::GpuStorage;

/// The F32 gradient view times `inv_scale`, as a contiguous buffer; the
/// bits of 1.0 are OR-ed into `found` (an F32 `[1]`, zero or 1.0 before)
/// where any value is infinite or NaN.
pub(crate) fn unscale(
    gpu: &Arc<Gpu>,
    grad: View,
    inv_scale: f32,
    found: &Storage,
) -> Result<Storage> {
    const OP: &str = "fused_unscale";
    let (s, l) = input(gpu, OP, grad, Some(DType::F32))?;
    let flag = GpuStorage::of(found, gpu, OP)?;
    if flag.dtype() != DType::F32 || flag.len() == 0 || std::ptr::eq(flag, s) {
        return Err(Error::invalid(
            OP,
            "the flag must be an F32 buffer of its own, of at least one element",
        ));
    }
    let n = l.numel();
    let scaled = output(gpu, OP, n, DType::F32)?;
    if n > 0 {
        let p = EwParams {
            alpha: inv_scale,
            ..elementwise(OP, &l.shape, &[l])?
        };
        gpu.dispatch(
            UNSCALE,
            &[],
            bytemuck::bytes_of(&p),
            &[s.buffer(), scaled.buffer(), flag.buffer()],
            grid_for(OP, n)?,
        )?;
    }
    Ok(scaled.into_storage())
}
