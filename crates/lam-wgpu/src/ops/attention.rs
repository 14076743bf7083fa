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

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use lam_core::backend::{AttentionInputs, View};
use lam_core::{DType, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{ATTENTION_FORWARD, ATTENTION_GRAD_KV, ATTENTION_GRAD_Q, ATTENTION_ROWS};
use crate::params::{fold_grid, to_u32};

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
    let out = output(gpu, OP, bh * l * ev, DType::F32)?;
    let stats = output(gpu, OP, bh * l * 2, DType::F32)?;
    if bh * l > 0 {
        let buffers = [op.q, op.k, op.v, op.mask, out.buffer(), stats.buffer()];
        gpu.dispatch(
            ATTENTION_FORWARD,
            &[],
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
            &[],
            params,
            &[q, k, v, m, g, rows.buffer(), dq.buffer()],
            blocks(bh, l)?,
        )?;
        gpu.dispatch(
            ATTENTION_GRAD_KV,
            &[],
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
    /// `None` when a head dim is above [`D_MAX`].
    fn read(
        gpu: &Arc<Gpu>,
        inputs: &'a AttentionInputs<'a>,
        grad: Option<View<'a>>,
    ) -> Result<Option<Operands<'a>>> {
        let (b, h, l, s, e, ev) = inputs.sizes();
        if e > D_MAX || ev > D_MAX {
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
