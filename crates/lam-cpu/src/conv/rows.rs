//! Columns by kernel row, for the commonest convolution: stride 1, no
//! dilation, one group, windows as wide as the image ("same" width, a 3×3
//! window padded by 1) over images whose rows are contiguous.
//!
//! There the columns of taps `(c, i, j)` and `(c, i + 1, j)` are one plane
//! read one image row apart. So for each channel `c` and kernel column `j`
//! one *plane* is built: the image, shifted `j − pw` columns (the columns
//! that fall outside it zero) and padded by `ph` zero rows above and
//! below, `(out_h + kh − 1)·W` values. Kernel row `i`'s columns are then
//! the `[C·kw, out_h·W]` matrix starting `i·W` into the planes, rows one
//! plane apart, and a product is `kh` accumulating products of
//! `[O, C·kw] × [C·kw, L]`, one per kernel row, with the weight regrouped
//! by kernel row. The planes take `kw` copies of the image where the general
//! columns take `kh·kw`: a third of the memory traffic for 3×3 windows.

use lam_core::backend::WindowGeometry;
use lam_core::{Layout, Result};

use super::{Matrix, Shapes};
use crate::pool;

/// The planes of one convolution's images (module docs).
pub(super) struct RowTaps {
    /// Input channels, image height and width.
    c: usize,
    h: usize,
    w: usize,
    /// Kernel rows and columns, padding above and at the left.
    kh: usize,
    kw: usize,
    ph: usize,
    pw: usize,
    /// Rows of a plane, `out_h + kh − 1`.
    rows: usize,
    /// Distance between channels in the input, and between images.
    channel_stride: usize,
    image_stride: usize,
    offset: usize,
}

impl RowTaps {
    /// The planes for this convolution, if it is one they serve.
    pub(super) fn new(g: &WindowGeometry, layout: &Layout, s: &Shapes) -> Option<RowTaps> {
        let [sn, sc, sy, sx] = [0, 1, 2, 3].map(|d| layout.strides[d]);
        let rows_contiguous = sx == 1 && (sy == g.w || g.h == 1);
        let fits = s.groups == 1
            && g.stride == [1, 1]
            && g.dilation == [1, 1]
            && g.out[1] == g.w
            && g.kernel != [1, 1]
            && rows_contiguous
            && s.k > 0
            && s.l > 0;
        fits.then(|| RowTaps {
            c: g.c,
            h: g.h,
            w: g.w,
            kh: g.kernel[0],
            kw: g.kernel[1],
            ph: g.padding[0],
            pw: g.padding[1],
            rows: g.out[0] + g.kernel[0] - 1,
            channel_stride: sc,
            image_stride: sn,
            offset: layout.offset,
        })
    }

    /// Rows of one kernel row's matrix, `C·kw`.
    pub(super) fn k(&self) -> usize {
        self.c * self.kw
    }

    /// Values of one plane.
    pub(super) fn plane(&self) -> usize {
        self.rows * self.w
    }

    /// Values of one image's planes.
    pub(super) fn len(&self) -> usize {
        self.k() * self.plane()
    }

    /// Kernel rows.
    pub(super) fn kernel_rows(&self) -> usize {
        self.kh
    }

    /// The weight `[O, C, kh, kw]` regrouped by kernel row, `[kh, O, C·kw]`.
    pub(super) fn weights(&self, w: &[f32], o: usize) -> Result<Vec<f32>> {
        let (kh, kw, k) = (self.kh, self.kw, self.k());
        let mut out = pool::take(kh * o * k)?;
        for (oc, taps) in w.chunks_exact(kh * kw).enumerate().take(o * self.c) {
            let (oi, c) = (oc / self.c, oc % self.c);
            for (i, row) in taps.chunks_exact(kw).enumerate() {
                let at = (i * o + oi) * k + c * kw;
                out[at..at + kw].copy_from_slice(row);
            }
        }
        Ok(out)
    }

