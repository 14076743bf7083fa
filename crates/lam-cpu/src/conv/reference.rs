//! Stride-1 convolution and its gradients by the definition, in `f64`:
//! what the tests of the by-kernel-row and direct paths compare against.

/// `x [n, c, h, w] ⋆ w [o, c, kh, kw]` (+ bias) by its definition.
pub(super) fn direct(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    [n, c, h, wd]: [usize; 4],
    [o, kh, kw]: [usize; 3],
    [ph, pw]: [usize; 2],
) -> Vec<f32> {
    let (oh, ow) = (h + 2 * ph + 1 - kh, wd + 2 * pw + 1 - kw);
    let mut y = vec![0.0f64; n * o * oh * ow];
    for (ni, oi, yy, xx) in (0..n).flat_map(|a| {
        (0..o).flat_map(move |b| (0..oh).flat_map(move |cc| (0..ow).map(move |d| (a, b, cc, d))))
    }) {
        let mut acc = bias.map_or(0.0, |b| b[oi] as f64);
        for (ci, i, j) in
            (0..c).flat_map(|a| (0..kh).flat_map(move |b| (0..kw).map(move |d| (a, b, d))))
        {
            let (iy, ix) = (
                (yy + i) as isize - ph as isize,
                (xx + j) as isize - pw as isize,
            );
            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                let xv = x[((ni * c + ci) * h + iy as usize) * wd + ix as usize];
                acc += xv as f64 * w[((oi * c + ci) * kh + i) * kw + j] as f64;
            }
        }
        y[((ni * o + oi) * oh + yy) * ow + xx] = acc;
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// The gradients of `Σ dy · direct(x, w, b)` by the definition:
/// `(dx, dw, db)`.
pub(super) fn direct_grad(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    [n, c, h, wd]: [usize; 4],
    [o, kh, kw]: [usize; 3],
    [ph, pw]: [usize; 2],
) -> [Vec<f32>; 3] {
    let (oh, ow) = (h + 2 * ph + 1 - kh, wd + 2 * pw + 1 - kw);
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    let mut db = vec![0.0f64; o];
    for ni in 0..n {
        for oi in 0..o {
            for yy in 0..oh {
                for xx in 0..ow {
                    let g = dy[((ni * o + oi) * oh + yy) * ow + xx] as f64;
                    db[oi] += g;
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (yy + i) as isize - ph as isize;
                                let ix = (xx + j) as isize - pw as isize;
                                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                    continue;
                                }
                                let xi = ((ni * c + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((oi * c + ci) * kh + i) * kw + j;
                                dx[xi] += g * w[wi] as f64;
                                dw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    [dx, dw, db].map(|v| v.into_iter().map(|v| v as f32).collect())
}
