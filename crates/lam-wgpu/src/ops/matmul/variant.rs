//! What a product's strides and sizes allow: the load mode of each operand
//! ([`MatmulVariant`]: vec4 loads along the unit-stride dim where the
//! alignment allows, scalar loads otherwise), whether matmul_large.wgsl's
//! tiles fit it, and a view's batched dims and strides, from which both
//! are read.

use lam_core::{Error, Layout, Result};

use super::{LARGE_TILE, NARROW_TILE, TILE, TK};
use crate::params::MatmulParams;

/// The pipeline constants of one matmul variant (see matmul.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatmulVariant {
    pub a_mode: u32,
    pub b_mode: u32,
    pub aligned: bool,
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

/// True when matmul_large.wgsl can run `p` on 128 x 128 tiles (`Tile128`):
/// sizes multiples of its tile (16 along K) and both operands
/// vec4-loadable.
pub(super) fn fits_large(p: &MatmulParams, v: &MatmulVariant) -> bool {
    fits_large_tiles(p, v, LARGE_TILE)
}

/// [`fits_large`] for 128 x 64 tiles (`Tile128x64`).
pub(super) fn fits_narrow(p: &MatmulParams, v: &MatmulVariant) -> bool {
    fits_large_tiles(p, v, NARROW_TILE)
}

/// True when matmul_large.wgsl can run `p` on tiles of 128 rows and
/// `tile_n` columns.
fn fits_large_tiles(p: &MatmulParams, v: &MatmulVariant, tile_n: usize) -> bool {
    p.m.is_multiple_of(LARGE_TILE as u32)
        && p.n.is_multiple_of(tile_n as u32)
        && p.k.is_multiple_of(TK as u32)
        && p.k > 0
        && v.a_mode >= 2
        && v.b_mode >= 2
}

/// `[batch, rows, cols, batch stride, row stride, col stride]` of a rank-2
/// or rank-3 view. Strides of size-1 dims are irrelevant, so they become 0
/// and cannot spoil the alignment checks of [`variant`].
pub(super) fn batched(l: &Layout) -> Result<[usize; 6]> {
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
