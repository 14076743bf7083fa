//! Sliding windows: `unfold` (im2col) and `fold` (col2im, its adjoint).
//!
//! Columns are `[C, K, N, L]` with `K = kh·kw` taps and `L = OH·OW` window
//! positions (see [`WindowGeometry`]). `unfold` fills one column row
//! `[c, k, n, ..]` per task: for a fixed tap the window positions whose
//! pixel lies inside the image form one range of `ox` per output row, so the
//! inner loop is a plain (often contiguous) copy with padding at its ends.
//! `fold` owns one output plane `[n, c, .., ..]` per task and adds every
//! tap's row into it in tap order, so no two threads write one pixel and
//! the sum order is fixed.

use lam_core::backend::{View, WindowGeometry};
use lam_core::Result;

use crate::parallel::for_chunks;
use crate::pool;
use crate::storage::ReadLocks;

/// `src: [N, C, H, W]` (any strides) → contiguous cols `[C, K, N, L]`,
/// `pad` where a tap falls outside the image.
pub(crate) fn unfold(src: View, g: &WindowGeometry, pad: f32) -> Result<Vec<f32>> {
    const OP: &str = "unfold";
    let l = src.1;
    l.expect_shape(OP, "input", &g.image_shape())?;
    let locks = ReadLocks::new(OP, &[src.0])?;
    let x = locks.f32(0, l)?;
    let [sn, sc, sy, sx] = [l.strides[0], l.strides[1], l.strides[2], l.strides[3]];
    let (k, len) = (g.taps(), g.positions());
    let spans = tap_spans(g);
    // Every element is written below, so a recycled buffer needs no zeroing.
    let mut out = pool::take(g.c * k * g.n * len)?;
    let work = out.len();
    for_chunks(&mut out, len, work, |start, row| {
        // row = cols[c, t, n, ..] of length L.
        let r = start / len;
        let (n, t, c) = (r % g.n, (r / g.n) % k, r / (g.n * k));
        let base = l.offset + n * sn + c * sc;
        fill_tap_row(x, base, [sy, sx], &spans[t], g, pad, row);
    });
    Ok(out)
}

/// Cols `[C, K, N, L]` (any strides) → contiguous `[N, C, H, W]`, each pixel
/// the sum of the entries of the taps that read it.
pub(crate) fn fold(cols: View, g: &WindowGeometry) -> Result<Vec<f32>> {
    const OP: &str = "fold";
    let l = cols.1;
    l.expect_shape(OP, "columns", &g.cols_shape())?;
    let locks = ReadLocks::new(OP, &[cols.0])?;
    let src = locks.f32(0, l)?;
    let [s_c, s_t, s_n, s_l] = [l.strides[0], l.strides[1], l.strides[2], l.strides[3]];
    let (k, plane) = (g.taps(), g.h * g.w);
    let spans = tap_spans(g);
    let mut out = pool::zeroed(g.n * g.c * plane)?;
    let work = l.numel();
    for_chunks(&mut out, plane, work, |start, img| {
        // img = out[n, c, .., ..], H·W pixels.
        let p = start / plane;
        let (n, c) = (p / g.c, p % g.c);
        for (t, span) in spans.iter().enumerate().take(k) {
            let base = l.offset + c * s_c + t * s_t + n * s_n;
            add_tap_row(src, base, s_l, span, g, img);
        }
    });
    Ok(out)
}

/// Fills `row`, one column row (`out_h·out_w` window positions) of the tap
/// `span`, from the image plane at `base` in `x` (row and column strides
/// `[sy, sx]`), with `pad` where the tap falls outside the image.
pub(crate) fn fill_tap_row(
    x: &[f32],
    base: usize,
    [sy, sx]: [usize; 2],
    span: &TapSpan,
    g: &WindowGeometry,
    pad: f32,
    row: &mut [f32],
) {
    for (oy, dst) in row.chunks_exact_mut(g.out[1]).enumerate() {
        let Some(y) = span.row(oy) else {
            dst.fill(pad);
            continue;
        };
        let (lo, hi) = span.cols;
        dst[..lo].fill(pad);
        dst[hi..].fill(pad);
        if lo == hi {
            continue; // this tap is outside the image in every column
        }
        // Pixel x of window ox is ox·sw + x0 with x0 = j·dw − pw ≥ −lo·sw.
        let first = base + y * sy + span.x(lo) * sx;
        let step = g.stride[1] * sx;
        let n = hi - lo;
        if step == 1 {
            dst[lo..hi].copy_from_slice(&x[first..first + n]);
        } else {
            let from = &x[first..first + (n - 1) * step + 1];
            strided_copy(&mut dst[lo..hi], from, step);
        }
    }
}

