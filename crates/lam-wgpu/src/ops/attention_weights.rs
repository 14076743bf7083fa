//! The softmax between the composite attention's two products
//! (attention_weights.wgsl; Backend `fused_attention_weights` and
//! `fused_attention_weights_grad`): one workgroup per query row of the
//! products `q kᵀ`, which it scales, masks and normalises in one dispatch
//! (the backward's weights and score gradient in another), where lam-core
//! composes each from a dozen passes over the `[B, H, L, S]` scores and
//! uploads the causal mask every call.
//!
//! lam-core composes attention on a GPU where [`super::attention`]
//! declines: head dims above its kernels' 128, and under
//! `AttentionKernel::Auto` the calls whose scores take 1–64 MiB (`gpt`'s).
//! Every operand is read through its own offset and strides, a broadcast
//! mask included.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use lam_core::backend::{AttentionScores, View};
use lam_core::{DType, Error, Result, Storage};

use super::attention::view;
use super::{input, output};
use crate::context::Gpu;
use crate::kernels::{ATTENTION_WEIGHTS, ATTENTION_WEIGHTS_GRAD};
use crate::params::{fold_grid, to_u32};

const OP: &str = "fused_attention_weights";

/// Mirrors `Params` in shaders/attention_weights.wgsl: sizes, then each
/// view's offset and `[B, H, row, col]` strides.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct WeightsParams {
    rows: u32,
    heads: u32,
    l: u32,
    s: u32,
    ev: u32,
    causal: u32,
    has_mask: u32,
    scale: f32,
    scores: [u32; 5],
    mask: [u32; 5],
    dp: [u32; 5],
    grad: [u32; 5],
    out: [u32; 5],
    pad: [u32; 3],
}

/// The weights `[B, H, L, S]` and statistics `[B, H, L, 2]`, contiguous.
pub(crate) fn weights(gpu: &Arc<Gpu>, inputs: &AttentionScores<'_>) -> Result<(Storage, Storage)> {
    let op = Operands::read(gpu, inputs)?;
    let rows = op.params.rows as usize;
    let weights = output(gpu, OP, rows * op.s, DType::F32)?;
    let stats = output(gpu, OP, rows * 2, DType::F32)?;
    if rows > 0 {
        gpu.dispatch(
            ATTENTION_WEIGHTS,
            &[],
            bytemuck::bytes_of(&op.params),
            &[op.scores, op.mask, weights.buffer(), stats.buffer()],
            fold_grid(OP, rows as u64)?,
        )?;
    }
    Ok((weights.into_storage(), stats.into_storage()))
}

/// The weights `p` and the scores' gradient `ds`, both contiguous
/// `[B, H, L, S]`, or `None` for statistics that are not a contiguous
/// buffer of their own (lam-core's always are).
pub(crate) fn weights_grad(
    gpu: &Arc<Gpu>,
    inputs: &AttentionScores<'_>,
    stats: View,
    dp: View,
    grad: View,
    out: View,
) -> Result<Option<(Storage, Storage)>> {
    let mut op = Operands::read(gpu, inputs)?;
    let (b, h, l, s) = op.sizes;
    let (st, sl) = input(gpu, OP, stats, Some(DType::F32))?;
    if !(sl.is_contiguous() && sl.offset == 0) {
        return Ok(None);
    }
    sl.expect_shape(OP, "statistics [B, H, L, 2]", &[b, h, l, 2])?;
    let (d, dl) = input(gpu, OP, dp, Some(DType::F32))?;
    dl.expect_shape(OP, "dp [B, H, L, S]", &[b, h, l, s])?;
    let (g, gl) = input(gpu, OP, grad, Some(DType::F32))?;
    let ev = gl.shape.get(3).copied().unwrap_or(0);
    gl.expect_shape(OP, "an output gradient [B, H, L, Ev]", &[b, h, l, ev])?;
    let (o, ol) = input(gpu, OP, out, Some(DType::F32))?;
    ol.expect_shape(OP, "an output [B, H, L, Ev]", &[b, h, l, ev])?;
    // The statistics are bound read-write (the forward writes them): a
    // read-only operand in the same buffer would be bound twice with
    // conflicting uses.
    let read_only = [op.scores, op.mask, d.buffer(), g.buffer(), o.buffer()];
    if read_only.contains(&st.buffer()) {
        return Ok(None);
    }
    op.params.ev = to_u32(OP, ev)?;
    op.params.dp = view(OP, dl)?;
    op.params.grad = view(OP, gl)?;
    op.params.out = view(OP, ol)?;
    let rows = op.params.rows as usize;
    let weights = output(gpu, OP, rows * s, DType::F32)?;
    let ds = output(gpu, OP, rows * s, DType::F32)?;
    if rows > 0 {
        gpu.dispatch(
            ATTENTION_WEIGHTS_GRAD,
            &[],
            bytemuck::bytes_of(&op.params),
            &[
                op.scores,
                op.mask,
                weights.buffer(),
                st.buffer(),
                d.buffer(),
                g.buffer(),
                o.buffer(),
                ds.buffer(),
            ],
            fold_grid(OP, rows as u64)?,
        )?;
    }
    Ok(Some((weights.into_storage(), ds.into_storage())))
}

/// The products' and mask's buffers and the parameter block of one call.
struct Operands<'a> {
    scores: &'a wgpu::Buffer,
    /// The mask's buffer, or the products' standing in when there is none.
    mask: &'a wgpu::Buffer,
    params: WeightsParams,
    sizes: (usize, usize, usize, usize),
    s: usize,
}

impl<'a> Operands<'a> {
    fn read(gpu: &Arc<Gpu>, inputs: &'a AttentionScores<'a>) -> Result<Operands<'a>> {
        let (x, xl) = input(gpu, OP, inputs.scores, Some(DType::F32))?;
        let &[b, h, l, s] = xl.shape.as_slice() else {
            return Err(Error::shape(OP, "scores [B, H, L, S]", &xl.shape));
        };
        // The kernels index the contiguous outputs with u32.
        to_u32(OP, b * h * l * s)?;
        let mut params = WeightsParams {
            rows: to_u32(OP, b * h * l)?,
            heads: to_u32(OP, h.max(1))?,
            l: to_u32(OP, l)?,
            s: to_u32(OP, s)?,
            causal: u32::from(inputs.causal),
            scale: inputs.scale,
            scores: view(OP, xl)?,
            ..WeightsParams::default()
        };
        let mask = match inputs.mask {
            Some(m) => {
                let (m, ml) = input(gpu, OP, m, Some(DType::F32))?;
                ml.expect_shape(OP, "a mask [B, H, L, S]", &[b, h, l, s])?;
                params.has_mask = 1;
                params.mask = view(OP, ml)?;
                m.buffer()
            }
            None => x.buffer(),
        };
        Ok(Operands {
            scores: x.buffer(),
            mask,
            params,
            sizes: (b, h, l, s),
            s,
        })
    }
}
