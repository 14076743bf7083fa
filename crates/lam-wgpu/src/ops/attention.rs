//! Fused scaled-dot-product attention: the forward in one dispatch — keys
//! and values streamed through workgroup memory, online softmax, no
//! `[L, S]` scores — and the backward in three: each query row's
//! `(m, 1/l, rowsum(dO ∘ out))`, then `dq` (per query) and `dk`, `dv` (per
//! key), so no gradient is summed across threads. Two kernel families do it
//! ([`Family`]), with the same statistics and results:
//!
//! - per row (attention.wgsl, attention_grad.wgsl): one thread per query
//!   (or key) row, which it keeps in registers while the other side streams
//!   past. Few threads and long serial loops: on an H200 it took 70% of the
//!   `gpt` benchmark's step.
//! - tiled (attention_tiled.wgsl, attention_tiled_grad.wgsl;
//!   FlashAttention-2): a workgroup of 128 threads per block of 32 rows
//!   computes each block of scores cooperatively, as a matmul tile does,
//!   and each thread owns a slice of its row's output columns. Under causal,
//!   fully masked key (query) tiles are skipped. `attention_rows` serves
//!   both families' backward.
//!
//! Every input is read through its own offset and strides (`[B, H, rows,
//! cols]`), a broadcast mask included, so nothing is copied. Head dims above
//! [`D_MAX`] (the private arrays' length in the kernels) are declined, and
//! lam-core then composes the op.
//!
//! Under [`AttentionKernel::Auto`] (the default) the per-row kernels take the
//! calls whose score matrices are small (launches bound them), the tiled
//! ones those too large to materialise; lam-core composes the ones between
//! ([`COMPOSE_ABOVE`], [`COMPOSE_UP_TO`]), with the softmax between its
//! products one kernel each way ([`super::attention_weights`]).
//!
//! Each pipeline is built for one head-dim class ([`Family::constants`]): the
//! kernels' loops over a row then have a constant length the driver can
//! unroll, keeping each thread's row in registers. With the length read
//! from the parameter block they indexed private arrays dynamically, which
//! drivers place in local memory: on an H200 that made the attention of
//! the `gpt` benchmark two thirds of its step.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use lam_core::backend::{AttentionInputs, View};
use lam_core::{DType, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{
    Kernel, ATTENTION_FORWARD, ATTENTION_GRAD_KV, ATTENTION_GRAD_Q, ATTENTION_ROWS,
    ATTENTION_TILED_FORWARD, ATTENTION_TILED_GRAD_KV, ATTENTION_TILED_GRAD_Q,
};
use crate::params::{fold_grid, to_u32};

/// Which attention a GPU device runs ([`crate::GpuOptions::attention`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AttentionKernel {
    /// lam-core's composite (two batched products around a softmax, the
    /// scores recomputed in the backward), which keeps a large GPU far
    /// busier, for calls whose scores (`B·H·L·S` floats) take more than
    /// [`COMPOSE_ABOVE`] and at most [`COMPOSE_UP_TO`] bytes; the per-row
    /// kernels for smaller calls, the tiled ones for larger.
    #[default]
    Auto,
    /// The per-row kernels for every call they take (tests, comparisons).
    Fused,
    /// The tiled kernels for every call they take (tests, comparisons).
    Tiled,
}

impl AttentionKernel {
    /// `LAM_ATTENTION` (`auto`, `fused`, `tiled`); anything else is
    /// reported on stderr and means `auto`.
    pub fn from_env() -> AttentionKernel {
        match std::env::var("LAM_ATTENTION").map(|v| v.trim().to_lowercase()) {
            Ok(v) if v == "fused" => AttentionKernel::Fused,
            Ok(v) if v == "tiled" => AttentionKernel::Tiled,
            Ok(v) if v.is_empty() || v == "auto" => AttentionKernel::Auto,
            Ok(v) => {
                eprintln!(
                    "lam: LAM_ATTENTION={v:?} is unknown (known: auto, fused, tiled); using auto"
                );
                AttentionKernel::Auto
            }
            Err(_) => AttentionKernel::Auto,
        }
    }
}

/// Under [`AttentionKernel::Auto`], calls whose scores take more than
/// this many bytes are composed (up to [`COMPOSE_UP_TO`]). Below it the
/// fused kernels' one to four dispatches beat the composite's fifteen or
/// so: at the per-row rate measured on the H200 (below), 1 MiB of scores
/// with head dim 64 is about 0.15 ms forward, as much as fifteen launches.
/// Not measured on a GPU itself.
pub(crate) const COMPOSE_ABOVE: usize = 1 << 20;