/// `dst[i] = from[i·step]`, `from` ending on the last value read. Stride 2
/// (a stride-2 convolution's columns) goes in pairs, which compile to
/// whole-vector shuffles; other strides one value at a time.
fn strided_copy(dst: &mut [f32], from: &[f32], step: usize) {
    let Some(last) = dst.len().checked_sub(1) else {
        return;
    };
    if step == 0 {
        // A broadcast input (a zero stride): one value everywhere.
        dst.fill(from[0]);
        return;
    }
    if step == 2 {
        let (pairs, _) = from[..2 * last].as_chunks::<2>();
        let (head, tail) = dst.split_at_mut(last);
        crate::elementwise::vectorised(|| {
            for (d, p) in head.iter_mut().zip(pairs) {
                *d = p[0];
            }
        });
        tail[0] = from[2 * last];
        return;
    }
    for (d, p) in dst.iter_mut().zip(from.chunks(step)) {
        *d = p[0];
    }
}

/// `to[i·step] += from[i]`, `to` ending on the last value written; as
/// [`strided_copy`], in pairs for stride 2.
fn strided_add(to: &mut [f32], from: &[f32], step: usize) {
    let Some(last) = from.len().checked_sub(1) else {
        return;
    };
    if step == 2 {
        let (head, tail) = to.split_at_mut(2 * last);
        let (pairs, _) = head.as_chunks_mut::<2>();
        crate::elementwise::vectorised(|| {
            for (d, &v) in pairs.iter_mut().zip(from) {
                d[0] += v;
            }
        });
        tail[0] += from[last];
        return;
    }
    // Window strides are at least 1 (checked where geometries are made).
    for (d, &v) in to.chunks_mut(step.max(1)).zip(from) {
        d[0] += v;
    }
}

/// Adds one column row of the tap `span` (window position `p` at
/// `src[base + p·s_l]`) into the image plane `img` (`H·W`, contiguous):
/// each entry onto the pixel it was read from; padding taps are dropped.
pub(crate) fn add_tap_row(
    src: &[f32],
    base: usize,
    s_l: usize,
    span: &TapSpan,
    g: &WindowGeometry,
    img: &mut [f32],
) {
    let (lo, hi) = span.cols;
    if lo == hi {
        return; // this tap is outside the image in every column
    }
    let ow = g.out[1];
    for oy in 0..g.out[0] {
        let Some(y) = span.row(oy) else { continue };
        let src_row = base + oy * ow * s_l;
        let x_first = span.x(lo);
        let dst = &mut img[y * g.w..(y + 1) * g.w];
        if s_l == 1 && g.stride[1] == 1 {
            let from = &src[src_row + lo..src_row + hi];
            for (d, &v) in dst[x_first..x_first + (hi - lo)].iter_mut().zip(from) {
                *d += v;
            }
        } else if s_l == 1 {
            // Onto every `stride`-th pixel (a stride-2 convolution's
            // gradient), as whole vectors where the processor has them.
            let sw = g.stride[1];
            let to = &mut dst[x_first..x_first + (hi - lo - 1) * sw + 1];
            strided_add(to, &src[src_row + lo..src_row + hi], sw);
        } else {
            for ox in lo..hi {
                dst[x_first + (ox - lo) * g.stride[1]] += src[src_row + ox * s_l];
            }
        }
    }
}

/// Whether a tap's window rows can be read as one range of the image plane
/// (see [`fill_shifted_row`]): a stride-1 window as wide as the image, over
/// a plane whose pixels are adjacent and whose rows are `W` apart.
pub(crate) fn rows_are_shifted_plane(g: &WindowGeometry, [sy, sx]: [usize; 2]) -> bool {
    g.stride == [1, 1] && g.out[1] == g.w && sx == 1 && (sy == g.w || g.h == 1)
}

/// [`fill_tap_row`] where [`rows_are_shifted_plane`]: the window rows
/// inside the image read consecutive image rows at one column offset, so
/// they are one copy of the plane, shifted; then the columns that fall in
/// the padding get `pad`. One copy per tap instead of one per window row.
pub(crate) fn fill_shifted_row(
    x: &[f32],
    base: usize,
    span: &TapSpan,
    g: &WindowGeometry,
    pad: f32,
    row: &mut [f32],
) {
    let ow = g.out[1];
    let (lo, hi) = span.cols;
    let Some((first, last, y)) = span.rows(g.out[0]).filter(|_| lo < hi) else {
        row.fill(pad);
        return;
    };
    row[..first * ow].fill(pad);
    row[(last + 1) * ow..].fill(pad);
    // Window (oy, ox) reads pixel base + (y + oy − first)·W + x(ox), and W
    // is `ow`: the whole range is one copy, from pixel (y, x(lo)) to the
    // pixel read by (last, hi − 1), all inside the plane.
    let (start, end) = (first * ow + lo, last * ow + hi);
    let from = base + y * g.w + span.x(lo);
    row[start..end].copy_from_slice(&x[from..from + (end - start)]);
    clear_padding_columns(span, g, pad, row);
}

