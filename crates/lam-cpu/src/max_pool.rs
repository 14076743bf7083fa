//! Fused max pooling: forward finds each window's maximum and winning tap
//! in one pass over the image (no columns), backward adds each window's
//! gradient into its winning pixel.
//!
//! Both own one `[n, c]` plane per task (rayon over planes above a size
//! threshold), so no two threads write one element and the backward's sum
//! order is fixed: windows in row-major order. 2×2 windows at stride 2
//! take row kernels of their own (`two_by_two.rs`).

mod two_by_two;

use lam_core::backend::{View, WindowGeometry};
use lam_core::Result;
use rayon::prelude::*;

use crate::parallel::{CHUNK, PAR_MIN_WORK};
use crate::pool;
use crate::storage::ReadLocks;
use crate::strided::gather;
use crate::window::tap_spans;

/// `src: [N, C, H, W]` (any strides) → (`[N, C, OH, OW]` maxima, the `I32`
/// winning tap `i·kw + j` of each, the first on ties; NaN wins, as in
/// PyTorch; -1 where no tap is inside the image).
pub(crate) fn max_pool(src: View, g: &WindowGeometry) -> Result<(Vec<f32>, Vec<i32>)> {
    const OP: &str = "max_pool";
    let l = src.1;
    l.expect_shape(OP, "input", &g.image_shape())?;
    let locks = ReadLocks::new(OP, &[src.0])?;
    let x = locks.f32(0, l)?;
    let [sn, sc, sy, sx] = [l.strides[0], l.strides[1], l.strides[2], l.strides[3]];
    let len = g.positions();
    let pairs = is_two_by_two(g) && sx == 1;
    let mut values = pool::take(g.n * g.c * len)?;
    // The 2×2 rows write every window; the general loop starts from no tap.
    let mut taps = pool::fresh_zeroed::<i32>(g.n * g.c * len)?;
    if !pairs {
        values.fill(f32::NEG_INFINITY);
        taps.fill(-1);
    }
    let spans = tap_spans(g);
    let ow = g.out[1];
    // Taps outer, windows inner: each tap is a strided sweep along image
    // rows. Visiting taps in order with a strict `>` keeps the first maximum.
    let plane = |p: usize, vals: &mut [f32], wins: &mut [i32]| {
        let base = l.offset + (p / g.c) * sn + (p % g.c) * sc;
        if pairs {
            for oy in 0..g.out[0] {
                let top = base + 2 * oy * sy;
                let rows = [&x[top..top + 2 * ow], &x[top + sy..top + sy + 2 * ow]];
                let out = oy * ow..(oy + 1) * ow;
                two_by_two::forward_row(rows, &mut vals[out.clone()], &mut wins[out]);
            }
            return;
        }
        for (t, span) in spans.iter().enumerate() {
            let (lo, hi) = span.cols;
            let step = g.stride[1] * sx;
            for oy in 0..g.out[0] {
                let Some(y) = span.row(oy) else { continue };
                if lo == hi {
                    continue; // this tap is outside the image in every column
                }
                let first = base + y * sy + span.x(lo) * sx;
                let row = oy * ow;
                let (vrow, wrow) = (&mut vals[row + lo..row + hi], &mut wins[row + lo..row + hi]);
                let windows = vrow.iter_mut().zip(wrow.iter_mut());
                if step == 0 {
                    // A view broadcast along the row: every window reads one pixel.
                    let v = x[first];
                    windows.for_each(|(best, win)| keep_first_max(best, win, v, t));
                } else {
                    // The pixels this tap reads along the row, as one slice walked
                    // with a step: no index arithmetic or bounds check per window.
                    let xs = x[first..=first + (hi - lo - 1) * step].iter().step_by(step);
                    for ((best, win), &v) in windows.zip(xs) {
                        keep_first_max(best, win, v, t);
                    }
                }
            }
        }
    };
    if len == 0 {
        return Ok((values, taps));
    }
    let chunks = values.chunks_mut(len).zip(taps.chunks_mut(len));
    if g.n * g.c * g.h * g.w >= PAR_MIN_WORK {
        // Planes are small (a few hundred windows): group them into tasks of
        // about CHUNK input elements so scheduling does not dominate.
        let planes_per_task = CHUNK.div_ceil(g.h * g.w).max(1);
        values
            .par_chunks_mut(len)
            .zip(taps.par_chunks_mut(len))
            .enumerate()
            .with_min_len(planes_per_task)
            .for_each(|(p, (v, t))| plane(p, v, t));
    } else {
        chunks.enumerate().for_each(|(p, (v, t))| plane(p, v, t));
    }
    Ok((values, taps))
}

