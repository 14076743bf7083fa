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

use super::operands::{product, Matrix};
use super::plan::{Plan, Scratch};
use super::{add_row_sums, fill_bias, Shapes};
use crate::pool;
use crate::transpose::transpose_into;

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
            // An empty image (padded to a non-empty output) has no planes,
            // and a weight without output channels no rows of sums.
            && g.h * g.w > 0
            && s.o > 0
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

/// [`super::conv2d`] through the planes: per image, the planes, then one
/// accumulating product per kernel row.
pub(super) fn convolve(
    rt: &RowTaps,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &WindowGeometry,
    s: &Shapes,
) -> Result<Vec<f32>> {
    let image = s.o * s.l;
    let mut out = pool::take(g.n * image)?;
    if out.is_empty() {
        return Ok(out);
    }
    let (wr, k) = (rt.weights(w, s.o)?, rt.k());
    let plan = Plan::new(s, g.n);
    let scratch = Scratch::new(&[rt.len()], plan.sets())?;
    let mut states = vec![(); plan.tasks];
    plan.for_tasks(
        &mut out,
        image,
        &mut states,
        &scratch,
        |first, count, dst, _, bufs| {
            for (n, y) in dst.chunks_exact_mut(image).take(count).enumerate() {
                if let Some(b) = bias {
                    fill_bias(y, b, s.l);
                }
                rt.build(x, first + n, &mut bufs[0]);
                for i in 0..rt.kernel_rows() {
                    // y [O, L] (+)= w_i [O, C·kw] × planes_i [C·kw, L]
                    let a = Matrix::rows(&wr[i * s.o * k..], k);
                    let planes = rt.matrix(&bufs[0], i);
                    let accumulate = bias.is_some() || i > 0;
                    product(y, s.l, accumulate, a, planes, [s.o, s.l, k], plan.gemm);
                }
            }
        },
    );
    scratch.finish()?;
    pool::give(wr);
    Ok(out)
}

/// [`super::conv2d_grad`] through the planes, into `dx`
/// (zeroed), `dw` and `db` (zeroed) where `needs` asks: per image, the
/// bias's row sums; the weight's gradient, per kernel row, as
/// `planes_i [C·kw, L] × dy[n]ᵀ [L, O]` (dy transposed, as the general
/// path does); the planes' gradient, per kernel row `w_iᵀ [C·kw, O] ×
/// dy[n] [O, L]` accumulated at its place, then added back into `dx[n]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad(
    rt: &RowTaps,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    s: &Shapes,
    plan: &Plan,
    [need_dx, need_dw, need_db]: [bool; 3],
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) -> Result<()> {
    let (k, kh, image) = (rt.k(), rt.kernel_rows(), g.c * g.h * g.w);
    let wr = rt.weights(w, s.o)?;
    let planes = if need_dw { rt.len() } else { 0 };
    let grads = if need_dx { rt.len() } else { 0 };
    let dyt_len = if need_dw { s.o * s.l } else { 0 };
    let scratch = Scratch::new(&[planes, grads, dyt_len], plan.sets())?;
    // Per task: the weight's gradient by kernel row ([kh, C·kw, O]) and the
    // bias's.
    let mut state = Vec::with_capacity(plan.tasks);
    for _ in 0..plan.tasks {
        let dw_len = if need_dw { s.o * s.k } else { 0 };
        let db_len = if need_db { s.o } else { 0 };
        state.push([pool::zeroed(dw_len)?, vec![0.0; db_len]]);
    }
    let dx_image = if need_dx { image } else { 0 };
    plan.for_tasks(
        dx,
        dx_image,
        &mut state,
        &scratch,
        |first, count, dx, state, bufs| {
            let [dwq, db] = state;
            let [planes, dq, dyt] = bufs else { return };
            for i in 0..count {
                let dy_n = &dy[(first + i) * s.o * s.l..(first + i + 1) * s.o * s.l];
                if need_db {
                    add_row_sums(db, dy_n, s.l);
                }
                if need_dw {
                    rt.build(x, first + i, planes);
                    transpose_into(dy_n, s.o, s.l, dyt);
                    for r in 0..kh {
                        // dwq_r [C·kw, O] += planes_r [C·kw, L] × dyᵀ [L, O]
                        let dst = &mut dwq[r * k * s.o..(r + 1) * k * s.o];
                        let b = Matrix::rows(dyt, s.o);
                        product(
                            dst,
                            s.o,
                            true,
                            rt.matrix(planes, r),
                            b,
                            [k, s.o, s.l],
                            plan.gemm,
                        );
                    }
                }
                if need_dx {
                    dq.fill(0.0);
                    for r in 0..kh {
                        // dq_r [C·kw, L] += w_rᵀ [C·kw, O] × dy[n] [O, L]
                        let a = Matrix::rows(&wr[r * s.o * k..], k).transposed();
                        let b = Matrix::rows(dy_n, s.l);
                        let dst = rt.matrix_mut(dq, r);
                        product(dst, rt.plane(), true, a, b, [k, s.l, s.o], plan.gemm);
                    }
                    rt.add_planes(dq, &mut dx[i * image..(i + 1) * image]);
                }
            }
        },
    );
    scratch.finish()?;
    pool::give(wr);
    // The tasks' partial sums in task order; dw [O, C, kh, kw] from the
    // rows (r, c, j) of dwq.
    let mut dwq = pool::zeroed(if need_dw { s.o * s.k } else { 0 })?;
    for [task_dwq, task_db] in state {
        dwq.iter_mut().zip(&task_dwq).for_each(|(t, v)| *t += v);
        db.iter_mut().zip(&task_db).for_each(|(t, v)| *t += v);
        pool::give(task_dwq);
    }
    if need_dw {
        let (kw, taps) = (g.kernel[1], g.taps());
        for (row, grads) in dwq.chunks_exact(s.o).enumerate() {
            let (r, cj) = (row / k, row % k);
            let (c, j) = (cj / kw, cj % kw);
            for (o, &v) in grads.iter().enumerate() {
                dw[o * s.k + c * taps + r * kw + j] = v;
            }
        }
    }
    pool::give(dwq);
    Ok(())
}