/// Sets the entries of a tap's column row that read padding beside the
/// image (columns before `lo` and from `hi`, in the window rows inside the
/// image) to `pad`.
pub(crate) fn clear_padding_columns(span: &TapSpan, g: &WindowGeometry, pad: f32, row: &mut [f32]) {
    let ow = g.out[1];
    let (lo, hi) = span.cols;
    if lo == 0 && hi == ow {
        return; // This tap reads inside the image in every column.
    }
    if let Some((first, last, _)) = span.rows(g.out[0]) {
        for r in row[first * ow..(last + 1) * ow].chunks_exact_mut(ow) {
            // Usually one column on one side (a 3×3 window's padding of 1):
            // stored directly, not through two `fill` calls per row.
            for v in &mut r[..lo] {
                *v = pad;
            }
            for v in &mut r[hi..] {
                *v = pad;
            }
        }
    }
}

/// [`add_tap_row`] where [`rows_are_shifted_plane`] (of the contiguous
/// `img`), for a row whose padding columns are zero
/// ([`clear_padding_columns`]): one add over the whole range.
pub(crate) fn add_shifted_row(src: &[f32], span: &TapSpan, g: &WindowGeometry, img: &mut [f32]) {
    let ow = g.out[1];
    let (lo, hi) = span.cols;
    let Some((first, last, y)) = span.rows(g.out[0]).filter(|_| lo < hi) else {
        return;
    };
    let (start, end) = (first * ow + lo, last * ow + hi);
    let to = y * g.w + span.x(lo);
    let (dst, src) = (&mut img[to..to + (end - start)], &src[start..end]);
    // Compiled for the widest vectors (this file's code is otherwise built
    // for the baseline's 4-wide ones): a tenth of a convolution's gradient.
    crate::elementwise::vectorised(|| {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d += v;
        }
    });
}

/// Where one tap `(i, j)` lands: output rows map to image rows through
/// `row`, and the window columns `cols.0..cols.1` are the ones whose pixel
/// `ox·sw + x0` lies inside the image.
pub(crate) struct TapSpan {
    /// `i·dh − ph` (the image row of window row 0).
    y0: isize,
    sh: usize,
    h: usize,
    sw: usize,
    /// `j·dw − pw` (the image column of window column 0).
    x0: isize,
    pub cols: (usize, usize),
}

impl TapSpan {
    /// The image column read by window column `ox` (one of `cols`).
    pub fn x(&self, ox: usize) -> usize {
        (ox * self.sw).wrapping_add_signed(self.x0)
    }

    /// The first and last of the `out_h` window rows whose image row is
    /// inside the image, and the first one's image row; `None` if none is.
    pub fn rows(&self, out_h: usize) -> Option<(usize, usize, usize)> {
        let first = (0..out_h).find_map(|oy| self.row(oy).map(|y| (oy, y)))?;
        let last = (0..out_h).rev().find(|&oy| self.row(oy).is_some())?;
        Some((first.0, last, first.1))
    }

    /// The image row read by window row `oy`, if inside the image.
    pub fn row(&self, oy: usize) -> Option<usize> {
        let y = (oy * self.sh) as isize + self.y0;
        (y >= 0 && (y as usize) < self.h).then_some(y as usize)
    }
}

/// One [`TapSpan`] per tap, in tap order `i·kw + j`.
pub(crate) fn tap_spans(g: &WindowGeometry) -> Vec<TapSpan> {
    let (sw, w, ow) = (g.stride[1] as isize, g.w as isize, g.out[1] as isize);
    let mut spans = Vec::with_capacity(g.taps());
    for i in 0..g.kernel[0] {
        for j in 0..g.kernel[1] {
            let x0 = (j * g.dilation[1]) as isize - g.padding[1] as isize;
            // ox·sw + x0 ≥ 0  ⇔ ox ≥ ⌈−x0 / sw⌉;  ox·sw + x0 < w  ⇔ ox < ⌈(w − x0) / sw⌉.
            let lo = ceil_div(-x0, sw).clamp(0, ow);
            let hi = ceil_div(w - x0, sw).clamp(lo, ow);
            spans.push(TapSpan {
                y0: (i * g.dilation[0]) as isize - g.padding[0] as isize,
                sh: g.stride[0],
                h: g.h,
                sw: g.stride[1],
                x0,
                cols: (lo as usize, hi as usize),
            });
        }
    }
    spans
}

