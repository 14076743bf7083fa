//! The fused SGD step (sgd.wgsl): one dispatch per parameter, in place,
//! instead of up to six elementwise ops.

use std::sync::Arc;

use lam_core::backend::SgdStep;
use lam_core::{BackendStorage, DType, Result, Storage};

use super::grid_for;
use crate::context::Gpu;
use crate::kernels::SGD;
use crate::params::{to_u32, SgdParams};
use crate::storage::GpuStorage;

/// One SGD step in place. Returns `false` (not fused) unless the buffers
/// are distinct equal-length F32 buffers of this device, with a momentum
/// buffer exactly when the momentum is not 0.
pub(crate) fn sgd(
    gpu: &Arc<Gpu>,
    param: &Storage,
    grad: &Storage,
    momentum_buffer: Option<&Storage>,
    step: &SgdStep,
) -> Result<bool> {
    if momentum_buffer.is_some() != (step.momentum != 0.0) {
        return Ok(false);
    }
    let (Some(param), Some(grad)) = (of(gpu, param), of(gpu, grad)) else {
        return Ok(false);
    };
    let buf = match momentum_buffer.map(|b| of(gpu, b)) {
        Some(None) => return Ok(false),
        Some(Some(b)) => Some(b),
        None => None,
    };
    let all: Vec<&GpuStorage> = [param, grad].into_iter().chain(buf).collect();
    let n = param.len();
    let distinct =
        (0..all.len()).all(|i| (i + 1..all.len()).all(|j| !std::ptr::eq(all[i], all[j])));
    if !distinct || all.iter().any(|s| s.len() != n || s.dtype() != DType::F32) {
        return Ok(false);
    }
    if n == 0 {
        return Ok(true);
    }
    let flags = u32::from(step.weight_decay != 0.0)
        | u32::from(buf.is_some()) << 1
        | u32::from(step.first) << 2
        | u32::from(step.nesterov) << 3;
    let p = SgdParams {
        numel: to_u32("sgd", n)?,
        flags,
        lr: step.lr,
        momentum: step.momentum,
        dampening: step.dampening,
        weight_decay: step.weight_decay,
        pad: [0; 2],
    };
    // Without momentum the buffer binding is the device's scratch buffer,
    // which the kernel never touches then.
    let b = buf.map_or(&gpu.scratch, GpuStorage::buffer);
    gpu.dispatch(
        SGD,
        &[],
        bytemuck::bytes_of(&p),
        &[grad.buffer(), param.buffer(), b],
        grid_for("sgd", n)?,
    )?;
    Ok(true)
}

/// `s` as a buffer of this device, or `None`.
fn of<'a>(gpu: &Arc<Gpu>, s: &'a Storage) -> Option<&'a GpuStorage> {
    GpuStorage::of(s, gpu, "sgd").ok()
}
