//! Batched matrix product (matmul.wgsl): `[B, M, K] x [B, K, N] -> [B, M, N]`
//! with any strides, so transposes and broadcast batches (stride 0) are
//! folded into the kernel's loads rather than copied.
//!
//! [`MatmulVariant`] picks the pipeline: for each operand, vec4 loads along
//! whichever dim has stride 1 when the alignment allows, scalar loads
//! otherwise; and an edge-check-free path when every dim is a tile multiple.
//! Large products whose sizes are multiples of 128 (and 16 along K) with
//! vec4-loadable operands go to matmul_large.wgsl instead (128 x 128 tiles,
//! 8 x 8 per thread), when there are enough tiles to fill a GPU; the
//! variable `LAM_MATMUL_TILES` (`64` or `128`) overrides that choice, for
//! benchmarking one kernel against the other.

use std::sync::Arc;

use lam_core::backend::{LinearActivation, View};
use lam_core::{DType, Error, Layout, Result, Storage};

use super::{input, output};
use crate::context::Gpu;
use crate::kernels::{MATMUL, MATMUL_LARGE};
use crate::params::{to_u32, MatmulParams};

const TILE: usize = 64;
const TK: usize = 16;
/// Tile side of matmul_large.wgsl.
const LARGE_TILE: usize = 128;
/// Fewest 128 x 128 tiles for which the large kernel is chosen: below this
/// the 64 x 64 kernel's four times as many workgroups occupy more of the GPU.
const LARGE_MIN_TILES: usize = 64;
const GRID_MAX: usize = 65_535;

/// The pipeline constants of one matmul variant (see matmul.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatmulVariant {
    pub a_mode: u32,
    pub b_mode: u32,
    pub aligned: bool,
}

/// `lhs [B, M, K] x rhs [B, K, N]` (rank 2 means B = 1).
pub(crate) fn matmul(gpu: &Arc<Gpu>, lhs: View, rhs: View) -> Result<Storage> {
    product(gpu, lhs, rhs, None, LinearActivation::Identity)
}

/// `act(input [M, K] x weight [K, N] + bias [N])`, the bias and activation
/// applied by the kernel as it writes the output. `None` when the bias is
/// not a unit-stride vector (the caller then composes the ops).
pub(crate) fn linear(
    gpu: &Arc<Gpu>,
    input: View,
    weight: View,
    bias: Option<View>,
    act: LinearActivation,
) -> Result<Option<Storage>> {
    if let Some((_, l)) = bias {
        if l.rank() != 1 || (l.shape[0] > 1 && l.strides[0] != 1) {
            return Ok(None);
        }
    }
    input.1.expect_rank("fused_linear", "input [M, K]", 2)?;
    weight.1.expect_rank("fused_linear", "weight [K, N]", 2)?;
    product(gpu, input, weight, bias, act).map(Some)
}

