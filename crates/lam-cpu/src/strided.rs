//! Walking arbitrary views. Every layout an op receives may be transposed,
//! narrowed, broadcast (stride 0) or offset; these helpers turn it into
//! either a contiguous slice or a list of row starts, which the op loops then
//! index with plain arithmetic.

use lam_core::{Layout, Result};

use crate::pool::ZeroBits;
use crate::transpose::transpose_rows_into;

/// The elements of a view, row-major: borrowed when the view is already a
/// contiguous slice of `data`, gathered into a scratch vector otherwise (an
/// error when that vector cannot be allocated: a broadcast view may claim
/// far more elements than its buffer holds). A gathered `f32` vector goes
/// back to the pool when dropped: ops gather their strided inputs at every
/// call, and vectors freed to the allocator come back as fresh pages, a
/// page fault per 4 KiB.
pub(crate) fn gather<'a, T: ZeroBits>(data: &'a [T], layout: &Layout) -> Result<Gathered<'a, T>> {
    if layout.is_contiguous() {
        Ok(Gathered::Borrowed(
            &data[layout.offset..layout.offset + layout.numel()],
        ))
    } else {
        let mut out = T::scratch(layout.numel())?;
        gather_into(data, layout, &mut out);
        Ok(Gathered::Owned(out))
    }
}

/// What [`gather`] returns: a slice of the input or a scratch copy, which
/// is recycled when dropped unless taken with [`Gathered::into_owned`].
pub(crate) enum Gathered<'a, T: ZeroBits> {
    Borrowed(&'a [T]),
    Owned(Vec<T>),
}

impl<T: ZeroBits> Gathered<'_, T> {
    /// The elements as a vector of their own (a copy when borrowed).
    pub(crate) fn into_owned(mut self) -> Vec<T> {
        match &mut self {
            Gathered::Borrowed(s) => s.to_vec(),
            Gathered::Owned(v) => std::mem::take(v),
        }
    }
}

impl<T: ZeroBits> std::ops::Deref for Gathered<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Gathered::Borrowed(s) => s,
            Gathered::Owned(v) => v,
        }
    }
}

impl<T: ZeroBits> Drop for Gathered<'_, T> {
    fn drop(&mut self) {
        if let Gathered::Owned(v) = self {
            T::recycle(std::mem::take(v));
        }
    }
}

/// Side of the square blocks in which a transposed matrix is copied: both
/// the rows read and the rows written stay in cache within one block.
const TRANSPOSE_BLOCK: usize = 32;

/// Writes the elements of a view of `data`, row-major, into `out` (which
/// holds exactly `layout.numel()` elements).
///
/// The common non-contiguous views get loops without per-element index
/// arithmetic: a transposed matrix (the gradient of a `Linear` weight, say)
/// is copied in cache-sized blocks, anything else row by row.
pub(crate) fn gather_into<T: Copy>(data: &[T], layout: &Layout, out: &mut [T]) {
    let n = layout.numel();
    if n == 0 {
        return;
    }
    if layout.is_contiguous() {
        out.copy_from_slice(&data[layout.offset..layout.offset + n]);
        return;
    }
    if layout.strides.iter().all(|&s| s == 0) {
        // One value broadcast (the zeros a slice's gradient is padded with).
        out[..n].fill(data[layout.offset]);
        return;
    }
    let rank = layout.rank();
    if rank >= 2 && layout.strides[rank - 2] == 1 && layout.strides[rank - 1] != 1 {
        let (rows, cols) = (layout.shape[rank - 2], layout.shape[rank - 1]);
        let col_stride = layout.strides[rank - 1];
        let outer = sub_layout(layout, &(0..rank - 2).collect::<Vec<_>>(), layout.offset);
        for (dst, base) in out.chunks_mut(rows * cols).zip(outer.offsets()) {
            for i0 in (0..rows).step_by(TRANSPOSE_BLOCK) {
                for j0 in (0..cols).step_by(TRANSPOSE_BLOCK) {
                    for i in i0..(i0 + TRANSPOSE_BLOCK).min(rows) {
                        let row = &mut dst[i * cols..(i + 1) * cols];
                        for (j, o) in row
                            .iter_mut()
                            .enumerate()
                            .take((j0 + TRANSPOSE_BLOCK).min(cols))
                            .skip(j0)
                        {
                            *o = data[base + i + j * col_stride];
                        }
                    }
                }
            }
        }
        return;
    }
    let rows = Rows::of(layout);
    for (dst, &start) in out.chunks_mut(rows.len).zip(&rows.starts) {
        if rows.stride == 1 {
            dst.copy_from_slice(&data[start..start + rows.len]);
        } else {
            for (j, o) in dst.iter_mut().enumerate() {
                *o = data[start + j * rows.stride];
            }
        }
    }
}

