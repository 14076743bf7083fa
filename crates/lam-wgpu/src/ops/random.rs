//! Seeded random fills (random.wgsl). Element `i` is a pure function of
//! `(seed, i)` computed with lam-core's `rng` hash in u32 arithmetic, so the
//! GPU draws the same tensor as the CPU: uniform bits exactly, normals to
//! float rounding.

use std::sync::Arc;

use lam_core::backend::Distribution;
use lam_core::{DType, Result, Storage};

use super::{grid_for, output};
use crate::context::Gpu;
use crate::kernels::FILL_RANDOM;
use crate::params::{to_u32, RandomParams};

/// `len` numbers from `dist` for stream `seed`.
pub(crate) fn fill_random(
    gpu: &Arc<Gpu>,
    len: usize,
    dist: Distribution,
    seed: u64,
) -> Result<Storage> {
    let out = output(gpu, "fill_random", len, DType::F32)?;
    let (normal, a, b) = match dist {
        Distribution::Uniform { low, high } => (0, low, high),
        Distribution::Normal { mean, std } => (1, mean, std),
    };
    let p = RandomParams {
        numel: to_u32("fill_random", len)?,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        normal,
        a,
        b,
        pad: [0; 2],
    };
    gpu.dispatch(
        FILL_RANDOM,
        &[],
        bytemuck::bytes_of(&p),
        &[out.buffer()],
        grid_for("fill_random", len)?,
    )?;
    Ok(out.into_storage())
}
