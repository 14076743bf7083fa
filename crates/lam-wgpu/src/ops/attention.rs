//! Fused scaled-dot-product attention (attention.wgsl, attention_grad.wgsl):
//! the forward in one dispatch — one thread per query row, keys and values
//! streamed through workgroup memory, online softmax, no `[L, S]` scores —
//! and the backward in three: each query row's `(m, 1/l, rowsum(dO ∘ out))`,
//! then `dq` (a thread per query) and `dk`, `dv` (a thread per key), so no
//! gradient is summed across threads.
//!
//! Every input is read through its own offset and strides (`[B, H, rows,
//! cols]`), a broadcast mask included, so nothing is copied. Head dims above
//! [`D_MAX`] (the private arrays' length in the kernels) are declined, and
//! lam-core then composes the op.
//!
//! Under [`AttentionKernel::Auto`] (the default) the kernels take the calls
//! whose score matrices are small (launches bound them) or too large to
//! materialise; lam-core composes the ones between ([`COMPOSE_ABOVE`],
//! [`COMPOSE_UP_TO`]).
//!
//! Each pipeline is built for one head-dim class ([`head_constants`]): the
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
use crate::kernels::{ATTENTION_FORWARD, ATTENTION_GRAD_KV, ATTENTION_GRAD_Q, ATTENTION_ROWS};
use crate::params::{fold_grid, to_u32};

/// Which attention a GPU device runs ([`crate::GpuOptions::attention`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AttentionKernel {
    /// lam-core's composite (two batched products around a softmax, the
    /// scores recomputed in the backward), which keeps a large GPU far
    /// busier, for calls whose scores (`B·H·L·S` floats) take more than
    /// [`COMPOSE_ABOVE`] and at most [`COMPOSE_UP_TO`] bytes; the fused
    /// kernels for the others.
    #[default]
    Auto,
    /// The fused kernels for every call they take (long sequences, tests).
    Fused,
}

impl AttentionKernel {
    /// `LAM_ATTENTION` (`auto`, `fused`); anything else is reported on
    /// stderr and means `auto`.
    pub fn from_env() -> AttentionKernel {
        match std::env::var("LAM_ATTENTION").map(|v| v.trim().to_lowercase()) {
            Ok(v) if v == "fused" => AttentionKernel::Fused,
            Ok(v) if v.is_empty() || v == "auto" => AttentionKernel::Auto,
            Ok(v) => {
                eprintln!("lam: LAM_ATTENTION={v:?} is unknown (known: auto, fused); using auto");
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
/// many bytes (and more than [`COMPOSE_ABOVE`]) are composed. The fused kernels give each thread one query
/// (or key) row and stream the other side past it: little parallelism and
/// long serial loops. On an H200, `gpt`'s attention (16·8 heads of 256
/// queries and keys, head dim 64; 32 MiB of scores) took 4.5 ms forward
/// and 13 ms backward per layer that way, where its products are about
/// 6 GFLOP per layer, a fraction of a millisecond for the matmul kernels.
/// Above this size the composite's transient score tensors cost more
/// memory than they save time.
pub(crate) const COMPOSE_UP_TO: usize = 64 << 20;

/// The largest head dim (`E` and `Ev`) the kernels take: `D_MAX` in
/// shaders/lib/attention_params.wgsl.
pub(crate) const D_MAX: usize = 128;
/// Rows per workgroup: `ROWS` in shaders/lib/attention_params.wgsl.
const ROWS: usize = 64;

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

/// The pipeline constants of the three row kernels for head dims `e`, `ev`:
/// `HEAD_D`, both rounded up to a power of two of at least 16 (so a few
/// pipelines serve every size), and `TILE`, the rows of a streamed operand
/// that fit the kernels' fixed workgroup tiles of 1,024 floats.
fn head_constants(e: usize, ev: usize) -> [(&'static str, f64); 2] {
    let head = e.max(ev).next_power_of_two().max(16);
    [("HEAD_D", head as f64), ("TILE", (1024 / head) as f64)]
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
    let constants = head_constants(op.e, ev);
    let out = output(gpu, OP, bh * l * ev, DType::F32)?;
    let stats = output(gpu, OP, bh * l * 2, DType::F32)?;
    if bh * l > 0 {
        let buffers = [op.q, op.k, op.v, op.mask, out.buffer(), stats.buffer()];
        gpu.dispatch(
            ATTENTION_FORWARD,
            &constants,
            bytemuck::bytes_of(&op.params),
            &buffers,
            blocks(bh, l)?,
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
    let constants = head_constants(e, ev);
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
            ATTENTION_GRAD_Q,
            &constants,
            params,
            &[q, k, v, m, g, rows.buffer(), dq.buffer()],
            blocks(bh, l)?,
        )?;
        gpu.dispatch(
            ATTENTION_GRAD_KV,
            &constants,
            params,
            &[q, k, v, m, g, rows.buffer(), dk.buffer(), dv.buffer()],
            blocks(bh, s)?,
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
    bh: usize,
    l: usize,
    s: usize,
    e: usize,
    ev: usize,
}

impl<'a> Operands<'a> {
    /// `None` when a head dim is 0 or above [`D_MAX`], or when the device
    /// composes calls of this size ([`AttentionKernel::Auto`]).
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
        let composed = (COMPOSE_ABOVE + 1..=COMPOSE_UP_TO).contains(&scores);
        if gpu.attention == AttentionKernel::Auto && composed {
            return Ok(None);
        }
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
            q: view(ql)?,
            k: view(kl)?,
            v: view(vl)?,
            ..AttentionParams::default()
        };
        let mask = match inputs.mask {
            Some(m) => {
                let (m, ml) = input(gpu, OP, m, Some(DType::F32))?;
                ml.expect_shape(OP, "a mask [B, H, L, S]", &[b, h, l, s])?;
                params.has_mask = 1;
                params.mask = view(ml)?;
                m.buffer()
            }
            None => q.buffer(),
        };
        let grad = match grad {
            Some(g) => {
                let (g, gl) = input(gpu, OP, g, Some(DType::F32))?;
                gl.expect_shape(OP, "an output gradient [B, H, L, Ev]", &[b, h, l, ev])?;
                params.grad = view(gl)?;
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
            bh: b * h,
            l,
            s,
            e,
            ev,
        }))
    }
}

/// A `[B, H, rows, cols]` view as the kernels index it: offset, strides.
fn view(layout: &Layout) -> Result<[u32; 5]> {
    let st = &layout.strides;
    Ok([
        to_u32(OP, layout.offset)?,
        to_u32(OP, st[0])?,
        to_u32(OP, st[1])?,
        to_u32(OP, st[2])?,
        to_u32(OP, st[3])?,
    ])
}

/// True for a row-major view that starts at its buffer's first element.
fn contiguous_from_start(layout: &Layout) -> bool {
    layout.is_contiguous() && layout.offset == 0
}

/// One workgroup per batch·head and block of [`ROWS`] rows of `count`.
fn blocks(bh: usize, count: usize) -> Result<[u32; 3]> {
    fold_grid(OP, (bh * count.div_ceil(ROWS)) as u64)
}