/// [`gather_into`] for `f32`, where a view that transposes matrices (the
/// last two dims of a buffer swapped: `w.t().contiguous()`, or a block of
/// such a view's rows) is copied by
/// [`crate::transpose::transpose_rows_into`], whose 8 × 8 register
/// squares move a `[1024, 256]` matrix 7× faster than the generic blocks.
pub(crate) fn gather_f32_into(data: &[f32], layout: &Layout, out: &mut [f32]) {
    let rank = layout.rank();
    if rank >= 2 && layout.numel() > 0 && !layout.is_contiguous() {
        let (rows, cols) = (layout.shape[rank - 2], layout.shape[rank - 1]);
        let ld = layout.strides[rank - 1];
        if layout.strides[rank - 2] == 1 && ld >= rows {
            let outer = sub_layout(layout, &(0..rank - 2).collect::<Vec<_>>(), layout.offset);
            for (dst, base) in out.chunks_mut(rows * cols).zip(outer.offsets()) {
                // The view's `[rows, cols]` matrix is the transpose of the
                // row-major `[cols, rows]` one stored from `base` with its
                // rows `ld` apart (part of a transposed matrix's columns).
                let src = &data[base..base + (cols - 1) * ld + rows];
                transpose_rows_into(src, cols, rows, ld, dst);
            }
            return;
        }
    }
    gather_into(data, layout, out);
}

/// A view seen as rows along its last dim: element `j` of row `r` is at
/// `starts[r] + j * stride`. A rank-0 view is one row of one element.
#[derive(Debug)]
pub(crate) struct Rows {
    pub starts: Vec<usize>,
    pub len: usize,
    pub stride: usize,
}

impl Rows {
    pub fn of(layout: &Layout) -> Rows {
        let Some((&len, outer_shape)) = layout.shape.split_last() else {
            return Rows {
                starts: vec![layout.offset],
                len: 1,
                stride: 0,
            };
        };
        let rank = layout.rank();
        let outer = Layout {
            shape: outer_shape.to_vec(),
            strides: layout.strides[..rank - 1].to_vec(),
            offset: layout.offset,
        };
        Rows {
            starts: outer.offsets().collect(),
            len,
            stride: layout.strides[rank - 1],
        }
    }
}

/// `layouts` (all of one shape) with their dims of size 1 dropped and each
/// pair of neighbouring dims merged where every layout walks them as one
/// (`stride[i] == stride[i + 1] · shape[i + 1]`): the same elements in the
/// same row-major order, in as few and as long rows as possible. A
/// `[N, C, H, W]` view beside a `[1, C, 1, 1]` one broadcast to it becomes
/// `[N, C, H·W]` rows of `H·W` elements.
pub(crate) fn coalesce<const K: usize>(layouts: [&Layout; K]) -> [Layout; K] {
    let shape = &layouts[0].shape;
    let mut out: [Layout; K] = std::array::from_fn(|k| Layout {
        shape: Vec::with_capacity(shape.len()),
        strides: Vec::with_capacity(shape.len()),
        offset: layouts[k].offset,
    });
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let mergeable = !out[0].shape.is_empty()
            && (0..K).all(|k| {
                let last = out[k].strides.len() - 1;
                out[k].strides[last] == layouts[k].strides[d] * size
            });
        for (k, l) in out.iter_mut().enumerate() {
            if mergeable {
                let last = l.shape.len() - 1;
                l.shape[last] *= size;
                l.strides[last] = layouts[k].strides[d];
            } else {
                l.shape.push(size);
                l.strides.push(layouts[k].strides[d]);
            }
        }
    }
    out
}

