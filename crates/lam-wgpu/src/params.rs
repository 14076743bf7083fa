//! Uniform parameter blocks, one `#[repr(C)]` struct per WGSL `Params`
//! struct (each shader names its mirror here), and the helpers that turn
//! lam [`Layout`]s into the u32 shapes and strides the kernels index with.
//!
//! WGSL uniforms need 16-byte array strides, so shapes and strides travel
//! as `array<vec4<u32>, 2>` ([`Dims`]): up to [`MAX_RANK`] dims. Views are
//! first simplified by [`collapse`], which merges dims that are contiguous
//! with each other in every operand; most real views end up rank 1–3.

use bytemuck::{Pod, Zeroable};
use lam_core::{Error, Layout, Result};

/// Shape or strides of up to 8 dims, as WGSL's `array<vec4<u32>, 2>`.
pub(crate) type Dims = [[u32; 4]; 2];

/// Most dims a kernel indexes after [`collapse`].
pub(crate) const MAX_RANK: usize = 8;

/// elementwise.wgsl and copy.wgsl (lib/elementwise_views.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct EwParams {
    pub numel: u32,
    pub rank: u32,
    pub offset0: u32,
    pub offset1: u32,
    pub offset2: u32,
    pub alpha: f32,
    pub beta: f32,
    pub word: u32,
    pub shape: Dims,
    pub stride0: Dims,
    pub stride1: Dims,
    pub stride2: Dims,
}

/// reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct ReduceParams {
    pub rows: u32,
    pub len: u32,
    pub chunk: u32,
    pub chunks: u32,
    pub offset: u32,
    pub kept_rank: u32,
    pub red_rank: u32,
    pub use_idx: u32,
    pub kept_shape: Dims,
    pub kept_stride: Dims,
    pub red_shape: Dims,
    pub red_stride: Dims,
}

/// matmul.wgsl and matmul_large.wgsl (lib/matmul_io.wgsl). Strides are in
/// elements: `a_sm` steps one row of A.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub a_offset: u32,
    pub a_sb: u32,
    pub a_sm: u32,
    pub a_sk: u32,
    pub b_offset: u32,
    pub b_sb: u32,
    pub b_sk: u32,
    pub b_sn: u32,
    /// Element offset of the bias row (when the kernel adds one).
    pub bias_offset: u32,
    pub _pad: [u32; 3],
}

/// index.wgsl and index_scatter.wgsl (lib/index_params.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct IndexParams {
    pub numel: u32,
    pub rank: u32,
    pub dim: u32,
    pub src_offset: u32,
    pub idx_offset: u32,
    pub idx_len: u32,
    pub src_dim: u32,
    pub idx_stride1d: u32,
    pub shape: Dims,
    pub src_stride: Dims,
    pub idx_shape: Dims,
    pub idx_stride: Dims,
}

/// window.wgsl and max_pool.wgsl (lib/window_params.wgsl): the geometry,
/// the input view (offset and four strides), the padding value's bits
/// (unfold, max_pool) and the taps view (max_pool_grad).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct WindowParams {
    pub numel: u32,
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub ph: u32,
    pub pw: u32,
    pub dh: u32,
    pub dw: u32,
    pub oh: u32,
    pub ow: u32,
    pub offset: u32,
    pub strides: [u32; 4],
    pub pad_bits: u32,
    pub t_offset: u32,
    pub t_strides: [u32; 4],
    pub pad: [u32; 2],
}

/// random.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct RandomParams {
    pub numel: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub normal: u32,
    pub a: f32,
    pub b: f32,
    pub pad: [u32; 2],
}

/// softmax.wgsl and cross_entropy.wgsl (lib/rows.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct RowParams {
    pub rows: u32,
    pub cols: u32,
    pub offset: u32,
    pub row_stride: u32,
    pub col_stride: u32,
    pub t_offset: u32,
    pub t_stride: u32,
    pub inv_rows: f32,
}

/// lstm.wgsl: the step's size, flags (the gradient's step: 1 when the
/// gradient from the step after is given), per input its `[rows, cols]`
/// view as (offset, row stride, column stride, unused), and the sequence
/// kernels' offsets into their outputs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct LstmParams {
    pub rows: u32,
    pub hidden: u32,
    pub numel: u32,
    pub flags: u32,
    pub views: [[u32; 4]; 5],
    pub offsets: [u32; 4],
}

