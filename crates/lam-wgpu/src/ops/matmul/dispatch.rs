//! Recording a product's dispatch on the kernel chosen for it: the
//! pipeline constants of its load modes, epilogue and halves, the kernel's
//! tile and the grid of workgroups, and the profiler's detail of the shape.
//! Split-K products go on to `split.rs`, which dispatches their slices here.

use std::sync::Arc;

use lam_core::{Error, Result};

use super::{coop, split, Job, MatmulKernel, GRID_MAX, LARGE_TILE, NARROW_TILE, SMALL_TILE, TILE};
use crate::context::Gpu;
use crate::kernels::{
    MATMUL, MATMUL_COOP, MATMUL_COOP8, MATMUL_LARGE, MATMUL_SMALL, MATMUL_SUBGROUP,
};
use crate::storage::GpuStorage;

/// Records the dispatch of `job` on `kernel`.
pub(super) fn launch(gpu: &Arc<Gpu>, job: &Job, kernel: MatmulKernel) -> Result<()> {
    if let Some(base) = kernel.split_base() {
        return split::launch(gpu, job, base);
    }
    launch_into(gpu, job, kernel, &job.out, job.half_out)
}

/// Records the dispatch of `job` on `kernel` writing `out` (as halves when
/// `half_out`).
pub(super) fn launch_into(
    gpu: &Arc<Gpu>,
    job: &Job,
    kernel: MatmulKernel,
    out: &GpuStorage,
    half_out: bool,
) -> Result<()> {
    let (p, v) = (&job.p, &job.v);
    // Without a bias the kernel does not read binding 4, but it must be
    // bound: A's buffer serves (two read-only bindings of one buffer are fine).
    let bias_buffer = job.bias.map_or(job.a.buffer(), |s| s.buffer());
    let buffers = [job.a.buffer(), job.b.buffer(), out.buffer(), bias_buffer];
    let (m, n, batch) = (p.m as usize, p.n as usize, p.batch as usize);
    let grid = |[tile_m, tile_n]: [usize; 2]| {
        [
            n.div_ceil(tile_n).min(GRID_MAX) as u32,
            m.div_ceil(tile_m).min(GRID_MAX) as u32,
            batch.min(GRID_MAX) as u32,
        ]
    };
    // The constants every kernel takes; HALF (A_HALF, B_HALF) only when
    // set, so f32 products keep the pipelines they always had.
    let mut constants = vec![
        ("A_MODE", f64::from(v.a_mode)),
        ("B_MODE", f64::from(v.b_mode)),
        ("EPILOGUE", f64::from(job.epilogue)),
    ];
    match job.halves {
        [true, true] => constants.push(("HALF", 1.0)),
        [true, false] => constants.push(("A_HALF", 1.0)),
        [false, true] => constants.push(("B_HALF", 1.0)),
        [false, false] => {}
    }
    if half_out {
        constants.push(("HALF_OUT", 1.0));
    }
    let half_hw = job.half_hw.unwrap_or_else(|| gpu.matmul.half_hw());
    if job.halves != [false, false] && half_hw {
        constants.push(("HALF_HW", 1.0));
    }
    let aligned = ("ALIGNED", if v.aligned { 1.0 } else { 0.0 });
    let params = bytemuck::bytes_of(p);
    let (shader, tile) = match kernel {
        MatmulKernel::Tile128 => (MATMUL_LARGE, [LARGE_TILE; 2]),
        MatmulKernel::Tile128x64 => {
            constants.push(("NARROW", 1.0));
            (MATMUL_LARGE, [LARGE_TILE, NARROW_TILE])
        }
        MatmulKernel::Tile64 => {
            constants.push(aligned);
            (MATMUL, [TILE; 2])
        }
        MatmulKernel::Tile32 => (MATMUL_SMALL, [SMALL_TILE; 2]),
        MatmulKernel::Subgroup => {
            let group = gpu.matmul.subgroup_group().ok_or_else(|| {
                Error::Device("the subgroup matmul kernel needs subgroups of 4+ lanes".into())
            })?;
            constants.extend([aligned, ("GROUP", f64::from(group))]);
            (MATMUL_SUBGROUP, [TILE; 2])
        }
        MatmulKernel::SplitK64 | MatmulKernel::SplitK128 => {
            return Err(Error::invalid(
                "matmul",
                "a split-K product launches its slices on its base kernel",
            ))
        }
        MatmulKernel::Coop | MatmulKernel::Coop128 => {
            let wide = kernel == MatmulKernel::Coop128;
            let (lanes, frag) = gpu.matmul.coop_shape();
            constants.push(("WIDE", f64::from(u8::from(wide))));
            constants.push(("LANES", f64::from(lanes)));
            let shader = if frag == 8 { MATMUL_COOP8 } else { MATMUL_COOP };
            (shader, [coop::tile(frag, wide) as usize; 2])
        }
    };
    // The profiler's detail (LAM_PROFILE=shapes): sizes, load modes, dtype.
    let shape = || {
        format!(
            "{}x{}x{}x{} a{} b{}{}",
            p.batch,
            p.m,
            p.n,
            p.k,
            v.a_mode,
            v.b_mode,
            match (job.halves, half_out) {
                ([true, true], true) => " f16->f16",
                ([true, true], false) => " f16",
                ([true, false], _) => " a f16",
                ([false, true], _) => " b f16",
                _ => "",
            }
        )
    };
    crate::timing::with_detail(shape, || {
        gpu.dispatch(shader, &constants, params, &buffers, grid(tile))
    })
}
