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
mod tests {
    use lam_core::backend::WindowGeometry;
    use lam_core::{Backend, Layout};

    use super::super::Shapes;
    use super::*;
    use crate::conv::reference::{direct, direct_grad};
    use crate::test_util::*;

    /// A stride-1 window geometry.
    fn geometry(
        [n, c, h, w]: [usize; 4],
        kernel: [usize; 2],
        padding: [usize; 2],
    ) -> WindowGeometry {
        WindowGeometry {
            n,
            c,
            h,
            w,
            kernel,
            stride: [1, 1],
            padding,
            dilation: [1, 1],
            out: [0, 1].map(|d| [h, w][d] + 2 * padding[d] + 1 - kernel[d]),
        }
    }

    /// Equal where either is not finite (a NaN where the other has one),
    /// close elsewhere.
    fn assert_matches(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let ok = if g.is_finite() && w.is_finite() {
                (g - w).abs() <= tol * (1.0 + w.abs())
            } else {
                g == w || (g.is_nan() && w.is_nan())
            };
            assert!(ok, "{what}, element {i}: got {g}, want {w}");
        }
    }

    #[test]
    fn direct_convolutions_match_the_definition() {
        // LeNet's two convolutions (smaller batches), oblong kernels and
        // paddings, rows of fewer and more than 16 positions, output
        // channels in tiles of 6 and a remainder, 1 to 14 input channels,
        // with and without a bias, every subset of gradients; batches
        // below and above the thread count. Each must take the direct
        // path (where the processor has AVX-512).
        let b = backend();
        let cases = [
            ([3, 1, 28, 28], [6, 5, 5], [2, 2]),
            ([5, 6, 14, 14], [16, 5, 5], [0, 0]),
            ([2, 3, 7, 9], [13, 3, 2], [1, 0]),
            ([1, 2, 5, 33], [4, 1, 3], [0, 1]),
            ([4, 14, 6, 4], [7, 3, 3], [1, 1]),
            ([9, 2, 3, 5], [1, 2, 4], [2, 3]),
        ];
        for (k, ([n, c, h, wd], [o, kh, kw], [ph, pw])) in cases.into_iter().enumerate() {
            let g = geometry([n, c, h, wd], [kh, kw], [ph, pw]);
            let seed = 100 + 10 * k as u64;
            let xs = values(n * c * h * wd, seed);
            let ws = values(o * c * kh * kw, seed + 1);
            let bs = values(o, seed + 2);
            let (x, xl) = f32s(&xs, &g.image_shape());
            let (w, wl) = f32s(&ws, &[o, c, kh, kw]);
            let (bias, bl) = f32s(&bs, &[o]);
            if kernels::available() {
                let s = Shapes::new("test", &xl, &wl, &g, 1).unwrap();
                assert!(Direct::new(&g, &xl, &s).is_some(), "case {k}: not direct");
            }
            let len = n * o * g.out[0] * g.out[1];
            let shape = ([n, c, h, wd], [o, kh, kw], [ph, pw]);
            for with_bias in [false, true] {
                let y = b
                    .fused_conv2d(
                        (&x, &xl),
                        (&w, &wl),
                        with_bias.then_some((&bias, &bl)),
                        &g,
                        1,
                    )
                    .unwrap();
                let want = direct(
                    &xs,
                    &ws,
                    with_bias.then_some(&bs[..]),
                    shape.0,
                    shape.1,
                    shape.2,
                );
                assert_matches(
                    &read(&y.unwrap(), &[len]),
                    &want,
                    1e-5,
                    &format!("case {k} y"),
                );
            }
            let dys = values(len, seed + 3);
            let (dy, dyl) = f32s(&dys, &[n, o, g.out[0], g.out[1]]);
            let want = direct_grad(&dys, &xs, &ws, shape.0, shape.1, shape.2);
            for mask in 1..8 {
                let needs = [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0];
                let got = b
                    .fused_conv2d_grad((&dy, &dyl), (&x, &xl), (&w, &wl), &g, 1, needs)
                    .unwrap()
                    .unwrap();
                for (d, (got, want)) in got.iter().zip(&want).enumerate() {
                    match got {
                        Some(v) => assert_matches(
                            &read(v, &[want.len()]),
                            want,
                            1e-4,
                            &format!("case {k} gradient {d}"),
                        ),
                        None => assert!(!needs[d], "case {k}: gradient {d} missing"),
                    }
                }
            }
        }
    }

    #[test]
    fn direct_convolutions_read_views_and_keep_nans_where_they_belong() {
        // The input a transposed view (pixels of a row `h` apart) at an
        // offset. NaN and infinite pixels reach the outputs and weight
        // gradients whose windows hold them, and only those, even where a
        // wide row wraps round onto them.
        let b = backend();
        let (n, c, h, wd, o, kh, kw, ph, pw) = (3, 2, 6, 5, 4, 3, 3, 1, 0);
        let g = geometry([n, c, h, wd], [kh, kw], [ph, pw]);
        // Stored as [n, c, w, h] after 7 leading values, read as [n, c, h, w].
        let mut stored = values(7 + n * c * h * wd, 300);
        let mut xs = vec![0.0; n * c * h * wd];
        for (i, v) in xs.iter_mut().enumerate() {
            let (img, y, x) = (i / (h * wd), (i / wd) % h, i % wd);
            let at = 7 + img * h * wd + x * h + y;
            // In the first columns, which the wide rows past the output's
            // width wrap onto (a 3×3 window unpadded across).
            match (img, y, x) {
                (0, 2, 0) | (3, 4, 0) => stored[at] = f32::NAN,
                (1, 1, 1) | (4, 3, 0) => stored[at] = f32::INFINITY,
                _ => {}
            }
            *v = stored[at];
        }
        let (x, _) = f32s(&stored, &[stored.len()]);
        let xl = Layout {
            shape: vec![n, c, h, wd],
            strides: vec![c * h * wd, h * wd, 1, h],
            offset: 7,
        };
        let ws = values(o * c * kh * kw, 301);
        let (w, wl) = f32s(&ws, &[o, c, kh, kw]);
        if kernels::available() {
            let s = Shapes::new("test", &xl, &wl, &g, 1).unwrap();
            assert!(Direct::new(&g, &xl, &s).is_some(), "not direct");
        }
        let shape = ([n, c, h, wd], [o, kh, kw], [ph, pw]);
        let len = n * o * g.out[0] * g.out[1];
        let y = b.fused_conv2d((&x, &xl), (&w, &wl), None, &g, 1).unwrap();
        let want = direct(&xs, &ws, None, shape.0, shape.1, shape.2);
        assert_matches(&read(&y.unwrap(), &[len]), &want, 1e-5, "y");
        let dys = values(len, 302);
        let (dy, dyl) = f32s(&dys, &[n, o, g.out[0], g.out[1]]);
        let want = direct_grad(&dys, &xs, &ws, shape.0, shape.1, shape.2);
        let got = b
            .fused_conv2d_grad((&dy, &dyl), (&x, &xl), (&w, &wl), &g, 1, [true; 3])
            .unwrap()
            .unwrap();
        for (d, (got, want)) in got.iter().zip(&want).enumerate() {
            let got = read(got.as_ref().unwrap(), &[want.len()]);
            assert_matches(&got, want, 1e-4, &format!("gradient {d}"));
        }
    }

    #[test]
    fn an_infinite_weight_takes_the_general_input_gradient() {
        // With an infinite weight the direct input gradient would add
        // 0 · inf = NaN at the border; the general path does not.
        let b = backend();
        let g = geometry([2, 1, 6, 6], [3, 3], [1, 1]);
        let xs = values(72, 400);
        let mut ws = values(2 * 9, 401);
        ws[0] = f32::INFINITY;
        let (x, xl) = f32s(&xs, &g.image_shape());
        let (w, wl) = f32s(&ws, &[2, 1, 3, 3]);
        let dys = values(144, 402);
        let (dy, dyl) = f32s(&dys, &[2, 2, 6, 6]);
        let got = b
            .fused_conv2d_grad(
                (&dy, &dyl),
                (&x, &xl),
                (&w, &wl),
                &g,
                1,
                [true, true, false],
            )
            .unwrap()
            .unwrap();
        let want = direct_grad(&dys, &xs, &ws, [2, 1, 6, 6], [2, 3, 3], [1, 1]);
        for (d, got) in got.iter().take(2).enumerate() {
            let got = read(got.as_ref().unwrap(), &[want[d].len()]);
            assert_matches(&got, &want[d], 1e-4, &format!("gradient {d}"));
        }
    }

    #[test]
    fn geometry_outside_the_kernels_takes_the_other_paths() {
        let s = |g: &WindowGeometry, o: usize, groups: usize| {
            let w = Layout::contiguous(&[o, g.c / groups, g.kernel[0], g.kernel[1]]);
            Shapes::new("test", &Layout::contiguous(&g.image_shape()), &w, g, groups).unwrap()
        };
        let fits = |g: &WindowGeometry, o: usize, groups: usize| {
            Direct::new(g, &Layout::contiguous(&g.image_shape()), &s(g, o, groups)).is_some()
        };
        let base = geometry([2, 4, 8, 8], [3, 3], [1, 1]);
        assert_eq!(fits(&base, 4, 1), kernels::available());
        assert!(!fits(&base, 4, 2), "groups");
        let strided = WindowGeometry {
            stride: [2, 2],
            out: [4, 4],
            ..base
        };
        assert!(!fits(&strided, 4, 1), "stride");
        let dilated = WindowGeometry {
            dilation: [2, 2],
            out: [6, 6],
            ..base
        };
        assert!(!fits(&dilated, 4, 1), "dilation");
        let big = geometry([2, 4, 96, 96], [3, 3], [1, 1]);
        assert!(!fits(&big, 4, 1), "images past the cache");
        let many_taps = geometry([2, 32, 8, 8], [3, 3], [1, 1]);
        assert!(!fits(&many_taps, 4, 1), "288 taps");
        let narrow = geometry([2, 1, 8, 8], [1, 6], [0, 0]);
        assert!(!fits(&narrow, 4, 1), "a wide row over twice the output's");
        let no_rows = geometry([2, 1, 0, 8], [3, 3], [2, 1]);
        assert!(!fits(&no_rows, 4, 1), "an empty image, padded");
        assert!(!fits(&base, 0, 1), "no output channels");
    }

    #[test]
    fn empty_images_and_weights_are_zero_gradients() {
        // Padding around an image with no rows, and a weight with no output
        // channels: outputs of the bias alone (or nothing) and zero
        // gradients, not a panic.
        let b = backend();
        for ([n, c, h, wd], o, padding) in [([2, 1, 0, 8], 3, [2, 1]), ([3, 2, 5, 5], 0, [1, 1])] {
            let g = geometry([n, c, h, wd], [3, 3], padding);
            let len = n * o * g.out[0] * g.out[1];
            let (x, xl) = f32s(&values(n * c * h * wd, 500), &g.image_shape());
            let (w, wl) = f32s(&values(o * c * 9, 501), &[o, c, 3, 3]);
            let (bias, bl) = f32s(&values(o, 502), &[o]);
            let y = b
                .fused_conv2d((&x, &xl), (&w, &wl), Some((&bias, &bl)), &g, 1)
                .unwrap();
            let y = read(&y.unwrap(), &[len]);
            let per = g.out[0] * g.out[1];
            for (i, v) in y.iter().enumerate() {
                assert_eq!(*v, values(o, 502)[(i / per) % o], "the bias alone");
            }
            let (dy, dyl) = f32s(&values(len, 503), &[n, o, g.out[0], g.out[1]]);
            let grads = b
                .fused_conv2d_grad((&dy, &dyl), (&x, &xl), (&w, &wl), &g, 1, [true; 3])
                .unwrap()
                .unwrap();
            let dw = read(grads[1].as_ref().unwrap(), &[o * c * 9]);
            assert!(dw.iter().all(|&v| v == 0.0), "no pixel, no weight gradient");
            assert_eq!(
                read(grads[0].as_ref().unwrap(), &[n * c * h * wd]).len(),
                n * c * h * wd
            );
        }
    }
}