/// `layout` restricted to the dims in `dims` (in that order), with offset `offset`.
pub(crate) fn sub_layout(layout: &Layout, dims: &[usize], offset: usize) -> Layout {
    Layout {
        shape: dims.iter().map(|&d| layout.shape[d]).collect(),
        strides: dims.iter().map(|&d| layout.strides[d]).collect(),
        offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_transposed_view() {
        // [2, 3] transposed to [3, 2]: row r starts at r, steps by 3.
        let l = Layout::contiguous(&[2, 3]).permute(&[1, 0]).unwrap();
        let rows = Rows::of(&l);
        assert_eq!(rows.starts, vec![0, 1, 2]);
        assert_eq!((rows.len, rows.stride), (2, 3));
        let data = [0, 1, 2, 3, 4, 5];
        assert_eq!(
            gather(&data, &l).unwrap().into_owned(),
            vec![0, 3, 1, 4, 2, 5]
        );
    }

    #[test]
    fn gather_matches_the_offsets_of_awkward_views() {
        // Transposed batches larger than one block, narrowed, broadcast.
        let data: Vec<u32> = (0..3 * 70 * 45).collect();
        let base = Layout::contiguous(&[3, 70, 45]);
        let views = [
            base.permute(&[0, 2, 1]).unwrap(),
            base.permute(&[2, 1, 0]).unwrap(),
            base.permute(&[1, 0, 2]).unwrap(),
            Layout {
                shape: vec![2, 5, 45],
                strides: vec![0, 45, 1],
                offset: 90,
            },
            Layout {
                shape: vec![4, 33],
                strides: vec![1, 70],
                offset: 3,
            },
        ];
        for l in views {
            let want: Vec<u32> = l.offsets().map(|o| data[o]).collect();
            assert_eq!(gather(&data, &l).unwrap().into_owned(), want, "{l:?}");
        }
    }

    #[test]
    fn f32_gathers_transposed_matrices_by_the_offsets() {
        let data: Vec<f32> = (0..5 + 3 * 70 * 45).map(|i| i as f32).collect();
        let at = |shape: &[usize], offset: usize| Layout {
            offset,
            ..Layout::contiguous(shape)
        };
        let views = [
            // Whole batches of matrices transposed, at an offset, odd sizes.
            at(&[3, 70, 45], 5).permute(&[0, 2, 1]).unwrap(),
            at(&[45, 70], 2).permute(&[1, 0]).unwrap(),
            at(&[1, 9], 0).permute(&[1, 0]).unwrap(),
            // Not a whole matrix transposed: the generic path.
            Layout {
                shape: vec![4, 33],
                strides: vec![1, 70],
                offset: 3,
            },
            base_broadcast(),
        ];
        for l in views {
            let want: Vec<f32> = l.offsets().map(|o| data[o]).collect();
            let mut got = vec![f32::NAN; want.len()];
            gather_f32_into(&data, &l, &mut got);
            assert_eq!(got, want, "{l:?}");
        }
    }

    /// A transposed matrix broadcast over a batch (batch stride 0).
    fn base_broadcast() -> Layout {
        Layout {
            shape: vec![3, 45, 70],
            strides: vec![0, 1, 45],
            offset: 1,
        }
    }

    #[test]
    fn coalescing_keeps_every_offset_in_order() {
        let x = Layout::contiguous(&[2, 3, 4, 5]);
        let per_channel = Layout::contiguous(&[1, 3, 1, 1])
            .broadcast_to(&[2, 3, 4, 5])
            .unwrap();
        let [cx, cc] = coalesce([&x, &per_channel]);
        assert_eq!(
            (cx.shape.clone(), cx.strides.clone()),
            (vec![2, 3, 20], vec![60, 20, 1])
        );
        assert_eq!(
            (cc.shape.clone(), cc.strides.clone()),
            (vec![2, 3, 20], vec![0, 1, 0])
        );
        let views = [
            x.clone(),
            per_channel,
            x.permute(&[0, 2, 1, 3]).unwrap(),
            x.narrow(2, 1, 2).unwrap(),
            Layout::contiguous(&[]),
            Layout::contiguous(&[1, 1]),
        ];
        for l in views {
            let [c] = coalesce([&l]);
            assert_eq!(
                c.offsets().collect::<Vec<_>>(),
                l.offsets().collect::<Vec<_>>(),
                "{l:?}"
            );
        }
    }

    #[test]
    fn rows_of_a_scalar() {
        let l = Layout::contiguous(&[]);
        let rows = Rows::of(&l);
        assert_eq!((rows.starts, rows.len), (vec![0], 1));
    }
}