#[cfg(test)]
mod tests {
    use lam_core::backend::WindowGeometry;
    use lam_core::{Backend, Layout};

    use crate::conv::reference::{direct, direct_grad};
    use crate::test_util::*;

    #[test]
    fn same_width_windows_by_kernel_row_match_the_definition() {
        // Stride 1 windows as wide as the image run by kernel row (rows.rs):
        // square and oblong kernels, row padding of 0 to 2, images one row
        // high, batches below and above the thread count, with and without
        // a bias; and a strided view whose channels are not adjacent.
        let b = backend();
        let cases = [
            ([3, 2, 4, 5], [4, 3, 3], [1, 1]),
            ([1, 3, 6, 7], [2, 5, 5], [2, 2]),
            ([5, 2, 3, 4], [3, 2, 3], [0, 1]),
            ([2, 1, 1, 9], [2, 1, 3], [0, 1]),
            ([2, 4, 5, 3], [3, 3, 1], [2, 0]),
            ([9, 3, 2, 2], [2, 3, 3], [1, 1]),
        ];
        for (k, ([n, c, h, wd], [o, kh, kw], [ph, pw])) in cases.into_iter().enumerate() {
            let g = WindowGeometry {
                n,
                c,
                h,
                w: wd,
                kernel: [kh, kw],
                stride: [1, 1],
                padding: [ph, pw],
                dilation: [1, 1],
                out: [h + 2 * ph + 1 - kh, wd],
            };
            let seed = 10 * k as u64;
            let xs = values(n * c * h * wd, seed);
            let ws = values(o * c * kh * kw, seed + 1);
            let bs = values(o, seed + 2);
            let (x, xl) = f32s(&xs, &g.image_shape());
            let (w, wl) = f32s(&ws, &[o, c, kh, kw]);
            let (bias, bl) = f32s(&bs, &[o]);
            let len = n * o * g.out[0] * wd;
            for with_bias in [false, true] {
                let bias_view = with_bias.then_some((&bias, &bl));
                let y = b
                    .fused_conv2d((&x, &xl), (&w, &wl), bias_view, &g, 1)
                    .unwrap();
                let want = direct(
                    &xs,
                    &ws,
                    with_bias.then_some(&bs[..]),
                    [n, c, h, wd],
                    [o, kh, kw],
                    [ph, pw],
                );
                assert_close(&read(&y.unwrap(), &[len]), &want, 1e-5);
            }
            let dys = values(len, seed + 3);
            let (dy, dyl) = f32s(&dys, &[n, o, g.out[0], wd]);
            let want = direct_grad(&dys, &xs, &ws, [n, c, h, wd], [o, kh, kw], [ph, pw]);
            for needs in [
                [true, true, true],
                [true, false, false],
                [false, true, false],
            ] {
                let got = b
                    .fused_conv2d_grad((&dy, &dyl), (&x, &xl), (&w, &wl), &g, 1, needs)
                    .unwrap()
                    .unwrap();
                for (d, (got, want)) in got.iter().zip(&want).enumerate() {
                    match got {
                        Some(v) => assert_close(&read(v, &[want.len()]), want, 1e-4),
                        None => assert!(!needs[d], "case {k}: gradient {d} missing"),
                    }
                }
            }
        }
        // Channels two planes apart: every other channel of a [1, 4, 4, 5].
        let g = WindowGeometry {
            n: 1,
            c: 2,
            h: 4,
            w: 5,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            out: [4, 5],
        };
        let xs = values(4 * 20, 7);
        let (x, _) = f32s(&xs, &[1, 4, 4, 5]);
        let xl = Layout {
            strides: vec![80, 40, 5, 1],
            ..Layout::contiguous(&[1, 2, 4, 5])
        };
        let ws = values(3 * 2 * 9, 8);
        let (w, wl) = f32s(&ws, &[3, 2, 3, 3]);
        let picked: Vec<f32> = xs[..20].iter().chain(&xs[40..60]).copied().collect();
        let y = b.fused_conv2d((&x, &xl), (&w, &wl), None, &g, 1).unwrap();
        let want = direct(&picked, &ws, None, [1, 2, 4, 5], [3, 3, 3], [1, 1]);
        assert_close(&read(&y.unwrap(), &[3 * 20]), &want, 1e-5);
    }
}