/// Under [`AttentionKernel::Auto`], calls whose scores take at most this
/// many bytes (and more than [`COMPOSE_ABOVE`]) are composed. The per-row
/// kernels give each thread one query (or key) row and stream the other
/// side past it: little parallelism and long serial loops. On an H200, `gpt`'s attention (16·8 heads of 256
/// queries and keys, head dim 64; 32 MiB of scores) took 4.5 ms forward
/// and 13 ms backward per layer that way, where its products are about
/// 6 GFLOP per layer, a fraction of a millisecond for the matmul kernels.
/// Above this size the composite's transient score tensors cost more
/// memory than they save time, and the tiled kernels run instead: they
/// read each key and value tile once per block of 32 queries (not per
/// query), split each block's scores among 128 threads and skip causal
/// tiles, where the per-row kernels leave those sizes as slow as above.
/// Whether the tiled kernels also beat the composite between the two
/// bounds is for a GPU to measure (bench/gpu_session.sh's `attention`
/// step); until then Auto keeps the composite there.
pub(crate) const COMPOSE_UP_TO: usize = 64 << 20;

/// The largest head dim (`E` and `Ev`) the kernels take: `D_MAX` in
/// shaders/lib/attention_params.wgsl.
pub(crate) const D_MAX: usize = 128;
/// Rows per workgroup of the per-row kernels: `ROWS` in
/// shaders/lib/attention_params.wgsl.
const ROWS: usize = 64;
/// Rows per workgroup of the tiled kernels: `OWN` in
/// shaders/lib/attention_tiles.wgsl.
const OWN: usize = 32;
/// The workgroup memory of the tiled kernels (the forward's, the larger):
/// `wide` and `weights` in shaders/lib/attention_tiles.wgsl and the
/// forward's three per-thread terms, 3,456 floats. WebGPU grants every
/// adapter 16 KiB; one reporting less runs the per-row kernels (8 KiB).
const TILED_WORKGROUP_BYTES: u32 = 3456 * 4;

const OP: &str = "fused_attention";

/// Mirrors `Params` in shaders/lib/attention_params.wgsl: sizes, then each
/// view's offset and `[B, H, row, col]` strides.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct AttentionParams {
    bh: u32,
    heads: u32,
    l: u32,
    s: u32,
    e: u32,
    ev: u32,
    causal: u32,
    has_mask: u32,
    scale: f32,
    q: [u32; 5],
    k: [u32; 5],
    v: [u32; 5],
    mask: [u32; 5],
    grad: [u32; 5],
    pad: [u32; 2],
}

/// One of the two kernel families (see the module's overview).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rows,
    Tiled,
}

impl Family {
    /// The family that takes a call with `scores` bytes of scores, or
    /// `None` where lam-core composes it.
    fn choose(gpu: &Gpu, scores: usize) -> Option<Family> {
        let tiled =
            if gpu.device.limits().max_compute_workgroup_storage_size >= TILED_WORKGROUP_BYTES {
                Family::Tiled
            } else {
                Family::Rows
            };
        match gpu.attention {
            AttentionKernel::Fused => Some(Family::Rows),
            AttentionKernel::Tiled => Some(tiled),
            AttentionKernel::Auto if scores <= COMPOSE_ABOVE => Some(Family::Rows),
            AttentionKernel::Auto if scores <= COMPOSE_UP_TO => None,
            AttentionKernel::Auto => Some(tiled),
        }
    }

    /// Forward, `dq` and `dk`/`dv` kernels.
    fn kernels(self) -> [Kernel; 3] {
        match self {
            Family::Rows => [ATTENTION_FORWARD, ATTENTION_GRAD_Q, ATTENTION_GRAD_KV],
            Family::Tiled => [
                ATTENTION_TILED_FORWARD,
                ATTENTION_TILED_GRAD_Q,
                ATTENTION_TILED_GRAD_KV,
            ],
        }
    }

