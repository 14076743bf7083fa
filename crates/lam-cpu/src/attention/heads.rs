//! The attention's `[B, H, N, F]` operands as the tile loops read them:
//! rows of `F` contiguous features at a row stride, head by head.
//!
//! MultiheadAttention splits its projections into heads as views: `[B, N,
//! H·F]` seen as `[B, H, N, F]`, each head's rows `H·F` apart. Such a view
//! is read in place — the tile products take any row stride — where a
//! copy into contiguous heads cost a quarter of a `gpt` head's forward on
//! 2 cores. Views whose features are not contiguous are gathered first.

use lam_core::{Error, Layout, Result};

use super::tiles::Mat;
use super::OP;
use crate::strided::{gather, Gathered};

/// One `[B, H, N, F]` operand.
pub(super) struct HeadRows<'a> {
    /// The buffer (from `offset`), or a contiguous copy of the view.
    data: Gathered<'a, f32>,
    offset: usize,
    /// Strides of the batch, head and row dims.
    strides: [usize; 3],
    heads: usize,
}

impl<'a> HeadRows<'a> {
    /// The view `layout` of `data`, which the caller has bounds-checked.
    pub(super) fn read(data: &'a [f32], layout: &Layout) -> Result<HeadRows<'a>> {
        let (shape, st) = (&layout.shape, &layout.strides);
        let heads = shape[1];
        if shape[3] <= 1 || st[3] == 1 {
            Ok(HeadRows {
                data: Gathered::Borrowed(data),
                offset: layout.offset,
                strides: [st[0], st[1], st[2]],
                heads,
            })
        } else {
            let (n, f) = (shape[2], shape[3]);
            Ok(HeadRows {
                data: gather(data, layout)?,
                offset: 0,
                strides: [heads * n * f, n * f, f],
                heads,
            })
        }
    }

    /// Where row `row` of batch·head `head` starts.
    fn start(&self, head: usize, row: usize) -> usize {
        let [b, h, r] = self.strides;
        self.offset + (head / self.heads) * b + (head % self.heads) * h + row * r
    }

    /// Rows from `first` of batch·head `head`, as the left or right operand
    /// of a tile product (`F` columns, unit column stride).
    pub(super) fn rows(&self, head: usize, first: usize) -> Mat<'_> {
        Mat {
            data: self.data.get(self.start(head, first)..).unwrap_or_default(),
            row: self.strides[2],
            col: 1,
        }
    }

    /// Rows from `first` of batch·head `head`, transposed: `F` rows, one
    /// column per row of the operand (keys as the right operand of
    /// `q kᵀ`).
    pub(super) fn columns(&self, head: usize, first: usize) -> Mat<'_> {
        Mat {
            row: 1,
            col: self.strides[2],
            ..self.rows(head, first)
        }
    }

    /// The `width` features of row `row` of batch·head `head`.
    pub(super) fn row(&self, head: usize, row: usize, width: usize) -> Result<&[f32]> {
        let start = self.start(head, row);
        self.data
            .get(start..start + width)
            .ok_or_else(|| Error::invalid(OP, "an attention row outside its operand"))
    }
}
