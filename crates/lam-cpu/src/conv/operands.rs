//! The operands of a convolution's products: the input images and how an
//! image's columns are read ([`Source`], [`Cols`]), strided matrices
//! ([`Matrix`]), the gemm call ([`product`]) and col2im.

use gemm::{gemm, Parallelism};
use lam_core::backend::WindowGeometry;
use lam_core::Layout;

use super::Shapes;
use crate::parallel::for_chunks;
use crate::window::{
    add_shifted_row, add_tap_row, clear_padding_columns, fill_shifted_row, fill_tap_row,
    rows_are_shifted_plane, tap_spans, TapSpan,
};

/// The input images and how to read an image's columns.
pub(super) struct Source<'a> {
    pub(super) x: &'a [f32],
    pub(super) layout: &'a Layout,
    pub(super) g: &'a WindowGeometry,
    pub(super) spans: Vec<TapSpan>,
    /// A 1×1, stride-1, unpadded window over images whose pixels are one
    /// stride apart: the image is its own columns.
    pub(super) pointwise: bool,
    /// That stride.
    pub(super) pixel_stride: usize,
}

impl<'a> Source<'a> {
    pub(super) fn new(
        x: &'a [f32],
        layout: &'a Layout,
        g: &'a WindowGeometry,
        s: &Shapes,
    ) -> Source<'a> {
        let [_, _, sy, sx] = [0, 1, 2, 3].map(|d| layout.strides[d]);
        let window_1x1 = g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0, 0];
        let pixel_stride = match (g.h, g.w) {
            (1, _) => Some(sx),
            (_, 1) => Some(sy),
            _ => (sy == g.w * sx).then_some(sx),
        };
        Source {
            x,
            layout,
            g,
            spans: tap_spans(g),
            pointwise: window_1x1 && pixel_stride.is_some() && s.l > 0,
            pixel_stride: pixel_stride.unwrap_or(0),
        }
    }

    /// Elements of a task's columns buffer.
    pub(super) fn cols_len(&self, s: &Shapes) -> usize {
        if self.pointwise {
            0
        } else {
            s.groups * s.k * s.l
        }
    }

    /// Image `n`'s columns `[G, K, L]`: the image itself when pointwise,
    /// else built into `buf`.
    pub(super) fn columns<'b>(
        &'b self,
        n: usize,
        buf: &'b mut [f32],
        s: &Shapes,
        work: usize,
    ) -> Cols<'b> {
        let st = &self.layout.strides;
        let image = self.layout.offset + n * st[0];
        if self.pointwise {
            // A stride of a dim of size 1 is never used and may be anything.
            let rows = if s.cg > 1 { st[1] } else { 0 };
            let cols = if s.l > 1 { self.pixel_stride } else { 0 };
            return Cols {
                data: &self.x[image..],
                group_step: s.cg * st[1],
                rs: rows,
                cs: cols,
            };
        }
        let (taps, l) = (self.g.taps(), s.l);
        let shifted = rows_are_shifted_plane(self.g, [st[2], st[3]]);
        for_chunks(buf, l, work, |start, row| {
            let r = start / l;
            let (c, t) = (r / taps, r % taps);
            let (base, span) = (image + c * st[1], &self.spans[t]);
            if shifted {
                fill_shifted_row(self.x, base, span, self.g, 0.0, row);
            } else {
                fill_tap_row(self.x, base, [st[2], st[3]], span, self.g, 0.0, row);
            }
        });
        Cols {
            data: buf,
            group_step: s.k * l,
            rs: l,
            cs: 1,
        }
    }
}

/// One image's columns: group `gi`'s `[K, L]` matrix starts at
/// `gi·group_step` with row and column strides `rs`, `cs`.
pub(super) struct Cols<'a> {
    pub(super) data: &'a [f32],
    pub(super) group_step: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl Cols<'_> {
    #[inline]
    pub(super) fn group(&self, gi: usize) -> Matrix<'_> {
        Matrix {
            data: &self.data[gi * self.group_step..],
            rs: self.rs,
            cs: self.cs,
        }
    }
}

/// A matrix operand: element `(r, c)` at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    pub(super) data: &'a [f32],
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a> Matrix<'a> {
    /// Row-major with rows `ld` apart.
    #[inline]
    pub(super) fn rows(data: &'a [f32], ld: usize) -> Matrix<'a> {
        Matrix {
            data,
            rs: ld,
            cs: 1,
        }
    }

    #[inline]
    pub(super) fn transposed(self) -> Matrix<'a> {
        Matrix {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether an `[rows, cols]` matrix lies inside `data`.
    #[inline]
    pub(super) fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst [m, n]` (row-major, rows `ld` apart) `= a [m, k] × b [k, n]`, or
/// `+=` when `accumulate`.
pub(super) fn product(
    dst: &mut [f32],
    ld: usize,
    accumulate: bool,
    a: Matrix,
    b: Matrix,
    [m, n, k]: [usize; 3],
    parallelism: Parallelism,
) {
    if m * n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(ld).take(m).for_each(|r| r[..n].fill(0.0));
        }
        return;
    }
    // Every index gemm touches is inside its slice; the callers' views
    // were bounds-checked, so this failing is a bug in this file.
    assert!(
        a.holds(m, k) && b.holds(k, n) && (m - 1) * ld + n <= dst.len(),
        "conv2d: a [{m}, {k}] × [{k}, {n}] product outside its buffers"
    );
    // SAFETY: checked just above: for every r < m, c < n, q < k the
    // offsets r·ld + c, r·a.rs + q·a.cs and q·b.rs + c·b.cs lie inside
    // `dst`, `a.data` and `b.data`; strides are below the slice lengths
    // (so fit in isize) or multiplied only by 0. `dst` is exclusively
    // borrowed and does not overlap the shared `a` and `b`. gemm computes
    // dst = alpha·dst + beta·a·b and reads `dst` only when `accumulate`.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// col2im of one image: `cols` `[C·kh·kw, L]` (contiguous) added into the
/// image's planes `img` `[C, H·W]`, one plane per `for_chunks` task. Where
/// the rows are a shifted plane, the padding entries of `cols` are zeroed
/// first so that each tap's row is added as one range.
pub(super) fn col2im(
    cols: &mut [f32],
    g: &WindowGeometry,
    spans: &[TapSpan],
    img: &mut [f32],
    work: usize,
) {
    let (taps, l, plane) = (g.taps(), g.positions(), g.h * g.w);
    let shifted = rows_are_shifted_plane(g, [g.w, 1]);
    if shifted {
        for_chunks(cols, l, work, |start, row| {
            clear_padding_columns(&spans[(start / l) % taps], g, 0.0, row);
        });
    }
    let cols = &*cols;
    for_chunks(img, plane, work, |start, p| {
        let c = start / plane;
        for (t, span) in spans.iter().enumerate() {
            let row = (c * taps + t) * l;
            if shifted {
                add_shifted_row(&cols[row..row + l], span, g, p);
            } else {
                add_tap_row(cols, row, 1, span, g, p);
            }
        }
    });
}