    /// Builds image `n`'s planes (module docs) into `buf` (`len()` values).
    pub(super) fn build(&self, x: &[f32], n: usize, buf: &mut [f32]) {
        let (w, hw, plane) = (self.w, self.h * self.w, self.plane());
        let image = self.offset + n * self.image_stride;
        for (cj, dst) in buf.chunks_exact_mut(plane).enumerate().take(self.k()) {
            let (c, j) = (cj / self.kw, cj % self.kw);
            let src = &x[image + c * self.channel_stride..][..hw];
            // Plane column xq reads image column xq + j − pw.
            let shift = j as isize - self.pw as isize;
            let (above, middle) = dst.split_at_mut(self.ph * w);
            let (middle, below) = middle.split_at_mut(hw);
            above.fill(0.0);
            below.fill(0.0);
            let cut = shift.unsigned_abs().min(w);
            if shift >= 0 {
                middle[..hw - cut].copy_from_slice(&src[cut..]);
                middle[hw - cut..].fill(0.0);
            } else {
                middle[cut..].copy_from_slice(&src[..hw - cut]);
                middle[..cut].fill(0.0);
            }
            // The columns that wrapped round from the next or previous row.
            if cut > 0 {
                for row in middle.chunks_exact_mut(w) {
                    let outside = if shift >= 0 {
                        &mut row[w - cut..]
                    } else {
                        &mut row[..cut]
                    };
                    outside.fill(0.0);
                }
            }
        }
    }

    /// Kernel row `i`'s `[C·kw, L]` matrix in built planes `buf`.
    pub(super) fn matrix<'a>(&self, buf: &'a [f32], i: usize) -> Matrix<'a> {
        Matrix {
            data: &buf[i * self.w..],
            rs: self.plane(),
            cs: 1,
        }
    }
}

impl RowTaps {
    /// Kernel row `i`'s part of planes-shaped gradients `buf`: where
    /// [`RowTaps::matrix`] reads, as a destination with rows `plane()`
    /// apart.
    pub(super) fn matrix_mut<'a>(&self, buf: &'a mut [f32], i: usize) -> &'a mut [f32] {
        &mut buf[i * self.w..]
    }

    /// Adds the planes' gradient `dq` (each kernel row's columns' gradient
    /// added at its place, as [`RowTaps::matrix_mut`] gives it) into the
    /// image's gradient `dx` (`[C, H, W]`, contiguous): each plane onto the
    /// pixels it was read from, shifted back, its columns outside the image
    /// (zeroed here first) and its padding rows dropped.
    pub(super) fn add_planes(&self, dq: &mut [f32], dx: &mut [f32]) {
        let (w, hw, plane) = (self.w, self.h * self.w, self.plane());
        for (cj, q) in dq.chunks_exact_mut(plane).enumerate().take(self.k()) {
            let (c, j) = (cj / self.kw, cj % self.kw);
            let shift = j as isize - self.pw as isize;
            let cut = shift.unsigned_abs().min(w);
            if cut > 0 {
                for row in q.chunks_exact_mut(w) {
                    let outside = if shift >= 0 {
                        &mut row[w - cut..]
                    } else {
                        &mut row[..cut]
                    };
                    outside.fill(0.0);
                }
            }
            // Pixel p (row y, column x) was read at plane index
            // (ph + y)·W + x − shift; the pixels whose index falls outside
            // the plane read only padding columns (zero now) and are skipped.
            let base = (self.ph * w) as isize - shift;
            let first = (-base).max(0) as usize;
            let end = (plane as isize - base).clamp(0, hw as isize) as usize;
            if first >= end {
                continue;
            }
            let from = &q[(base + first as isize) as usize..(base + end as isize) as usize];
            let to = &mut dx[c * hw + first..c * hw + end];
            crate::elementwise::vectorised(|| {
                for (d, &v) in to.iter_mut().zip(from) {
                    *d += v;
                }
            });
        }
    }
}
