//! Direct convolution for small ones: stride 1, no dilation, one group,
//! few taps (`C·kh·kw`), with AVX-512 — LeNet's convolutions, where each
//! image's product is too small for gemm's packing and the columns cost
//! more than the arithmetic.
//!
//! Each image is copied once into zero-padded planes, `W + 2·pw` wide
//! ("wide" rows). Output position `(y, x)` is then *wide* position
//! `q = y·Wp + x`, and tap `(c, i, j)` reads plane `c` at `q + i·Wp + j`:
//! one offset per tap, the same for every position, so the kernels
//! (`kernels.rs`) read a tap's operand as consecutive vectors, with no
//! columns built. A wide row has `kw − 1` positions past the output's
//! width (and the last vector some past its end); those are computed and
//! dropped (the output and the input's gradient), or masked off (the
//! weight's gradient).
//!
//! - Output: per image, `y [O, q] = b + Σ_t w[:, t] · planes[off_t + q]`.
//! - Input's gradient: the same correlation over the output's gradient,
//!   placed in planes of its own (`(kh − 1)` rows and `kw − 1` columns of
//!   zeros before it, rows `Wp` wide) with the kernel flipped: every
//!   read lands on an output position whose window holds that pixel, or on
//!   a zero. A zero times an infinite weight would be a NaN the definition
//!   does not have, so a weight that is not finite takes the general path.
//! - Weight's gradient: `dw[o, t] = Σ_q dy[o, q] · planes[off_t + q]` over
//!   the output positions, `dy` copied into wide rows (zeros between) and
//!   the planes' lanes past the output's width masked off, summed over a
//!   group of images in registers and added into the task's partial sums
//!   (added in task order at the end, as the general path does).

use lam_core::backend::WindowGeometry;
use lam_core::{Layout, Result};

use super::kernels::{self, correlate, weight_sums, LANES};
use super::plan::{Plan, Scratch};
use super::{add_row_sums, Shapes};
use crate::pool;

/// Most taps (`C·kh·kw`) a direct convolution takes: beyond, an image's
/// product is big enough for gemm to reach its speed.
const MAX_TAPS: usize = 160;

/// Most values of one image's planes and wide output: the weight
/// gradient's tiles each stream them once, from the core's cache (larger
/// images take the general path, measured on LeNet and the ResNet
/// benchmark's first stage only).
const MAX_IMAGE_VALUES: usize = 64 * 1024;

/// Most values of one group's planes and wide gradients in the weight's
/// gradient: the group stays in the core's cache.
const GROUP_VALUES: usize = 32 * 1024;

/// A convolution the direct kernels serve, and its padded-plane geometry.
pub(super) struct Direct {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    ph: usize,
    pw: usize,
    /// Width of a padded row.
    wp: usize,
    /// Output rows and columns.
    oh: usize,
    ow: usize,
    /// Vectors of an image's wide output, `⌈oh·Wp / 16⌉`.
    vecs: usize,
    /// Values of one padded input plane: the padded image and the reach
    /// of the last tap past the last vector.
    plane: usize,
    /// Vectors of the input gradient's wide rows, `⌈h·Wp / 16⌉`.
    dx_vecs: usize,
    /// Values of one plane of the output's padded gradient.
    dy_plane: usize,
    /// The input's offset and strides `[n, c, y, x]`.
    offset: usize,
    strides: [usize; 4],
}

impl Direct {
    /// The direct geometry for this convolution, if it is one that the
    /// kernels serve and that runs faster here: images that fit in cache,
    /// in a batch that splits across the threads (the direct path runs each
    /// image on one thread), or a small one.
    pub(super) fn new(g: &WindowGeometry, layout: &Layout, s: &Shapes) -> Option<Direct> {
        let [ph, pw] = g.padding;
        let [kh, kw] = g.kernel;
        let (hp, wp) = (g.h + 2 * ph, g.w + 2 * pw);
        let [oh, ow] = g.out;
        let fits = kernels::available()
            && s.groups == 1
            && g.stride == [1, 1]
            && g.dilation == [1, 1]
            // Empty outputs, images or weights take the general path.
            && s.o > 0
            && g.h * g.w > 0
            && s.k > 0
            && s.k <= MAX_TAPS
            && s.l > 0
            && hp + 1 == oh + kh
            && wp + 1 == ow + kw
            // At most half of a wide row past the output's width.
            && 2 * ow >= wp;
        let threads = rayon::current_num_threads();
        let small = g.n.saturating_mul(s.o * s.k * s.l) < super::plan::PAR_MIN_MACS;
        if !fits || !(g.n >= threads || small) {
            return None;
        }
        let vecs = (oh * wp).div_ceil(LANES);
        let reach = (kh - 1) * wp + kw - 1;
        let plane = (vecs * LANES + reach).max(hp * wp).next_multiple_of(LANES);
        if g.c * plane + s.o * vecs * LANES > MAX_IMAGE_VALUES {
            return None;
        }
        let dx_vecs = (g.h * wp).div_ceil(LANES);
        let dy_reach = (ph + kh - 1) * wp + kw - 1;
        let round = |v: usize| v.next_multiple_of(LANES);
        Some(Direct {
            c: g.c,
            h: g.h,
            w: g.w,
            o: s.o,
            kh,
            kw,
            ph,
            pw,
            wp,
            oh,
            ow,
            vecs,
            plane,
            dx_vecs,
            dy_plane: round((dx_vecs * LANES + dy_reach).max((oh + kh - 1) * wp + kw - 1)),
            offset: layout.offset,
            strides: [0, 1, 2, 3].map(|d| layout.strides[d]),
        })
    }