    /// The pipeline constants for head dims `e`, `ev`: `HEAD_D`, both
    /// rounded up to a power of two of at least 16 (so a few pipelines
    /// serve every size), and `TILE`, the rows of a streamed operand: those
    /// that fit the per-row kernels' workgroup tiles of 1,024 floats, or
    /// the tiled kernels' `wide` tile of 2,048 (at most 32).
    fn constants(self, e: usize, ev: usize) -> [(&'static str, f64); 2] {
        let head = e.max(ev).next_power_of_two().max(16);
        let tile = match self {
            Family::Rows => 1024 / head,
            Family::Tiled => (2048 / head).min(32),
        };
        [("HEAD_D", head as f64), ("TILE", tile as f64)]
    }

    /// One workgroup per batch·head and block of rows of `count`.
    fn blocks(self, bh: usize, count: usize) -> Result<[u32; 3]> {
        let rows = match self {
            Family::Rows => ROWS,
            Family::Tiled => OWN,
        };
        fold_grid(OP, (bh * count.div_ceil(rows)) as u64)
    }
}

/// The output and the softmax statistics, or `None` for head dims above
/// [`D_MAX`].
pub(crate) fn attention(
    gpu: &Arc<Gpu>,
    inputs: &AttentionInputs<'_>,
) -> Result<Option<(Storage, Storage)>> {
    let Some(op) = Operands::read(gpu, inputs, None)? else {
        return Ok(None);
    };
    let (bh, l, ev) = (op.bh, op.l, op.ev);
    let constants = op.family.constants(op.e, ev);
    let out = output(gpu, OP, bh * l * ev, DType::F32)?;
    let stats = output(gpu, OP, bh * l * 2, DType::F32)?;
    if bh * l > 0 {
        let buffers = [op.q, op.k, op.v, op.mask, out.buffer(), stats.buffer()];
        gpu.dispatch(
            op.family.kernels()[0],
            &constants,
            bytemuck::bytes_of(&op.params),
            &buffers,
            op.family.blocks(bh, l)?,
        )?;
    }
    Ok(Some((out.into_storage(), stats.into_storage())))
}

/// `dq`, `dk`, `dv`, or `None` for head dims above [`D_MAX`] or an output
/// or statistics buffer that is not contiguous (lam-core's never are).
pub(crate) fn attention_grad(
    gpu: &Arc<Gpu>,
    inputs: &AttentionInputs<'_>,
    out: View,
    stats: View,
    grad: View,
) -> Result<Option<(Storage, Storage, Storage)>> {
    let (o, ol) = input(gpu, OP, out, Some(DType::F32))?;
    let (st, sl) = input(gpu, OP, stats, Some(DType::F32))?;
    if !contiguous_from_start(ol) || !contiguous_from_start(sl) {
        return Ok(None);
    }
    let Some(op) = Operands::read(gpu, inputs, Some(grad))? else {
        return Ok(None);
    };
    let (bh, l, s, e, ev) = (op.bh, op.l, op.s, op.e, op.ev);
    if ol.numel() != bh * l * ev || sl.numel() != bh * l * 2 {
        return Err(lam_core::Error::shape(
            OP,
            format!(
                "an output of {} and statistics of {} elements",
                bh * l * ev,
                bh * l * 2
            ),
            &ol.shape,
        ));
    }
    // attention_rows binds the output read-write (its shader shares
    // attention.wgsl's declaration): a gradient in the same buffer would be
    // bound twice with conflicting uses.
    let Some(g) = op.grad.filter(|&g| g != o.buffer()) else {
        return Ok(None);
    };
    let rows = output(gpu, OP, bh * l * 3, DType::F32)?;
    let dq = output(gpu, OP, bh * l * e, DType::F32)?;
    let dk = output(gpu, OP, bh * s * e, DType::F32)?;
    let dv = output(gpu, OP, bh * s * ev, DType::F32)?;
    let params = bytemuck::bytes_of(&op.params);
    let constants = op.family.constants(e, ev);
    let [_, grad_q, grad_kv] = op.family.kernels();
    if bh * l > 0 && s > 0 {
        let (q, k, v, m) = (op.q, op.k, op.v, op.mask);
        gpu.dispatch(
            ATTENTION_ROWS,
            &[],
            params,
            &[o.buffer(), st.buffer(), g, rows.buffer()],
            grid_for(OP, bh * l)?,
        )?;
        gpu.dispatch(
            grad_q,
            &constants,
            params,
            &[q, k, v, m, g, rows.buffer(), dq.buffer()],
            op.family.blocks(bh, l)?,
        )?;
        gpu.dispatch(
            grad_kv,
            &constants,
            params,
            &[q, k, v, m, g, rows.buffer(), dk.buffer(), dv.buffer()],
            op.family.blocks(bh, s)?,
        )?;
    }
    Ok(Some((
        dq.into_storage(),
        dk.into_storage(),
        dv.into_storage(),
    )))
}

/// The buffers and parameter block of one call.
struct Operands<'a> {
    q: &'a wgpu::Buffer,
    k: &'a wgpu::Buffer,
    v: &'a wgpu::Buffer,
    /// The mask's buffer, or the query's standing in when there is none.
    mask: &'a wgpu::Buffer,
    grad: Option<&'a wgpu::Buffer>,
    params: AttentionParams,
    family: Family,
    bh: usize,
    l: usize,
    s: usize,
    e: usize,
    ev: usize,
}

