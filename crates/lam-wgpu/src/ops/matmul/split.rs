//! Split-K ([`MatmulKernel::SplitK64`], [`MatmulKernel::SplitK128`]): a
//! product of few output tiles along a long K — a weight gradient `xᵀ dy`,
//! `[N_out, tokens] × [tokens, N_in]` — gives a large GPU too few
//! workgroups, each looping over all of K; so does a recurrent layer's
//! step product of few rows. Cut into S slices of K it runs
//! as a batch of S products on `Tile64` or `Tile128` (the batch stride
//! steps along K, so nothing is copied), writing f32 partial sums
//! `[S, M, N]`, then matmul_split.wgsl adds them in order and applies the
//! epilogue (bias, ReLU, f16 rounding, `F16` output) as one kernel over K
//! would. The autotuner weighs it against the other kernels per shape
//! class; the size rule never picks it.

use std::sync::Arc;

use lam_core::{DType, Error, Result};

use super::{fits_large, launch_into, variant, Job, MatmulKernel, LARGE_TILE, TILE, TK};
use crate::context::Gpu;
use crate::kernels::MATMUL_SPLIT_SUM;
use crate::ops::{grid_for, output};
use crate::params::MatmulParams;

/// Fewest elements of K per slice: shallower slices spend more on the
/// partials than they gain in parallelism. 64 lets a recurrent layer's
/// step product (`[64, 256] x [256, 1024]`: 16 tiles, latency-bound) run as
/// four slices.
const MIN_DEPTH: u32 = 64;
/// Most slices.
const MAX_SLICES: u32 = 16;
/// Workgroups (output tiles times slices) at which slicing stops: several
/// per multiprocessor of the largest GPUs.
const TARGET_WORKGROUPS: u64 = 1024;
/// Most bytes of partial sums. They are live beside everything else at the
/// start of a backward pass, where a training step peaks: 32 MiB keeps
/// `gpt 16 --amp` (whose lm head's weight gradient would take 64 MiB in
/// four slices) below PyTorch's peak.
const MAX_PARTIAL_BYTES: u64 = 32 << 20;

impl MatmulKernel {
    /// The kernel a split-K kernel runs its slices on (`None` for others).
    pub(crate) fn split_base(self) -> Option<MatmulKernel> {
        match self {
            MatmulKernel::SplitK64 => Some(MatmulKernel::Tile64),
            MatmulKernel::SplitK128 => Some(MatmulKernel::Tile128),
            _ => None,
        }
    }
}

/// The product of slices `p` is cut into for `base` — its parameters, with
/// the slice count as the batch — or `None` where split-K does not apply:
/// a batched product, a K too short for two slices, or (for `Tile128`)
/// slices it cannot run.
pub(crate) fn plan(p: &MatmulParams, base: MatmulKernel) -> Option<MatmulParams> {
    if p.batch != 1 || p.k < 2 * MIN_DEPTH {
        return None;
    }
    let tile = if base == MatmulKernel::Tile128 {
        LARGE_TILE
    } else {
        TILE
    } as u32;
    let tiles = u64::from(p.m.div_ceil(tile)) * u64::from(p.n.div_ceil(tile));
    let output = u64::from(p.m) * u64::from(p.n) * 4;
    let mut s = 1u32;
    while s < MAX_SLICES
        && tiles * u64::from(s) < TARGET_WORKGROUPS
        && p.k.is_multiple_of(2 * s * TK as u32)
        && p.k / (2 * s) >= MIN_DEPTH
        && u64::from(2 * s) * output <= MAX_PARTIAL_BYTES
    {
        s *= 2;
    }
    if s < 2 {
        return None;
    }
    let depth = p.k / s;
    let slices = MatmulParams {
        k: depth,
        batch: s,
        a_sb: depth.checked_mul(p.a_sk)?,
        b_sb: depth.checked_mul(p.b_sk)?,
        ..*p
    };
    if base == MatmulKernel::Tile128 && !fits_large(&slices, &variant(&slices)) {
        return None;
    }
    Some(slices)
}