/// The product with the optional bias and activation epilogue.
fn product(
    gpu: &Arc<Gpu>,
    lhs: View,
    rhs: View,
    bias: Option<View>,
    act: LinearActivation,
) -> Result<Storage> {
    let (a, la) = input(gpu, "matmul", lhs, Some(DType::F32))?;
    let (b, lb) = input(gpu, "matmul", rhs, Some(DType::F32))?;
    let [ba, m, k, a_sb, a_sm, a_sk] = batched(la)?;
    let [bb, k2, n, b_sb, b_sk, b_sn] = batched(lb)?;
    if k != k2 || (ba != bb && ba != 1 && bb != 1) {
        return Err(Error::shape(
            "matmul",
            format!("[{ba}, {k}, N] to multiply [{ba}, {m}, {k}]"),
            &lb.shape,
        ));
    }
    let batch = ba.max(bb);
    let numel = batch
        .checked_mul(m)
        .and_then(|x| x.checked_mul(n))
        .ok_or(Error::TooLarge {
            op: "matmul",
            bytes: u64::MAX,
            limit: gpu.limits.max_binding,
        })?;
    let out = output(gpu, "matmul", numel, DType::F32)?;
    if numel == 0 {
        return Ok(out.into_storage());
    }
    let bias = match bias {
        None => None,
        Some(view) => {
            let (s, l) = input(gpu, "fused_linear", view, Some(DType::F32))?;
            if l.shape != [n] {
                return Err(Error::shape(
                    "fused_linear",
                    format!("a bias of shape [{n}]"),
                    &l.shape,
                ));
            }
            Some((s, l.offset))
        }
    };
    let epilogue = u32::from(bias.is_some()) | if act == LinearActivation::Relu { 2 } else { 0 };
    // A batch of one repeats for every batch (stride 0).
    let a_sb = if ba == 1 { 0 } else { a_sb };
    let b_sb = if bb == 1 { 0 } else { b_sb };
    let p = MatmulParams {
        m: to_u32("matmul", m)?,
        n: to_u32("matmul", n)?,
        k: to_u32("matmul", k)?,
        batch: to_u32("matmul", batch)?,
        a_offset: to_u32("matmul", la.offset)?,
        a_sb: to_u32("matmul", a_sb)?,
        a_sm: to_u32("matmul", a_sm)?,
        a_sk: to_u32("matmul", a_sk)?,
        b_offset: to_u32("matmul", lb.offset)?,
        b_sb: to_u32("matmul", b_sb)?,
        b_sk: to_u32("matmul", b_sk)?,
        b_sn: to_u32("matmul", b_sn)?,
        bias_offset: to_u32("matmul", bias.map_or(0, |(_, o)| o))?,
        _pad: [0; 3],
    };
    let v = variant(&p);
    // Without a bias the kernel does not read binding 4, but it must be
    // bound: A's buffer serves (two read-only bindings of one buffer are fine).
    let bias_buffer = bias.map_or(a.buffer(), |(s, _)| s.buffer());
    let buffers = [a.buffer(), b.buffer(), out.buffer(), bias_buffer];
    if use_large(&p, &v) {
        let grid = [
            (n / LARGE_TILE).min(GRID_MAX) as u32,
            (m / LARGE_TILE).min(GRID_MAX) as u32,
            batch.min(GRID_MAX) as u32,
        ];
        let modes = [
            ("A_MODE", f64::from(v.a_mode)),
            ("B_MODE", f64::from(v.b_mode)),
            ("EPILOGUE", f64::from(epilogue)),
        ];
        gpu.dispatch(MATMUL_LARGE, &modes, bytemuck::bytes_of(&p), &buffers, grid)?;
        return Ok(out.into_storage());
    }
    // The kernel loops over tiles and batches beyond GRID_MAX per dimension.
    let grid = [
        n.div_ceil(TILE).min(GRID_MAX) as u32,
        m.div_ceil(TILE).min(GRID_MAX) as u32,
        batch.min(GRID_MAX) as u32,
    ];
    gpu.dispatch(
        MATMUL,
        &[
            ("A_MODE", f64::from(v.a_mode)),
            ("B_MODE", f64::from(v.b_mode)),
            ("ALIGNED", if v.aligned { 1.0 } else { 0.0 }),
            ("EPILOGUE", f64::from(epilogue)),
        ],
        bytemuck::bytes_of(&p),
        &buffers,
        grid,
    )?;
    Ok(out.into_storage())
}

