//! The sliding-window primitives on every backend: `unfold` (im2col),
//! `fold` (col2im) and max pooling, against naive loops written here from
//! the definitions; fold as the adjoint of unfold; gradient checks of
//! unfold, fold and a strided,
//! dilated, padded, grouped convolution of a non-contiguous input.

use lam::nn::functional as F;
use lam::nn::*;
use lam::prelude::*;

use crate::conformance;

use super::{check, rnd, vals};
use crate::common::close;

/// kernel, stride, padding, dilation as `(h, w)` pairs.
type Geometry = [(usize, usize); 4];

/// Awkward on purpose: unequal axes, stride and dilation > 1, padding.
const GEOMETRIES: [Geometry; 3] = [
    [(2, 3), (1, 2), (1, 2), (2, 1)],
    [(3, 3), (2, 2), (1, 1), (1, 1)],
    [(1, 2), (3, 1), (0, 1), (1, 3)],
];

fn window(g: &Geometry) -> Window {
    let [k, s, p, d] = *g;
    Window::new("test", k.into(), s.into(), p.into(), d.into()).expect("valid window")
}

/// `(OH, OW)` by PyTorch's formula.
fn out_size(g: &Geometry, h: usize, w: usize) -> (usize, usize) {
    let [k, s, p, d] = *g;
    let axis = |len: usize, k: usize, s: usize, p: usize, d: usize| {
        (len + 2 * p - d * (k - 1) - 1) / s + 1
    };
    (axis(h, k.0, s.0, p.0, d.0), axis(w, k.1, s.1, p.1, d.1))
}

/// The image pixel tap `(i, j)` of window `(oy, ox)` reads, if inside.
fn pixel(
    g: &Geometry,
    dims: [usize; 4],
    oy: usize,
    ox: usize,
    i: usize,
    j: usize,
) -> Option<(usize, usize)> {
    let [_, s, p, d] = *g;
    let y = (oy * s.0 + i * d.0)
        .checked_sub(p.0)
        .filter(|&y| y < dims[2])?;
    let x = (ox * s.1 + j * d.1)
        .checked_sub(p.1)
        .filter(|&x| x < dims[3])?;
    Some((y, x))
}