/// `⌈a / b⌉` for `b > 0`.
fn ceil_div(a: isize, b: isize) -> isize {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    fn geometry(n: usize, c: usize, h: usize, w: usize, k: [usize; 2]) -> WindowGeometry {
        WindowGeometry {
            n,
            c,
            h,
            w,
            kernel: k,
            stride: [1, 2],
            padding: [1, 2],
            dilation: [2, 1],
            out: [
                (h + 2 - 2 * (k[0] - 1) - 1) + 1,
                (w + 4 - (k[1] - 1) - 1) / 2 + 1,
            ],
        }
    }

    /// cols by the definition, one element at a time.
    fn naive_unfold(x: &[f32], l: &Layout, g: &WindowGeometry, pad: f32) -> Vec<f32> {
        let offsets: Vec<usize> = l.offsets().collect();
        let mut out = Vec::new();
        for c in 0..g.c {
            for i in 0..g.kernel[0] {
                for j in 0..g.kernel[1] {
                    for n in 0..g.n {
                        for oy in 0..g.out[0] {
                            for ox in 0..g.out[1] {
                                let y = (oy * g.stride[0] + i * g.dilation[0]) as isize
                                    - g.padding[0] as isize;
                                let xx = (ox * g.stride[1] + j * g.dilation[1]) as isize
                                    - g.padding[1] as isize;
                                let inside =
                                    y >= 0 && xx >= 0 && (y as usize) < g.h && (xx as usize) < g.w;
                                out.push(if inside {
                                    let e = ((n * g.c + c) * g.h + y as usize) * g.w + xx as usize;
                                    x[offsets[e]]
                                } else {
                                    pad
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn unfold_matches_the_definition_on_a_transposed_view() {
        let b = backend();
        let g = geometry(2, 3, 5, 7, [2, 3]);
        // Stored [N, C, W, H], viewed as [N, C, H, W].
        let data: Vec<f32> = (0..2 * 3 * 5 * 7).map(|v| v as f32).collect();
        let l = Layout::contiguous(&[2, 3, 7, 5])
            .permute(&[0, 1, 3, 2])
            .unwrap();
        let s = b.from_f32(&data).unwrap();
        let got = b.unfold((&s, &l), &g, -9.0).unwrap();
        let got = read(&got, &g.cols_shape());
        assert_eq!(got, naive_unfold(&data, &l, &g, -9.0));
    }

    #[test]
    fn taps_that_never_touch_the_image_read_padding() {
        // A 1-pixel-wide image padded by 2 with a 5-wide kernel: taps 0, 1,
        // 3 and 4 are in the padding for the only window column.
        let b = backend();
        let mut g = geometry(1, 2, 3, 1, [1, 5]);
        (g.stride, g.padding, g.dilation, g.out) = ([1, 1], [0, 2], [1, 1], [3, 1]);
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let l = Layout::contiguous(&g.image_shape());
        let s = b.from_f32(&data).unwrap();
        let got = b.unfold((&s, &l), &g, -1.0).unwrap();
        assert_eq!(
            read(&got, &g.cols_shape()),
            naive_unfold(&data, &l, &g, -1.0)
        );
        let folded = b
            .fold((&got, &Layout::contiguous(&g.cols_shape())), &g)
            .unwrap();
        assert_eq!(read(&folded, &g.image_shape()), data);
    }

    #[test]
    fn fold_is_the_adjoint_of_unfold() {
        // <fold(y), x> == <y, unfold(x)> for zero padding.
        let b = backend();
        let g = geometry(2, 2, 6, 5, [3, 2]);
        let x: Vec<f32> = (0..2 * 2 * 6 * 5).map(|v| (v % 7) as f32 - 3.0).collect();
        let cols_len: usize = g.cols_shape().iter().product();
        let y: Vec<f32> = (0..cols_len).map(|v| (v % 5) as f32 - 2.0).collect();
        let (sx, sy) = (b.from_f32(&x).unwrap(), b.from_f32(&y).unwrap());
        let ux = b
            .unfold((&sx, &Layout::contiguous(&g.image_shape())), &g, 0.0)
            .unwrap();
        let fy = b
            .fold((&sy, &Layout::contiguous(&g.cols_shape())), &g)
            .unwrap();
        let ux = read(&ux, &g.cols_shape());
        let fy = read(&fy, &g.image_shape());
        let lhs: f64 = fy.iter().zip(&x).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = y.iter().zip(&ux).map(|(a, b)| (a * b) as f64).sum();
        assert_eq!(lhs, rhs);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let b = backend();
        let g = geometry(1, 1, 4, 4, [2, 2]);
        let s = b.from_f32(&[0.0; 16]).unwrap();
        let err = b
            .unfold((&s, &Layout::contiguous(&[1, 1, 2, 8])), &g, 0.0)
            .unwrap_err();
        assert!(err.to_string().contains("[1, 1, 4, 4]"), "{err}");
        assert!(b.fold((&s, &Layout::contiguous(&[16])), &g).is_err());
    }
}