    /// Values of an image's wide output (or wide output gradient).
    fn wide(&self) -> usize {
        self.vecs * LANES
    }

    /// Tap `(c, i, j)`'s offset into an image's planes, in the weight's
    /// order.
    fn offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.c * self.kh * self.kw);
        for c in 0..self.c {
            for i in 0..self.kh {
                for j in 0..self.kw {
                    offsets.push(c * self.plane + i * self.wp + j);
                }
            }
        }
        offsets
    }

    /// Image `n` of `x` into zero-padded planes `buf` (`C·plane` values).
    fn build_input(&self, x: &[f32], n: usize, buf: &mut [f32]) {
        let [sn, sc, sy, sx] = self.strides;
        buf.fill(0.0);
        for (c, plane) in buf.chunks_exact_mut(self.plane).enumerate() {
            let base = self.offset + n * sn + c * sc;
            for y in 0..self.h {
                let at = (self.ph + y) * self.wp + self.pw;
                let row = &mut plane[at..at + self.w];
                let first = base + y * sy;
                if sx == 1 {
                    row.copy_from_slice(&x[first..first + self.w]);
                } else {
                    for (xi, v) in row.iter_mut().enumerate() {
                        *v = x[first + xi * sx];
                    }
                }
            }
        }
    }

    /// Image `n`'s output gradient `dy_n` (`[O, oh, ow]`) in wide rows,
    /// zeros past each row and after the last, into `buf` (`O·wide()`).
    fn build_wide_grad(&self, dy_n: &[f32], buf: &mut [f32]) {
        buf.fill(0.0);
        for (dst, src) in buf
            .chunks_exact_mut(self.wide())
            .zip(dy_n.chunks_exact(self.oh * self.ow))
        {
            for (d, s) in dst.chunks_mut(self.wp).zip(src.chunks_exact(self.ow)) {
                d[..self.ow].copy_from_slice(s);
            }
        }
    }

    /// Which lanes of each wide output vector are output positions.
    fn masks(&self) -> Vec<u16> {
        (0..self.vecs)
            .map(|v| {
                (0..LANES).fold(0u16, |m, lane| {
                    let q = v * LANES + lane;
                    let inside = q < self.oh * self.wp && q % self.wp < self.ow;
                    m | (u16::from(inside) << lane)
                })
            })
            .collect()
    }

    /// Image `n`'s output gradient into the planes the input's gradient
    /// reads (module docs): `dy[o, y, x]` at `(y + kh − 1)·Wp + x + kw − 1`
    /// of plane `o`, zeros elsewhere.
    fn build_padded_grad(&self, dy_n: &[f32], buf: &mut [f32]) {
        buf.fill(0.0);
        let base = (self.kh - 1) * self.wp + self.kw - 1;
        for (plane, src) in buf
            .chunks_exact_mut(self.dy_plane)
            .zip(dy_n.chunks_exact(self.oh * self.ow))
        {
            for (y, row) in src.chunks_exact(self.ow).enumerate() {
                let at = base + y * self.wp;
                plane[at..at + self.ow].copy_from_slice(row);
            }
        }
    }

    /// Tap `(o, i, j)`'s offset into the padded gradient's planes, for the
    /// input gradient's wide rows `y·Wp + x` (`x` counted from the padded
    /// row's start).
    fn grad_offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.o * self.kh * self.kw);
        for o in 0..self.o {
            for i in 0..self.kh {
                for j in 0..self.kw {
                    offsets.push(o * self.dy_plane + (self.ph + i) * self.wp + j);
                }
            }
        }
        offsets
    }

    /// The weight `[O, C, kh, kw]` flipped for the input's gradient:
    /// `[C, O, kh, kw]`, tap `(o, i, j)` of row `c` being
    /// `w[o, c, kh − 1 − i, kw − 1 − j]`.
    fn flipped(&self, w: &[f32]) -> Result<Vec<f32>> {
        let (taps, k) = (self.kh * self.kw, self.c * self.kh * self.kw);
        let mut out = pool::take(self.c * self.o * taps)?;
        for (row, dst) in out.chunks_exact_mut(self.o * taps).enumerate() {
            for (o, kernel) in dst.chunks_exact_mut(taps).enumerate() {
                let src = &w[o * k + row * taps..][..taps];
                for (d, &v) in kernel.iter_mut().zip(src.iter().rev()) {
                    *d = v;
                }
            }
        }
        Ok(out)
    }
}