/// Columns `[C, kh·kw, N, OH·OW]` of a row-major `[N, C, H, W]` image, by the definition.
fn naive_unfold(x: &[f32], dims: [usize; 4], g: &Geometry, pad: f32) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let (oh, ow) = out_size(g, h, w);
    let k = g[0];
    let mut out = Vec::new();
    for ci in 0..c {
        for i in 0..k.0 {
            for j in 0..k.1 {
                for ni in 0..n {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            out.push(match pixel(g, dims, oy, ox, i, j) {
                                Some((y, xx)) => x[((ni * c + ci) * h + y) * w + xx],
                                None => pad,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Max pooling by the definition: the first maximum over in-image taps.
fn naive_max_pool(x: &[f32], dims: [usize; 4], g: &Geometry) -> (Vec<f32>, Vec<usize>) {
    let [n, c, h, w] = dims;
    let (oh, ow) = out_size(g, h, w);
    let (mut values, mut winners) = (Vec::new(), Vec::new());
    for ni in 0..n {
        for ci in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best: Option<(f32, usize)> = None;
                    for i in 0..g[0].0 {
                        for j in 0..g[0].1 {
                            if let Some((y, xx)) = pixel(g, dims, oy, ox, i, j) {
                                let at = ((ni * c + ci) * h + y) * w + xx;
                                // The first maximum, a NaN beating any number.
                                let beats = |b: f32| x[at] > b || (x[at].is_nan() && !b.is_nan());
                                if best.is_none_or(|(b, _)| beats(b)) {
                                    best = Some((x[at], at));
                                }
                            }
                        }
                    }
                    let (v, at) = best.expect("every pooling window holds a pixel");
                    values.push(v);
                    winners.push(at);
                }
            }
        }
    }
    (values, winners)
}

/// `[N, C, H, W]` stored as `[N, H, C, W]` and permuted back: a non-contiguous input.
fn strided_image(data: &[f32], dims: [usize; 4], dev: &Device) -> Result<Tensor> {
    let [n, c, h, w] = dims;
    let stored: Vec<f32> = (0..n * h * c * w)
        .map(|e| {
            let (ni, y, ci, x) = (e / (h * c * w), e / (c * w) % h, e / w % c, e % w);
            data[((ni * c + ci) * h + y) * w + x]
        })
        .collect();
    Tensor::from_vec(stored, &[n, h, c, w], dev)?.permute(&[0, 2, 1, 3])
}

conformance!(unfold_matches_the_definition, |dev| {
    let dims = [2, 3, 5, 7];
    let data = vals(dims.iter().product(), 41);
    for g in &GEOMETRIES {
        let x = strided_image(&data, dims, dev)?;
        for pad in [0.0, -7.5] {
            let got = F::unfold(&x, &window(g), pad)?;
            let (oh, ow) = out_size(g, dims[2], dims[3]);
            assert_eq!(got.dims(), [3, g[0].0 * g[0].1, 2, oh * ow]);
            // A copy: exact on every backend.
            close(&got.to_vec()?, &naive_unfold(&data, dims, g, pad), 0.0);
        }
    }
    Ok(())
});

conformance!(fold_is_the_adjoint_of_unfold, |dev| {
    // <fold(y), x> == <y, unfold(x)>, and fold matches its definition
    // (each pixel sums the column entries that read it).
    let dims = [2, 2, 6, 5];
    let xs = vals(dims.iter().product(), 42);
    for g in &GEOMETRIES {
        let w = window(g);
        let x = Tensor::from_slice(&xs, &dims, dev)?;
        let cols_shape = F::unfold(&x, &w, 0.0)?.shape();
        let ys = vals(cols_shape.iter().product(), 43);
        // y as a transposed view, to exercise strided columns.
        let y = Tensor::from_slice(&ys, &cols_shape, dev)?
            .transpose(0, 2)?
            .contiguous()?
            .transpose(0, 2)?;
        let folded = F::fold(&y, &w, &dims)?;
        let lhs: f64 = folded
            .to_vec()?
            .iter()
            .zip(&xs)
            .map(|(a, b)| (a * b) as f64)
            .sum();
        let ux = F::unfold(&x, &w, 0.0)?.to_vec()?;
        let rhs: f64 = ys.iter().zip(&ux).map(|(a, b)| (a * b) as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-4 * (1.0 + rhs.abs()),
            "{lhs} vs {rhs} for {g:?}"
        );

        // The definition: every column entry added into the pixel it reads.
        let (oh, ow) = out_size(g, dims[2], dims[3]);
        let k = g[0];
        let mut want = vec![0.0f32; xs.len()];
        let mut e = 0;
        for ci in 0..dims[1] {
            for i in 0..k.0 {
                for j in 0..k.1 {
                    for ni in 0..dims[0] {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                if let Some((yy, xx)) = pixel(g, dims, oy, ox, i, j) {
                                    want[((ni * dims[1] + ci) * dims[2] + yy) * dims[3] + xx] +=
                                        ys[e];
                                }
                                e += 1;
                            }
                        }
                    }
                }
            }
        }
        close(&folded.to_vec()?, &want, 1e-5);
    }
    Ok(())
});

conformance!(max_pool_matches_the_definition_with_ties, |dev| {
    // Values on a coarse grid so windows have ties: the first maximum wins,
    // and the gradient goes to it alone.
    let dims = [2, 2, 6, 7];
    let mut data: Vec<f32> = vals(dims.iter().product(), 44)
        .into_iter()
        .map(|v| (v * 3.0).round())
        .collect();
    // NaN wins its window (as PyTorch propagates it): as a window's first,
    // second and last tap.
    for at in [0, 8, 7 * 3 + 6, 42 + 7 + 3] {
        data[at] = f32::NAN;
    }
    for g in [
        [(2, 2), (2, 2), (0, 0), (1, 1)],
        [(3, 2), (1, 2), (1, 1), (1, 2)],
    ] {
        let [k, s, p, d] = g;
        let x = strided_image(&data, dims, dev)?.requires_grad_()?;
        let y = F::max_pool2d(&x, k, s, p, d)?;
        let (want, winners) = naive_max_pool(&data, dims, &g);
        close(&y.to_vec()?, &want, 0.0);
        let up = vals(want.len(), 45);
        y.mul(&Tensor::from_slice(&up, y.dims(), dev)?)?
            .sum_all()?
            .backward()?;
        let mut grad = vec![0.0f32; data.len()];
        for (&at, &u) in winners.iter().zip(&up) {
            grad[at] += u;
        }
        close(&x.grad().expect("x gets a gradient").to_vec()?, &grad, 1e-6);
    }
    Ok(())
});

conformance!(gradcheck_unfold_fold, |dev| {
    let x = rnd(&[2, 2, 4, 5], 46, dev);
    for g in &GEOMETRIES {
        let w = window(g);
        // Padding taps read a constant: no gradient flows to it.
        check(|a| F::unfold(&a[0], &w, 0.5), std::slice::from_ref(&x))?;
        let cols = F::unfold(&x, &w, 0.0)?.detach();
        check(|a| F::fold(&a[0], &w, &[2, 2, 4, 5]), &[cols])?;
    }
    Ok(())
});

conformance!(gradcheck_conv2d_strided_input, |dev| {
    // Stride, dilation, padding and groups at once, on a permuted input.
    let xs = vals(2 * 4 * 6 * 5, 49);
    let x = strided_image(&xs, [2, 4, 6, 5], dev)?;
    let (w, b) = (rnd(&[6, 2, 2, 3], 50, dev), rnd(&[6], 51, dev));
    check(
        |a| F::conv2d(&a[0], &a[1], Some(&a[2]), (2, 1), (1, 2), (1, 2), 2),
        &[x, w, b],
    )
});

conformance!(window_ops_reject_bad_shapes, |dev| {
    let w = window(&GEOMETRIES[0]);
    let x = rnd(&[2, 3, 5], 52, dev);
    let err = F::unfold(&x, &w, 0.0).expect_err("rank 3 is not an image batch");
    assert!(err.to_string().contains("[N, C, H, W]"), "{err}");
    let cols = rnd(&[3, 6, 2, 4], 53, dev);
    let err = F::fold(&cols, &w, &[2, 3, 5, 7]).expect_err("wrong column shape");
    assert!(err.to_string().contains("columns of shape"), "{err}");
    let err = F::fold(&cols, &w, &[2, 3, 5]).expect_err("image shape of rank 3");
    assert!(err.to_string().contains("[N, C, H, W]"), "{err}");
    Ok(())
});

conformance!(gradcheck_conv1d_grouped, |dev| {
    // Groups with stride, padding and dilation, on a transposed input.
    let x = rnd(&[2, 9, 4], 54, dev).transpose(1, 2)?; // [2, 4, 9], strided
    let (w, b) = (rnd(&[6, 2, 3], 55, dev), rnd(&[6], 56, dev));
    check(
        |a| F::conv1d(&a[0], &a[1], Some(&a[2]), 2, 1, 2, 2),
        &[x, w, b],
    )
});

conformance!(windows_over_a_one_pixel_wide_image, |dev| {
    // Most taps of a 5-wide kernel over a 1-wide image padded by 2 never
    // touch the image: they read padding (unfold), add nothing (fold) and
    // never win (max pooling).
    let dims = [1, 2, 3, 1];
    let g = [(1, 5), (1, 1), (0, 2), (1, 1)];
    let data = vals(6, 57);
    let x = Tensor::from_slice(&data, &dims, dev)?;
    let cols = F::unfold(&x, &window(&g), -4.0)?;
    close(&cols.to_vec()?, &naive_unfold(&data, dims, &g, -4.0), 0.0);
    let folded = F::fold(&cols, &window(&g), &dims)?;
    close(&folded.to_vec()?, &data, 1e-6);
    let pooled = F::max_pool2d(&x, (1, 5), 1, (0, 2), 1)?;
    close(&pooled.to_vec()?, &naive_max_pool(&data, dims, &g).0, 0.0);
    Ok(())
});
