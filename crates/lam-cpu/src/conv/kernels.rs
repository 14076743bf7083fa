//! The register tiles of the direct convolution (`direct.rs`), in AVX-512.
//!
//! Both kernels walk *taps*: a tap is an offset into a buffer of padded
//! planes, and a tap's operand is the 16-lane vectors read from there.
//!
//! - [`correlate`] (the output, and the input's gradient): output row `r`,
//!   vector `v` is `init[r] + Σ_t weights[r·K + t] · src[offsets[t] + 16v..]`.
//!   A tile keeps [`ROWS`] rows × [`VECS`] vectors of sums in registers:
//!   per tap, 4 loads and 6 broadcasts feed 24 fused multiply-adds.
//! - [`weight_sums`] (the weight's gradient): `out[r·K + t] += Σ_images Σ_v
//!   Σ_lanes dy[r, 16v..] · x[offsets[t] + 16v..]`, where a lane of `x`
//!   counts only if its mask bit is set (a masked-off lane reads 0, so a
//!   NaN or infinity among the pixels a wide position wraps onto stays out
//!   of the sums). A tile keeps [`ROWS`] rows × [`TAPS`] taps of 16 partial
//!   sums over all of a group's images, and adds their totals once.
//!
//! Sums run in a fixed order (taps, or images then vectors, in order), so
//! the results do not depend on threads. Callers check that the processor
//! has AVX-512F ([`available`]) before calling.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Lanes per vector.
pub(super) const LANES: usize = 16;
/// Output rows per tile.
const ROWS: usize = 6;
/// Vectors per [`correlate`] tile.
const VECS: usize = 4;
/// Taps per [`weight_sums`] tile.
const TAPS: usize = 4;