/// [`super::conv2d`] by the direct kernels: per image, its planes, the
/// wide output (starting from the bias), and its rows copied out.
pub(super) fn convolve(
    d: &Direct,
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
    let offsets = d.offsets();
    let plan = Plan::new(s, g.n);
    let scratch = Scratch::new(&[d.c * d.plane, d.o * d.wide()], plan.sets())?;
    let mut states = vec![(); plan.tasks];
    plan.for_tasks(
        &mut out,
        image,
        &mut states,
        &scratch,
        |first, count, dst, _, bufs| {
            let [planes, wide] = bufs else { return };
            for (n, y) in dst.chunks_exact_mut(image).take(count).enumerate() {
                d.build_input(x, first + n, planes);
                correlate(planes, &offsets, w, bias, wide, d.vecs);
                for (y_o, wide_o) in y.chunks_exact_mut(s.l).zip(wide.chunks_exact(d.wide())) {
                    for (row, src) in y_o.chunks_exact_mut(d.ow).zip(wide_o.chunks(d.wp)) {
                        row.copy_from_slice(&src[..d.ow]);
                    }
                }
            }
        },
    );
    scratch.finish()?;
    Ok(out)
}

/// [`super::conv2d_grad`] by the direct kernels, into `dx`, `dw` and `db`
/// (zeroed) where `needs` asks. The input's gradient needs a finite weight
/// (module docs): the caller checks.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad(
    d: &Direct,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    s: &Shapes,
    plan: &Plan,
    [need_dx, need_dw, need_db]: [bool; 3],
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) -> Result<()> {
    let image = d.c * d.h * d.w;
    let dy_image = s.o * s.l;
    let offsets = d.offsets();
    let masks = d.masks();
    // Images per group of the weight's gradient: their planes and wide
    // gradients stay in cache while every tile sums over them.
    let group_image = d.c * d.plane + d.o * d.wide();
    let group = (GROUP_VALUES / group_image).clamp(1, plan.per.max(1));
    let (flipped, grad_offsets) = if need_dx {
        (d.flipped(w)?, d.grad_offsets())
    } else {
        (Vec::new(), Vec::new())
    };
    let lens = [
        if need_dw { group * d.c * d.plane } else { 0 },
        if need_dw { group * d.o * d.wide() } else { 0 },
        if need_dx { d.o * d.dy_plane } else { 0 },
        if need_dx { d.c * d.dx_vecs * LANES } else { 0 },
    ];
    let scratch = Scratch::new(&lens, plan.sets())?;
    let mut state = Vec::with_capacity(plan.tasks);
    for _ in 0..plan.tasks {
        let dw_len = if need_dw { s.o * s.k } else { 0 };
        state.push([
            pool::zeroed(dw_len)?,
            vec![0.0; if need_db { s.o } else { 0 }],
        ]);
    }
    let dx_image = if need_dx { image } else { 0 };
    plan.for_tasks(
        dx,
        dx_image,
        &mut state,
        &scratch,
        |first, count, dx, state, bufs| {
            let [task_dw, task_db] = state;
            let [planes, wide_dy, padded_dy, wide_dx] = bufs else {
                return;
            };
            let dy_of = |n: usize| &dy[n * dy_image..(n + 1) * dy_image];
            if need_db {
                for n in first..first + count {
                    add_row_sums(task_db, dy_of(n), s.l);
                }
            }
            if need_dw {
                for start in (first..first + count).step_by(group) {
                    let images = group.min(first + count - start);
                    for i in 0..images {
                        let n = start + i;
                        d.build_input(x, n, &mut planes[i * d.c * d.plane..][..d.c * d.plane]);
                        let wide = d.o * d.wide();
                        d.build_wide_grad(dy_of(n), &mut wide_dy[i * wide..][..wide]);
                    }
                    weight_sums(
                        planes,
                        d.c * d.plane,
                        wide_dy,
                        d.o * d.wide(),
                        images,
                        &offsets,
                        &masks,
                        task_dw,
                    );
                }
            }
            if need_dx {
                let ld = d.dx_vecs * LANES;
                for (i, dx_n) in dx.chunks_exact_mut(image).take(count).enumerate() {
                    d.build_padded_grad(dy_of(first + i), padded_dy);
                    correlate(padded_dy, &grad_offsets, &flipped, None, wide_dx, d.dx_vecs);
                    for (dx_c, wide_c) in dx_n.chunks_exact_mut(d.h * d.w).zip(wide_dx.chunks(ld)) {
                        for (row, src) in dx_c.chunks_exact_mut(d.w).zip(wide_c.chunks(d.wp)) {
                            row.copy_from_slice(&src[d.pw..d.pw + d.w]);
                        }
                    }
                }
            }
        },
    );
    scratch.finish()?;
    if need_dx {
        pool::give(flipped);
    }
    // The tasks' partial sums, added in task order.
    for [task_dw, task_db] in state {
        dw.iter_mut().zip(&task_dw).for_each(|(t, v)| *t += v);
        db.iter_mut().zip(&task_db).for_each(|(t, v)| *t += v);
        pool::give(task_dw);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