impl<'a> Operands<'a> {
    /// `None` when a head dim is 0 or above [`D_MAX`], or when the device
    /// composes calls of this size ([`AttentionKernel::Auto`]); otherwise
    /// the operands and the kernel family that takes them.
    fn read(
        gpu: &Arc<Gpu>,
        inputs: &'a AttentionInputs<'a>,
        grad: Option<View<'a>>,
    ) -> Result<Option<Operands<'a>>> {
        let (b, h, l, s, e, ev) = inputs.sizes();
        // An empty head dim has nothing for the kernels to read.
        if e > D_MAX || ev > D_MAX || e == 0 || ev == 0 {
            return Ok(None);
        }
        let scores = (b * h)
            .saturating_mul(l)
            .saturating_mul(s)
            .saturating_mul(4);
        let Some(family) = Family::choose(gpu, scores) else {
            return Ok(None);
        };
        let (q, ql) = input(gpu, OP, inputs.q, Some(DType::F32))?;
        let (k, kl) = input(gpu, OP, inputs.k, Some(DType::F32))?;
        let (v, vl) = input(gpu, OP, inputs.v, Some(DType::F32))?;
        ql.expect_shape(OP, "queries [B, H, L, E]", &[b, h, l, e])?;
        kl.expect_shape(OP, "keys [B, H, S, E]", &[b, h, s, e])?;
        vl.expect_shape(OP, "values [B, H, S, Ev]", &[b, h, s, ev])?;
        let mut params = AttentionParams {
            bh: to_u32(OP, b * h)?,
            heads: to_u32(OP, h.max(1))?,
            l: to_u32(OP, l)?,
            s: to_u32(OP, s)?,
            e: to_u32(OP, e)?,
            ev: to_u32(OP, ev)?,
            causal: u32::from(inputs.causal),
            scale: inputs.scale,
            q: view(OP, ql)?,
            k: view(OP, kl)?,
            v: view(OP, vl)?,
            ..AttentionParams::default()
        };
        let mask = match inputs.mask {
            Some(m) => {
                let (m, ml) = input(gpu, OP, m, Some(DType::F32))?;
                ml.expect_shape(OP, "a mask [B, H, L, S]", &[b, h, l, s])?;
                params.has_mask = 1;
                params.mask = view(OP, ml)?;
                m.buffer()
            }
            None => q.buffer(),
        };
        let grad = match grad {
            Some(g) => {
                let (g, gl) = input(gpu, OP, g, Some(DType::F32))?;
                gl.expect_shape(OP, "an output gradient [B, H, L, Ev]", &[b, h, l, ev])?;
                params.grad = view(OP, gl)?;
                Some(g.buffer())
            }
            None => None,
        };
        Ok(Some(Operands {
            q: q.buffer(),
            k: k.buffer(),
            v: v.buffer(),
            mask,
            grad,
            params,
            family,
            bh: b * h,
            l,
            s,
            e,
            ev,
        }))
    }
}

/// A `[B, H, rows, cols]` view as the attention kernels index it (here
/// and in attention_weights.wgsl): offset, strides.
pub(super) fn view(op: &'static str, layout: &Layout) -> Result<[u32; 5]> {
    let st = &layout.strides;
    Ok([
        to_u32(op, layout.offset)?,
        to_u32(op, st[0])?,
        to_u32(op, st[1])?,
        to_u32(op, st[2])?,
        to_u32(op, st[3])?,
    ])
}

/// True for a row-major view that starts at its buffer's first element.
fn contiguous_from_start(layout: &Layout) -> bool {
    layout.is_contiguous() && layout.offset == 0
}
