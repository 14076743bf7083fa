//! The fused Adam/AdamW step (adam.wgsl): one dispatch per parameter,
//! in place, instead of a dozen elementwise ops.

use std::sync::Arc;

use lam_core::backend::AdamStep;
use lam_core::{BackendStorage, DType, Result, Storage};

use super::grid_for;
use crate::context::Gpu;
use crate::kernels::ADAM;
use crate::params::{to_u32, AdamParams};
use crate::storage::GpuStorage;

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
        grid_for("adam", n)?,
    )?;
    Ok(true)
}