/// layer_norm.wgsl: sizes, `eps`, flags (1: weight, 2: bias), and per
/// view (x, grad, weight, bias, mean, rstd) its offset and strides.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct LayerNormParams {
    pub rows: u32,
    pub cols: u32,
    pub eps: f32,
    pub flags: u32,
    pub views: [[u32; 4]; 6],
}

/// batch_norm.wgsl: sizes, flags (1: weight, 2: bias), `eps`, and per
/// view (x, grad, weight, bias, mean, invstd) its offset and strides.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct BatchNormParams {
    pub n: u32,
    pub c: u32,
    pub l: u32,
    pub flags: u32,
    pub eps: f32,
    /// Images per chunk of a channel's values.
    pub chunk_images: u32,
    pub pad: [u32; 2],
    pub views: [[u32; 4]; 6],
}

/// batch_norm_running.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct BatchNormRunningParams {
    pub c: u32,
    pub flags: u32,
    pub keep: f32,
    pub momentum: f32,
    pub correction: f32,
    pub pad: [u32; 3],
    /// Running mean, running variance, batch mean, batch variance, count:
    /// (offset, stride, 0, 0) each.
    pub views: [[u32; 4]; 5],
}

/// adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct AdamParams {
    pub numel: u32,
    pub decoupled: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step_size: f32,
    pub bc2_sqrt: f32,
    pub pad: [u32; 3],
}

/// sgd.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct SgdParams {
    pub numel: u32,
    /// 1: weight decay, 2: momentum, 4: first momentum step, 8: Nesterov.
    pub flags: u32,
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub pad: [u32; 2],
}

/// quant.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct QuantParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub words: u32,
    pub x_offset: u32,
    pub x_row_stride: u32,
    pub x_col_stride: u32,
    pub s_offset: u32,
    pub s_stride: u32,
    pub ws_offset: u32,
    pub ws_stride: u32,
    pub b_offset: u32,
    pub b_stride: u32,
    pub has_bias: u32,
    pub pad: [u32; 2],
}

/// `x` as a kernel's u32, or `TooLarge` (kernels index with 32-bit integers).
pub(crate) fn to_u32(op: &'static str, x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::TooLarge {
        op,
        bytes: (x as u64).saturating_mul(4),
        limit: u64::from(u32::MAX) * 4,
    })
}

/// Up to [`MAX_RANK`] values packed as [`Dims`].
pub(crate) fn dims(op: &'static str, values: &[usize]) -> Result<Dims> {
    if values.len() > MAX_RANK {
        return Err(Error::invalid(
            op,
            format!(
                "the GPU kernels index at most {MAX_RANK} dims after merging contiguous ones, \
                 found {} (shape or strides {values:?})",
                values.len()
            ),
        ));
    }
    let mut out = [[0u32; 4]; 2];
    for (i, &v) in values.iter().enumerate() {
        out[i / 4][i % 4] = to_u32(op, v)?;
    }
    Ok(out)
}