/// True for 2×2 windows at stride 2 with no padding or dilation (the
/// pooling of most CNNs): every window lies inside the image, two pixels
/// of each of two rows.
fn is_two_by_two(g: &WindowGeometry) -> bool {
    g.kernel == [2, 2]
        && g.stride == [2, 2]
        && g.padding == [0, 0]
        && g.dilation == [1, 1]
        && 2 * g.out[0] <= g.h
        && 2 * g.out[1] <= g.w
}

/// Takes `v` as window's maximum when it beats `best` (or is its first tap,
/// or a NaN, which PyTorch propagates), recording tap `t`.
#[inline]
fn keep_first_max(best: &mut f32, win: &mut i32, v: f32, t: usize) {
    // Branch-free: on real data the comparison is a coin flip, and a
    // mispredicted branch costs more than both selects.
    let take = (*win < 0) | (v > *best) | (v.is_nan() & !best.is_nan());
    *best = if take { v } else { *best };
    *win = if take { t as i32 } else { *win };
}

/// `grad` and `taps` (`[N, C, OH, OW]`, any strides) → `[N, C, H, W]`, each
/// window's gradient added into the pixel its winning tap reads.
pub(crate) fn max_pool_grad(grad: View, taps: View, g: &WindowGeometry) -> Result<Vec<f32>> {
    const OP: &str = "max_pool_grad";
    grad.1.expect_shape(OP, "gradient", &g.out_shape())?;
    taps.1.expect_shape(OP, "taps", &g.out_shape())?;
    let locks = ReadLocks::new(OP, &[grad.0, taps.0])?;
    let gv = gather(locks.f32(0, grad.1)?, grad.1)?;
    let tv = gather(locks.i32(1, taps.1)?, taps.1)?;
    let (len, plane_len) = (g.positions(), g.h * g.w);
    // 2×2 windows tile the image: their rows write every pixel they cover,
    // and the plane's remaining pixels are zeroed after them.
    let pairs = is_two_by_two(g) && g.out[1] > 0;
    let mut out = if pairs {
        pool::take(g.n * g.c * plane_len)?
    } else {
        pool::zeroed(g.n * g.c * plane_len)?
    };
    if plane_len == 0 {
        return Ok(out);
    }
    // Tap t reads pixel (oy·sh + dy[t], ox·sw + dx[t]): no division per window.
    let (mut dy, mut dx) = (Vec::new(), Vec::new());
    for i in 0..g.kernel[0] {
        for j in 0..g.kernel[1] {
            dy.push((i * g.dilation[0]) as isize - g.padding[0] as isize);
            dx.push((j * g.dilation[1]) as isize - g.padding[1] as isize);
        }
    }
    let (h, w) = (g.h as isize, g.w as isize);
    let plane = |p: usize, img: &mut [f32]| {
        let (gs, ts) = (&gv[p * len..(p + 1) * len], &tv[p * len..(p + 1) * len]);
        if pairs {
            let ow = g.out[1];
            for (oy, (gs, ts)) in gs.chunks_exact(ow).zip(ts.chunks_exact(ow)).enumerate() {
                let (top, bottom) = img[2 * oy * g.w..(2 * oy + 2) * g.w].split_at_mut(g.w);
                two_by_two::backward_row(gs, ts, top, bottom);
                top[2 * ow..].fill(0.0);
                bottom[2 * ow..].fill(0.0);
            }
            img[2 * g.out[0] * g.w..].fill(0.0);
            return;
        }
        for oy in 0..g.out[0] {
            let row = oy * g.out[1];
            let y0 = (oy * g.stride[0]) as isize;
            for ox in 0..g.out[1] {
                // -1 (no winner) or out of range: nothing to send back.
                let Some(t) = usize::try_from(ts[row + ox]).ok().filter(|&t| t < dy.len()) else {
                    continue;
                };
                let (y, x) = (y0 + dy[t], (ox * g.stride[1]) as isize + dx[t]);
                if (0..h).contains(&y) && (0..w).contains(&x) {
                    img[(y * w + x) as usize] += gs[row + ox];
                }
            }
        }
    };
    if out.len() >= PAR_MIN_WORK {
        out.par_chunks_mut(plane_len)
            .enumerate()
            .with_min_len(CHUNK.div_ceil(plane_len).max(1))
            .for_each(|(p, img)| plane(p, img));
    } else {
        out.chunks_mut(plane_len)
            .enumerate()
            .for_each(|(p, img)| plane(p, img));
    }
    Ok(out)
}