/// Whether these kernels can run here.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out [M, vecs·16]` (row-major) `= init[r] + Σ_t weights[r·K + t] ·
/// src[offsets[t] + ..]`, `K = offsets.len()`, `M = out.len() / (vecs·16)`;
/// `init` 0 when `None`.
pub(super) fn correlate(
    src: &[f32],
    offsets: &[usize],
    weights: &[f32],
    init: Option<&[f32]>,
    out: &mut [f32],
    vecs: usize,
) {
    let (k, ld) = (offsets.len(), vecs * LANES);
    if ld == 0 || out.is_empty() {
        return;
    }
    let m = out.len() / ld;
    let reach = offsets.iter().max().map_or(0, |&o| o + ld);
    // Every access below is inside these bounds; a failure is a bug in
    // `direct.rs`.
    assert!(
        available()
            && out.len() == m * ld
            && reach <= src.len()
            && weights.len() >= m * k
            && init.is_none_or(|b| b.len() >= m),
        "direct convolution: operands outside their buffers"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F and the bounds were checked just above.
    unsafe {
        avx512::correlate(src, offsets, weights, init, out, vecs, m)
    }
}

/// `out [M, K] += Σ_n Σ_v Σ_lanes dys[n·dy_image + r·vecs·16 + ..] ·
/// (masks[v] ? xs[n·x_image + offsets[t] + ..] : 0)` over `images` images,
/// `K = offsets.len()`, `M = out.len() / K`.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_sums(
    xs: &[f32],
    x_image: usize,
    dys: &[f32],
    dy_image: usize,
    images: usize,
    offsets: &[usize],
    masks: &[u16],
    out: &mut [f32],
) {
    let (k, vecs) = (offsets.len(), masks.len());
    if k == 0 || vecs == 0 || images == 0 || out.is_empty() {
        return;
    }
    let (m, ld) = (out.len() / k, vecs * LANES);
    let reach = offsets.iter().max().map_or(0, |&o| o + ld);
    assert!(
        available()
            && out.len() == m * k
            && (images - 1) * x_image + reach <= xs.len()
            && (images - 1) * dy_image + m * ld <= dys.len(),
        "direct convolution: operands outside their buffers"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F and the bounds were checked just above.
    unsafe {
        avx512::weight_sums(xs, x_image, dys, dy_image, images, offsets, masks, out, m)
    }
}

/// `$body` with `$r` and `$c` the constants equal to `$sel` (a pair of
/// at most [`ROWS`] and 4, at least 1 each): one instance per tile size,
/// so that each keeps its sums in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! with_tile {
    ($sel:expr, $r:ident, $c:ident => $body:expr) => {
        with_tile!(@arms $sel, $r, $c, $body;
            (6, 4) (6, 3) (6, 2) (6, 1) (5, 4) (5, 3) (5, 2) (5, 1)
            (4, 4) (4, 3) (4, 2) (4, 1) (3, 4) (3, 3) (3, 2) (3, 1)
            (2, 4) (2, 3) (2, 2) (2, 1) (1, 4) (1, 3) (1, 2))
    };
    (@arms $sel:expr, $r:ident, $c:ident, $body:expr; $(($rv:literal, $cv:literal))*) => {
        match $sel {
            $(($rv, $cv) => {
                const $r: usize = $rv;
                const $c: usize = $cv;
                $body
            })*
            _ => {
                const $r: usize = 1;
                const $c: usize = 1;
                $body
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;

    /// [`super::correlate`] for `m` rows, the bounds checked.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn correlate(
        src: &[f32],
        offsets: &[usize],
        weights: &[f32],
        init: Option<&[f32]>,
        out: &mut [f32],
        vecs: usize,
        m: usize,
    ) {
        let (k, ld) = (offsets.len(), vecs * LANES);
        for r0 in (0..m).step_by(ROWS) {
            let rows = ROWS.min(m - r0);
            let mut start = [0.0; ROWS];
            if let Some(b) = init {
                start[..rows].copy_from_slice(&b[r0..r0 + rows]);
            }
            for v0 in (0..vecs).step_by(VECS) {
                let t = CorrelateTile {
                    src: src.as_ptr().wrapping_add(v0 * LANES),
                    offsets,
                    w: weights.as_ptr().wrapping_add(r0 * k),
                    k,
                    start,
                    out: out.as_mut_ptr().wrapping_add(r0 * ld + v0 * LANES),
                    ld,
                };
                // SAFETY: rows r0.. of the tile lie in `out` and `weights`,
                // its vectors in `out`'s rows and past every offset in `src`.
                unsafe { with_tile!((rows, VECS.min(vecs - v0)), R, V => t.run::<R, V>()) }
            }
        }
    }

    /// One [`correlate`] tile: pointers at its first row and vector.
    struct CorrelateTile<'a> {
        src: *const f32,
        offsets: &'a [usize],
        w: *const f32,
        k: usize,
        start: [f32; ROWS],
        out: *mut f32,
        ld: usize,
    }

    impl CorrelateTile<'_> {
        /// # Safety
        /// AVX-512F; `R` rows of `k` weights and of `ld` outputs (`V`
        /// vectors used) and `V` vectors past each offset of `src`.
        #[target_feature(enable = "avx512f")]
        unsafe fn run<const R: usize, const V: usize>(&self) {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for (sums, &s) in acc.iter_mut().zip(&self.start) {
                *sums = [_mm512_set1_ps(s); V];
            }
            for (t, &off) in self.offsets.iter().enumerate() {
                // SAFETY: the caller's bounds.
                unsafe {
                    let p = self.src.add(off);
                    let mut xv = [_mm512_setzero_ps(); V];
                    for (v, x) in xv.iter_mut().enumerate() {
                        *x = _mm512_loadu_ps(p.add(v * LANES));
                    }
                    for (r, sums) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*self.w.add(r * self.k + t));
                        for (s, &x) in sums.iter_mut().zip(&xv) {
                            *s = _mm512_fmadd_ps(wv, x, *s);
                        }
                    }
                }
            }
            for (r, sums) in acc.iter().enumerate() {
                for (v, &s) in sums.iter().enumerate() {
                    // SAFETY: the caller's bounds.
                    unsafe { _mm512_storeu_ps(self.out.add(r * self.ld + v * LANES), s) };
                }
            }
        }
    }

    /// [`super::weight_sums`] for `m` rows, the bounds checked.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn weight_sums(
        xs: &[f32],
        x_image: usize,
        dys: &[f32],
        dy_image: usize,
        images: usize,
        offsets: &[usize],
        masks: &[u16],
        out: &mut [f32],
        m: usize,
    ) {
        let k = offsets.len();
        for r0 in (0..m).step_by(ROWS) {
            let rows = ROWS.min(m - r0);
            for t0 in (0..k).step_by(TAPS) {
                let taps = &offsets[t0..(t0 + TAPS).min(k)];
                let t = WeightTile {
                    xs: xs.as_ptr(),
                    x_image,
                    dys: dys.as_ptr().wrapping_add(r0 * masks.len() * LANES),
                    dy_image,
                    images,
                    masks,
                };
                let dst = &mut out[r0 * k + t0..];
                // SAFETY: the tile's rows lie in `dys` and its taps' vectors
                // in `xs`, for every image.
                unsafe { with_tile!((rows, taps.len()), R, T => t.run::<R, T>(taps, dst, k)) }
            }
        }
    }

    /// One [`weight_sums`] tile: `dys` at its first row of image 0.
    struct WeightTile<'a> {
        xs: *const f32,
        x_image: usize,
        dys: *const f32,
        dy_image: usize,
        images: usize,
        masks: &'a [u16],
    }

    impl WeightTile<'_> {
        /// Adds the tile's `R × T` totals into `dst[r·k + t]`.
        ///
        /// # Safety
        /// AVX-512F; for every image, `R` rows of `masks.len()` vectors in
        /// `dys` and as many vectors past each of `taps` in `xs`.
        #[target_feature(enable = "avx512f")]
        unsafe fn run<const R: usize, const T: usize>(
            &self,
            taps: &[usize],
            dst: &mut [f32],
            k: usize,
        ) {
            let ld = self.masks.len() * LANES;
            let mut acc = [[_mm512_setzero_ps(); T]; R];
            for n in 0..self.images {
                // SAFETY: the caller's bounds.
                unsafe {
                    let x = self.xs.add(n * self.x_image);
                    let dy = self.dys.add(n * self.dy_image);
                    for (v, &mask) in self.masks.iter().enumerate() {
                        let mut xv = [_mm512_setzero_ps(); T];
                        for (x_t, &off) in xv.iter_mut().zip(taps) {
                            *x_t = _mm512_maskz_loadu_ps(mask, x.add(off + v * LANES));
                        }
                        for (r, sums) in acc.iter_mut().enumerate() {
                            let d = _mm512_loadu_ps(dy.add(r * ld + v * LANES));
                            for (s, &x_t) in sums.iter_mut().zip(&xv) {
                                *s = _mm512_fmadd_ps(d, x_t, *s);
                            }
                        }
                    }
                }
            }
            for (r, sums) in acc.iter().enumerate() {
                for (t, &s) in sums.iter().enumerate() {
                    dst[r * k + t] += _mm512_reduce_add_ps(s);
                }
            }
        }
    }
}