/// The simplest equivalent of iterating `shape` row-major while every operand
/// `k` walks its `strides[k]`: size-1 dims are dropped and a dim is merged into
/// the next one when it is contiguous with it in every operand. Returns the
/// new shape and one stride list per operand (possibly rank 0 for one element).
pub(crate) fn collapse(shape: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_shape: Vec<usize> = Vec::with_capacity(shape.len());
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::with_capacity(shape.len()); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        // Merge with the previous kept dim when, for every operand, stepping
        // that dim once equals stepping this one shape[d] times.
        let mergeable = !out_shape.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, o)| o.last().copied() == Some(s[d] * shape[d]));
        if mergeable {
            if let Some(last) = out_shape.last_mut() {
                *last *= shape[d];
            }
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                if let Some(last) = o.last_mut() {
                    *last = s[d];
                }
            }
        } else {
            out_shape.push(shape[d]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    (out_shape, out_strides)
}

/// Shape, per-operand strides and offsets of up to three views that share
/// `shape`, collapsed and packed for elementwise.wgsl.
pub(crate) fn elementwise(
    op: &'static str,
    shape: &[usize],
    views: &[&Layout],
) -> Result<EwParams> {
    let strides: Vec<&[usize]> = views.iter().map(|l| l.strides.as_slice()).collect();
    let (shape, strides) = collapse(shape, &strides);
    let mut p = EwParams {
        numel: to_u32(op, shape.iter().product())?,
        rank: shape.len() as u32,
        shape: dims(op, &shape)?,
        ..EwParams::default()
    };
    let slots = [
        (&mut p.offset0, &mut p.stride0),
        (&mut p.offset1, &mut p.stride1),
        (&mut p.offset2, &mut p.stride2),
    ];
    for ((view, s), (offset, stride)) in views.iter().zip(&strides).zip(slots) {
        *offset = to_u32(op, view.offset)?;
        *stride = dims(op, s)?;
    }
    Ok(p)
}

/// The `[rows, cols]` view `l` as the row kernels index it (softmax and
/// cross-entropy; the targets fields stay zero).
pub(crate) fn row_params(op: &'static str, l: &Layout) -> Result<RowParams> {
    Ok(RowParams {
        rows: to_u32(op, l.shape[0])?,
        cols: to_u32(op, l.shape[1])?,
        offset: to_u32(op, l.offset)?,
        row_stride: to_u32(op, l.strides[0])?,
        col_stride: to_u32(op, l.strides[1])?,
        ..RowParams::default()
    })
}

/// Splits `n` workgroups into an (x, y) grid whose rows are exactly 65535
/// wide when n exceeds one row, as the shaders' `GRID_X` expects.
pub(crate) fn fold_grid(op: &'static str, n: u64) -> Result<[u32; 3]> {
    const GRID_X: u64 = 65_535;
    if n <= GRID_X {
        return Ok([n as u32, 1, 1]);
    }
    let y = n.div_ceil(GRID_X);
    if y > GRID_X {
        return Err(Error::TooLarge {
            op,
            bytes: n.saturating_mul(256 * 4),
            limit: GRID_X * GRID_X * 256 * 4,
        });
    }
    Ok([GRID_X as u32, y as u32, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_merges_contiguous_runs_only() {
        // A contiguous [2, 3, 4] becomes one run of 24.
        let (s, st) = collapse(&[2, 3, 4], &[&[12, 4, 1]]);
        assert_eq!((s, st), (vec![24], vec![vec![1]]));
        // A transpose of the last two dims keeps them apart.
        let (s, st) = collapse(&[2, 4, 3], &[&[12, 1, 4]]);
        assert_eq!((s, st), (vec![2, 4, 3], vec![vec![12, 1, 4]]));
        // Broadcast stride 0 merges with a broadcast neighbour but not with data.
        let (s, st) = collapse(&[5, 2, 3], &[&[0, 0, 1], &[6, 3, 1]]);
        assert_eq!((s, st), (vec![10, 3], vec![vec![0, 1], vec![3, 1]]));
        // All-ones shapes collapse to rank 0.
        let (s, _) = collapse(&[1, 1], &[&[7, 9]]);
        assert!(s.is_empty());
    }

    #[test]
    fn grids_fold_into_full_rows() {
        assert_eq!(fold_grid("t", 10).unwrap(), [10, 1, 1]);
        assert_eq!(fold_grid("t", 65_536).unwrap(), [65_535, 2, 1]);
    }

    #[test]
    fn param_blocks_are_16_byte_multiples() {
        for size in [
            std::mem::size_of::<EwParams>(),
            std::mem::size_of::<ReduceParams>(),
            std::mem::size_of::<MatmulParams>(),
            std::mem::size_of::<IndexParams>(),
            std::mem::size_of::<RandomParams>(),
            std::mem::size_of::<RowParams>(),
            std::mem::size_of::<AdamParams>(),
            std::mem::size_of::<WindowParams>(),
            std::mem::size_of::<LstmParams>(),
            std::mem::size_of::<LayerNormParams>(),
        ] {
            assert_eq!(size % 16, 0);
        }
        // 28 words, as lib/window_params.wgsl declares them.
        assert_eq!(std::mem::size_of::<WindowParams>(), 112);
    }
}