/// Records `job` split along K on `base`: the slices' partial sums, then
/// their total through the epilogue into `job.out`.
pub(crate) fn launch(gpu: &Arc<Gpu>, job: &Job, base: MatmulKernel) -> Result<()> {
    const OP: &str = "matmul";
    let slices = plan(&job.p, base)
        .ok_or_else(|| Error::invalid(OP, "split-K was chosen for a product it cannot split"))?;
    let mn = job.p.m as usize * job.p.n as usize;
    let partials = output(gpu, OP, slices.batch as usize * mn, DType::F32)?;
    // The slices' sums stay f32 and bare: the epilogue acts on the total.
    let part = Job {
        a: job.a,
        b: job.b,
        bias: None,
        out: partials,
        v: variant(&slices),
        p: slices,
        epilogue: 0,
        halves: job.halves,
        half_out: false,
        half_hw: job.half_hw,
        empty: false,
    };
    launch_into(gpu, &part, base, &part.out, false)?;
    let sum = MatmulParams {
        m: job.p.m,
        n: job.p.n,
        k: slices.batch,
        batch: 1,
        bias_offset: job.p.bias_offset,
        ..MatmulParams::default()
    };
    let mut constants = vec![("EPILOGUE", f64::from(job.epilogue))];
    if job.half_out {
        constants.push(("HALF_OUT", 1.0));
    }
    let bias = job.bias.map_or(part.out.buffer(), |s| s.buffer());
    let threads = if job.half_out { mn / 2 } else { mn };
    gpu.dispatch(
        MATMUL_SPLIT_SUM,
        &constants,
        bytemuck::bytes_of(&sum),
        &[part.out.buffer(), job.out.buffer(), bias],
        grid_for(OP, threads)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(m: u32, k: u32, n: u32) -> MatmulParams {
        MatmulParams {
            m,
            n,
            k,
            batch: 1,
            a_sm: k,
            a_sk: 1,
            b_sk: n,
            b_sn: 1,
            ..MatmulParams::default()
        }
    }

    #[test]
    fn slices_grow_until_the_gpu_is_busy() {
        // gpt's weight gradients: 12 x 4 and 8 x 8 tiles of 64 over 4,096
        // tokens, and 4 x 16 tiles of 128.
        let qkv = plan(
            &params(1536, 4096, 512),
            MatmulKernel::SplitK64.split_base().unwrap(),
        );
        assert_eq!(qkv.map(|s| (s.batch, s.k)), Some((8, 512)));
        let out = plan(&params(512, 4096, 512), MatmulKernel::Tile64).unwrap();
        assert_eq!(
            (out.batch, out.k, out.a_sb, out.b_sb),
            (16, 256, 256, 256 * 512)
        );
        // Eight slices of 512 x 2048 (32 MiB of partials) where 16 would
        // have made 1,024 workgroups.
        let fc = plan(&params(512, 4096, 2048), MatmulKernel::Tile128).unwrap();
        assert_eq!((fc.batch, fc.k), (8, 512));
        // An LSTM step's product: slices of 64.
        let step = plan(&params(64, 256, 1024), MatmulKernel::Tile64).unwrap();
        assert_eq!((step.batch, step.k), (4, 64));
        // Enough tiles already, a short K, a batch, a K no slice divides.
        assert!(plan(&params(4096, 4096, 4096), MatmulKernel::Tile64).is_none());
        assert!(plan(&params(64, 127, 64), MatmulKernel::Tile64).is_none());
        assert!(plan(
            &MatmulParams {
                batch: 2,
                ..params(64, 4096, 64)
            },
            MatmulKernel::Tile64
        )
        .is_none());
        assert!(plan(&params(64, 4100, 64), MatmulKernel::Tile64).is_none());
        // Partials capped at 32 MiB: two slices of 2048 x 2048 outputs.
        let wide = plan(&params(2048, 1 << 16, 2048), MatmulKernel::Tile128).unwrap();
        assert_eq!((wide.batch, wide.k), (2, 1 << 15));
    }
}
