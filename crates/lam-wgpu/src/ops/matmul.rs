//! Batched matrix product (matmul.wgsl): `[B, M, K] x [B, K, N] -> [B, M, N]`
//! with any strides, so transposes and broadcast batches (stride 0) are
//! folded into the kernel's loads rather than copied.
//!
//! [`MatmulVariant`] picks the pipeline: for each operand, vec4 loads along
//! whichever dim has stride 1 when the alignment allows, scalar loads
//! otherwise; and an edge-check-free path when every dim is a tile multiple.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Error, Layout, Result, Storage};

use super::{input, output};
use crate::context::Gpu;
use crate::kernels::MATMUL;
use crate::params::{to_u32, MatmulParams};

const TILE: usize = 64;
const TK: usize = 16;
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
    };
    let v = variant(&p);
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
        ],
        bytemuck::bytes_of(&p),
        &[a.buffer(), b.buffer(), out.buffer()],
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
