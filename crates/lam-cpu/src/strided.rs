//! Walking arbitrary views. Every layout an op receives may be transposed,
//! narrowed, broadcast (stride 0) or offset; these helpers turn it into
//! either a contiguous slice or a list of row starts, which the op loops then
//! index with plain arithmetic.

use std::borrow::Cow;

use lam_core::Layout;

/// The elements of a view, row-major: borrowed when the view is already a
/// contiguous slice of `data`, gathered into a new vector otherwise.
pub(crate) fn gather<'a, T: Copy>(data: &'a [T], layout: &Layout) -> Cow<'a, [T]> {
    if layout.is_contiguous() {
        Cow::Borrowed(&data[layout.offset..layout.offset + layout.numel()])
    } else {
        Cow::Owned(layout.offsets().map(|o| data[o]).collect())
    }
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
        assert_eq!(gather(&data, &l).into_owned(), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn rows_of_a_scalar() {
        let l = Layout::contiguous(&[]);
        let rows = Rows::of(&l);
        assert_eq!((rows.starts, rows.len), (vec![0], 1));
    }
}
