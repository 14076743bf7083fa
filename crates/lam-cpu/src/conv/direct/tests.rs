//! Tests of the direct convolution: outputs and gradients through the
//! backend against `conv::reference`, for shapes that take the direct path
//! (asserted where the processor has AVX-512), views, NaN and infinite
//! values, and the geometries that must take the other paths. They sit
//! apart from `direct.rs` so that its kernels' drivers read without them.

use lam_core::backend::WindowGeometry;
use lam_core::{Backend, Layout};

use super::super::Shapes;
use super::*;
use crate::conv::reference::{direct, direct_grad};
use crate::test_util::*;

/// A stride-1 window geometry.
fn geometry([n, c, h, w]: [usize; 4], kernel: [usize; 2], padding: [usize; 2]) -> WindowGeometry {
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
