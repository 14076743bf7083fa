//! Convolution as one fused op (Backend `fused_conv2d` and its gradient;
//! `unfold` and `matmul` on the unfused devices and on backends that
//! decline it) against the definition in f64 on the host, and its
//! gradients against the composed path's: groups, stride, dilation,
//! padding, odd sizes, one image and several (split across threads), 1×1
//! kernels, a kernel as large as the padded input, offset, strided and
//! permuted input and weight views; finite differences; NaN and infinity;
//! an empty batch; one fused call each way per use.

use lam::nn::functional as F;
use lam::nn::{Conv2d, Module};
use lam::prelude::*;

use crate::common::{close, gpu, unfused};
use crate::conformance;

use super::{check, rnd, t, vals};

/// One convolution: input `[n, c, h, w]`, `o` output channels, and the
/// window as `[height, width]` pairs.
#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

impl Case {
    const fn new(
        [n, c, h, w]: [usize; 4],
        o: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Case {
        Case {
            n,
            c,
            h,
            w,
            o,
            kernel,
            stride,
            padding,
            dilation,
            groups,
        }
    }

    fn out(&self) -> [usize; 2] {
        [0, 1].map(|d| {
            let size = [self.h, self.w][d] + 2 * self.padding[d];
            (size - self.dilation[d] * (self.kernel[d] - 1) - 1) / self.stride[d] + 1
        })
    }

    fn weight_shape(&self) -> [usize; 4] {
        [self.o, self.c / self.groups, self.kernel[0], self.kernel[1]]
    }

    fn conv(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> lam::Result<Tensor> {
        F::conv2d(
            x,
            w,
            b,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
}

const CASES: [Case; 9] = [
    // A ResNet 3×3, several images.
    Case::new([3, 3, 7, 6], 4, [3, 3], [1, 1], [1, 1], [1, 1], 1),
    // Groups, stride, dilation, uneven padding, one image.
    Case::new([1, 4, 5, 9], 6, [2, 3], [2, 1], [0, 2], [1, 2], 2),
    // Pointwise, depthwise-grouped.
    Case::new([5, 6, 4, 3], 6, [1, 1], [1, 1], [0, 0], [1, 1], 3),
    // A strided 1×1 (ResNet's downsample), not pointwise.
    Case::new([2, 2, 5, 5], 3, [1, 1], [2, 2], [0, 0], [1, 1], 1),
    // A kernel as large as the padded input: one window.
    Case::new([2, 1, 3, 3], 2, [5, 5], [1, 1], [1, 1], [1, 1], 1),
    // Height 1 (a Conv1d), padding wider than the kernel reaches.
    Case::new([4, 2, 1, 8], 2, [1, 3], [1, 3], [0, 3], [1, 1], 1),
    // Dilated "same" 3×3: each tap's rows are the image shifted.
    Case::new([2, 2, 6, 5], 3, [3, 3], [1, 1], [2, 2], [2, 2], 1),
    // One row, "same" width.
    Case::new([3, 2, 1, 7], 2, [1, 3], [1, 1], [0, 1], [1, 1], 1),
    // A 1×1 padded: windows made only of padding.
    Case::new([2, 3, 2, 3], 2, [1, 1], [1, 1], [1, 1], [1, 1], 1),
];

/// The convolution by its definition, in f64: `x` `[n, c, h, w]` and `w`
/// `[o, c/g, kh, kw]` contiguous.
fn host(case: &Case, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let Case {
        n,
        c,
        h,
        w: width,
        o,
        kernel: [kh, kw],
        stride,
        padding,
        dilation,
        groups,
    } = *case;
    let [oh, ow] = case.out();
    let (cg, og) = (c / groups, o / groups);
    let mut out = Vec::with_capacity(n * o * oh * ow);
    for img in 0..n {
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b[oc] as f64);
                    for ci in 0..cg {
                        let ch = (oc / og) * cg + ci;
                        for i in 0..kh {
                            for j in 0..kw {
                                let y = (oy * stride[0] + i * dilation[0]) as isize
                                    - padding[0] as isize;
                                let xx = (ox * stride[1] + j * dilation[1]) as isize
                                    - padding[1] as isize;
                                if y < 0 || xx < 0 || y as usize >= h || xx as usize >= width {
                                    continue;
                                }
                                let xv = x[((img * c + ch) * h + y as usize) * width + xx as usize];
                                let wv = w[((oc * cg + ci) * kh + i) * kw + j];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out.push(acc as f32);
                }
            }
        }
    }
    out
}

/// The convolution of `case` on `dev` with the input and weight as
/// non-contiguous views when `views` (the input narrowed out of a wider
/// buffer or permuted from channels-last, the weight's kernel transposed),
/// and its output, input, weight and bias gradients under the output
/// gradient `g`.
fn convolve(dev: &Device, case: &Case, views: bool, salt: u32) -> lam::Result<[Vec<f32>; 4]> {
    let Case { n, c, h, w, o, .. } = *case;
    let ws = case.weight_shape();
    let (xv, wv, bv) = (
        vals(n * c * h * w, salt),
        vals(ws.iter().product(), salt + 1),
        vals(o, salt + 2),
    );
    let [oh, ow] = case.out();
    let gv = vals(n * o * oh * ow, salt + 3);
    let (x, weight) = if views {
        // Channels-last for even salts (pixels one stride apart), else a
        // narrowed width (rows further apart than the width).
        let x = if salt.is_multiple_of(2) {
            let nhwc = host_permute(&xv, [n, c, h, w], [0, 2, 3, 1]);
            t(&nhwc, &[n, h, w, c], dev).permute(&[0, 3, 1, 2])?
        } else {
            let wide = host_pad_last(&xv, w, 2);
            t(&wide, &[n, c, h, w + 2], dev).narrow(3, 1, w)?
        };
        let wt = host_permute(&wv, ws, [0, 1, 3, 2]);
        let weight = t(&wt, &[ws[0], ws[1], ws[3], ws[2]], dev).transpose(2, 3)?;
        (x, weight)
    } else {
        (t(&xv, &[n, c, h, w], dev), t(&wv, &ws, dev))
    };
    let (x, weight) = (x.requires_grad_()?, weight.requires_grad_()?);
    let b = t(&bv, &[o], dev).requires_grad_()?;
    let y = case.conv(&x, &weight, Some(&b))?;
    assert_eq!(y.dims(), [n, o, oh, ow], "{case:?}");
    close(&y.to_vec()?, &host(case, &xv, &wv, Some(&bv)), 1e-5);
    y.mul(&t(&gv, &[n, o, oh, ow], dev))?
        .sum_all()?
        .backward()?;
    let grad = |t: &Tensor| t.grad().expect("a gradient").to_vec();
    Ok([y.to_vec()?, grad(&x)?, grad(&weight)?, grad(&b)?])
}

/// `data` of `shape` with its dims reordered by `perm`, contiguous.
fn host_permute(data: &[f32], shape: [usize; 4], perm: [usize; 4]) -> Vec<f32> {
    let dims = perm.map(|p| shape[p]);
    let strides = [
        shape[1] * shape[2] * shape[3],
        shape[2] * shape[3],
        shape[3],
        1,
    ];
    let mut out = Vec::with_capacity(data.len());
    for a in 0..dims[0] {
        for b in 0..dims[1] {
            for c in 0..dims[2] {
                for d in 0..dims[3] {
                    let idx = [a, b, c, d];
                    let at: usize = (0..4).map(|k| idx[k] * strides[perm[k]]).sum();
                    out.push(data[at]);
                }
            }
        }
    }
    out
}

/// Rows of `width` each widened by `extra` sevens, one before and the
/// rest after.
fn host_pad_last(data: &[f32], width: usize, extra: usize) -> Vec<f32> {
    data.chunks(width)
        .flat_map(|row| {
            let mut r = vec![7.0];
            r.extend_from_slice(row);
            r.extend(std::iter::repeat_n(7.0, extra - 1));
            r
        })
        .collect()
}

conformance!(
    conv2d_matches_the_definition_and_the_composed_gradient,
    |dev| {
        let reference = unfused(dev);
        for (k, case) in CASES.iter().enumerate() {
            for views in [false, true] {
                let salt = 10 * k as u32 + views as u32;
                let got = convolve(dev, case, views, salt)?;
                let want = convolve(&reference, case, false, salt)?;
                for (what, (g, w)) in ["y", "dx", "dw", "db"].iter().zip(got.iter().zip(&want)) {
                    if let Err(e) = lam::testing::assert_close(g, w, 1e-5, 1e-5) {
                        panic!("{case:?}, views {views}, {what}: {e}");
                    }
                }
            }
        }
        Ok(())
    }
);

conformance!(conv2d_gradients_match_finite_differences, |dev| {
    let case = CASES[1];
    check(
        |a| case.conv(&a[0], &a[1], Some(&a[2])),
        &[
            rnd(&[1, 4, 5, 9], 41, dev),
            rnd(&case.weight_shape(), 42, dev),
            rnd(&[6], 43, dev),
        ],
    )?;
    // A channels-last input into a pointwise grouped convolution.
    let case = CASES[2];
    check(
        |a| case.conv(&a[0].permute(&[0, 3, 1, 2])?, &a[1], None),
        &[
            rnd(&[2, 4, 3, 6], 44, dev),
            rnd(&case.weight_shape(), 45, dev),
        ],
    )
});

conformance!(
    nan_and_infinity_reach_only_the_windows_that_read_them,
    |dev| {
        // A 3×3 convolution, padding 1, over a 1×1×4×4 image with NaN at (0, 0)
        // and +∞ at (3, 3): outputs within one pixel of each are non-finite,
        // the rest match the definition.
        let mut xv = vals(16, 50);
        xv[0] = f32::NAN;
        xv[15] = f32::INFINITY;
        let wv: Vec<f32> = vals(9, 51).iter().map(|v| v.abs() + 0.5).collect();
        let x = t(&xv, &[1, 1, 4, 4], dev);
        let y = F::conv2d(&x, &t(&wv, &[1, 1, 3, 3], dev), None, 1, 1, 1, 1)?.to_vec()?;
        let mut finite = xv.clone();
        finite[0] = 0.0;
        finite[15] = 0.0;
        let case = Case::new([1, 1, 4, 4], 1, [3, 3], [1, 1], [1, 1], [1, 1], 1);
        let want = host(&case, &finite, &wv, None);
        for (p, (&got, &want)) in y.iter().zip(&want).enumerate() {
            let (r, c) = (p / 4, p % 4);
            if r <= 1 && c <= 1 {
                assert!(got.is_nan(), "({r}, {c}) reads NaN: {got}");
            } else if r >= 2 && c >= 2 {
                assert_eq!(
                    got,
                    f32::INFINITY,
                    "({r}, {c}) reads +inf with positive weights"
                );
            } else {
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "({r}, {c}): {got} vs {want}"
                );
            }
        }
        Ok(())
    }
);

conformance!(an_empty_batch_convolves_to_an_empty_batch, |dev| {
    let x = Tensor::zeros(&[0, 3, 5, 5], dev)?.requires_grad_()?;
    let w = rnd(&[4, 3, 3, 3], 60, dev).requires_grad_()?;
    let b = rnd(&[4], 61, dev).requires_grad_()?;
    let y = F::conv2d(&x, &w, Some(&b), 2, 1, 1, 1)?;
    assert_eq!(y.dims(), [0, 4, 3, 3]);
    y.sum_all()?.backward()?;
    assert_eq!(x.grad().expect("x grad").dims(), [0, 3, 5, 5]);
    assert!(w
        .grad()
        .expect("w grad")
        .to_vec()?
        .iter()
        .all(|&v| v == 0.0));
    assert!(b
        .grad()
        .expect("b grad")
        .to_vec()?
        .iter()
        .all(|&v| v == 0.0));
    Ok(())
});

#[test]
fn conv2d_is_one_fused_op_each_way() {
    // The backend composes its own kernels inside the fused op (lam-wgpu),
    // or runs one (lam-cpu): either way lam-core composes nothing.
    use lam::DeviceExt;
    let devices = [Some(Device::cpu()), gpu("vulkan"), gpu("gl")];
    for device in devices.into_iter().flatten() {
        let (dev, recorder) = lam::testing::Recorder::device(&device);
        let conv = Conv2d::new(3, 4, 3, &dev).expect("conv");
        let x = Tensor::randn(&[2, 3, 6, 6], &dev)
            .and_then(|x| x.requires_grad_())
            .expect("input");
        conv.forward(&x)
            .and_then(|y| y.sum_all())
            .and_then(|s| s.backward())
            .expect("forward and backward");
        let calls = recorder.calls();
        assert_eq!(calls.get("fused_conv2d"), Some(&1), "{calls:?}");
        assert_eq!(calls.get("fused_conv2d_grad"), Some(&1), "{calls:?}");
        for composed in ["unfold", "fold", "matmul"] {
            assert_eq!(calls.get(composed), None, "{}: {calls:?}", device.name());
        }
    }
}

/// Runs every op but `fused_conv2d_grad`, which it declines.
struct DeclineConvGrad;

impl lam::backend::Hooks for DeclineConvGrad {
    fn fused<T>(
        &self,
        method: &'static str,
        _label: impl FnOnce() -> String,
        _taken: impl FnOnce(&T) -> bool,
        call: impl FnOnce() -> lam::Result<T>,
        decline: impl FnOnce() -> lam::Result<T>,
    ) -> lam::Result<T> {
        if method == "fused_conv2d_grad" {
            decline()
        } else {
            call()
        }
    }
}

#[test]
fn a_fused_forward_whose_gradient_is_declined_gets_the_composed_gradient() {
    use lam::DeviceExt;
    use std::sync::Arc;
    let backend = Arc::new(lam::backend::Wrapped::wrap(
        Arc::new(lam_cpu::CpuBackend::new()),
        DeclineConvGrad,
    ));
    let declining = Device::new(backend);
    for (k, case) in CASES.iter().enumerate() {
        let salt = 100 + 10 * k as u32;
        let got = convolve(&declining, case, true, salt).expect("declined gradient");
        let want = convolve(&Device::cpu(), case, false, salt).expect("fused gradient");
        for (what, (g, w)) in ["y", "dx", "dw", "db"].iter().zip(got.iter().zip(&want)) {
            if let Err(e) = lam::testing::assert_close(g, w, 1e-5, 1e-5) {
                panic!("{case:?}, {what}: {e}");
            }
        }
    }
}