/// The fastest variant the strides and sizes allow.
pub(crate) fn variant(p: &MatmulParams) -> MatmulVariant {
    let quad = |x: u32| x.is_multiple_of(4);
    // A vec4 load at a multiple of 4 along the unit-stride dim stays aligned
    // when the offset and every other stride are multiples of 4 too.
    let a_mode = if p.a_sk == 1 && quad(p.k) && quad(p.a_offset) && quad(p.a_sm) && quad(p.a_sb) {
        2
    } else if p.a_sm == 1 && quad(p.m) && quad(p.a_offset) && quad(p.a_sk) && quad(p.a_sb) {
        3
    } else if p.a_sk == 1 {
        1
    } else {
        0
    };
    let b_mode = if p.b_sn == 1 && quad(p.n) && quad(p.b_offset) && quad(p.b_sk) && quad(p.b_sb) {
        2
    } else if p.b_sk == 1 && quad(p.k) && quad(p.b_offset) && quad(p.b_sn) && quad(p.b_sb) {
        3
    } else if p.b_sk == 1 {
        1
    } else {
        0
    };
    let tile = TILE as u32;
    MatmulVariant {
        a_mode,
        b_mode,
        aligned: p.m.is_multiple_of(tile)
            && p.n.is_multiple_of(tile)
            && p.k.is_multiple_of(TK as u32),
    }
}

/// Which kernel `LAM_MATMUL_TILES` asks for: `Some(64)`, `Some(128)`, or
/// `None` to choose by size. Read once.
fn forced_tiles() -> Option<usize> {
    static FORCED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("LAM_MATMUL_TILES").ok()?.trim() {
        "64" => Some(TILE),
        "128" => Some(LARGE_TILE),
        other => {
            eprintln!("lam-wgpu: ignoring LAM_MATMUL_TILES={other:?} (expected 64 or 128)");
            None
        }
    })
}

/// True when matmul_large.wgsl can run `p` and is the better choice.
fn use_large(p: &MatmulParams, v: &MatmulVariant) -> bool {
    let large = LARGE_TILE as u32;
    let fits = p.m.is_multiple_of(large)
        && p.n.is_multiple_of(large)
        && p.k.is_multiple_of(TK as u32)
        && p.k > 0
        && v.a_mode >= 2
        && v.b_mode >= 2;
    if !fits {
        return false;
    }
    match forced_tiles() {
        Some(t) => t == LARGE_TILE,
        None => {
            let tiles = (p.m / large) as usize * (p.n / large) as usize * p.batch as usize;
            tiles >= LARGE_MIN_TILES
        }
    }
}

/// `[batch, rows, cols, batch stride, row stride, col stride]` of a rank-2
/// or rank-3 view. Strides of size-1 dims are irrelevant, so they become 0
/// and cannot spoil the alignment checks of [`variant`].
fn batched(l: &Layout) -> Result<[usize; 6]> {
    let (shape, strides): (Vec<usize>, Vec<usize>) = match l.rank() {
        2 => (
            vec![1, l.shape[0], l.shape[1]],
            vec![0, l.strides[0], l.strides[1]],
        ),
        3 => (l.shape.clone(), l.strides.clone()),
        r => {
            return Err(Error::RankMismatch {
                op: "matmul",
                expected: "2 or 3".into(),
                found: r,
                shape: l.shape.clone(),
            })
        }
    };
    let s = |d: usize| if shape[d] == 1 { 0 } else { strides[d] };
    Ok([shape[0], shape[1], shape[2], s(0), s(1), s(2)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_follow_strides_and_alignment() {
        let base = MatmulParams {
            m: 128,
            n: 64,
            k: 32,
            batch: 1,
            a_sm: 32,
            a_sk: 1,
            b_sk: 64,
            b_sn: 1,
            ..MatmulParams::default()
        };
        assert_eq!(
            variant(&base),
            MatmulVariant {
                a_mode: 2,
                b_mode: 2,
                aligned: true
            }
        );
        // A transposed (stored [K, M]) loads vec4s along M; an odd offset
        // forbids vec4 loads of B.
        let t = MatmulParams {
            a_sm: 1,
            a_sk: 128,
            b_offset: 1,
            n: 63,
            ..base
        };
        let v = variant(&t);
        assert_eq!((v.a_mode, v.b_mode, v.aligned), (3, 0, false));
    }
}
