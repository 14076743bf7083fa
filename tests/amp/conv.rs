//! Autocast's convolution reads the halves themselves where the backend can
//! (lam-wgpu: Backend `fused_conv2d_f16`, `fused_conv2d_f16_grad`) and runs
//! the `f32` kernels on `F32` copies of them elsewhere. Either way it is,
//! bit for bit, the `f32` convolution of the image and weight rounded to
//! `F16`: its output rounded to `F16` once, its gradients those of that
//! convolution from the output gradient widened to `F32` — on odd sizes,
//! padding, stride, dilation, 1×1 kernels, strided, offset and `F16` image
//! views, NaN and values past f16's range, with and without a bias, each
//! gradient asked for alone; grouped convolutions and empty batches (which
//! lam-wgpu declines) alike. On a GPU the forward makes no `F32` copy of the
//! image or its columns.

use lam::nn::functional::conv2d;
use lam::{amp, DType, Device, Result, Tensor};

use crate::conformance;

/// How the image reaches the convolution.
#[derive(Clone, Copy, Debug)]
enum Image {
    Contiguous,
    /// `F32` `[N, C, W, H]` transposed to `[N, C, H, W]`.
    Transposed,
    /// `F32` narrowed from a larger batch: an offset view.
    Offset,
    /// `F16` `[N, C, W, H]` transposed: halves already, strided.
    HalfTransposed,
}

/// One convolution: `[n, c, h, w]` ⋆ `[o, c/groups, k]`.
struct Case {
    name: &'static str,
    n: usize,
    c: usize,
    o: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    bias: bool,
    image: Image,
    /// NaN, infinities and values past f16's range among the image's.
    special: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "3x3, padding 1, odd sizes, batch 1",
        n: 1,
        c: 3,
        o: 5,
        hw: [7, 9],
        k: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: true,
        image: Image::Contiguous,
        special: false,
    },
    Case {
        name: "stride 2, batch 3, transposed image, no bias",
        n: 3,
        c: 5,
        o: 3,
        hw: [8, 7],
        k: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: false,
        image: Image::Transposed,
        special: false,
    },
    Case {
        name: "dilation 2, a 2x3 kernel, one channel, offset image",
        n: 1,
        c: 1,
        o: 1,
        hw: [9, 6],
        k: [2, 3],
        stride: [1, 2],
        padding: [2, 0],
        dilation: [2, 2],
        groups: 1,
        bias: true,
        image: Image::Offset,
        special: false,
    },
    Case {
        name: "1x1, batch 3, an F16 strided image",
        n: 3,
        c: 5,
        o: 5,
        hw: [4, 5],
        k: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
        bias: true,
        image: Image::HalfTransposed,
        special: false,
    },
    Case {
        name: "NaN, infinities and values past f16's range",
        n: 1,
        c: 3,
        o: 3,
        hw: [5, 5],
        k: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: true,
        image: Image::Contiguous,
        special: true,
    },
    Case {
        name: "groups 2 (declined by lam-wgpu)",
        n: 2,
        c: 4,
        o: 4,
        hw: [5, 6],
        k: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 2,
        bias: true,
        image: Image::Contiguous,
        special: false,
    },
    Case {
        name: "an empty batch (declined by lam-wgpu)",
        n: 0,
        c: 3,
        o: 2,
        hw: [5, 5],
        k: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: true,
        image: Image::Contiguous,
        special: false,
    },
];

/// `n` values in about ±4 (a pure function of `seed`), with NaN, ±inf
/// and values past f16's largest (65504) among them when `special`.
fn values(n: usize, seed: usize, special: bool) -> Vec<f32> {
    const SPECIAL: [f32; 5] = [f32::NAN, f32::INFINITY, -1e5, 7e4, 6e-6];
    (0..n)
        .map(|i| match (special, i % 11) {
            (true, j) if j < SPECIAL.len() => SPECIAL[j],
            _ => ((i * 7 + seed * 13) as f32 * 0.61).sin() * 4.0,
        })
        .collect()
}

/// The image of `case` as its `image` kind says, and the `F32` leaf it
/// comes from (itself, but for the `F16` view), which needs a gradient
/// when `grad`.
fn image(case: &Case, dev: &Device, grad: bool) -> Result<(Tensor, Tensor)> {
    let [h, w] = case.hw;
    let (n, c) = (case.n, case.c);
    let data = values(n * c * h * w, 1, case.special);
    // detach keeps a view's layout: the leaf is the strided tensor.
    let leaf = |t: Tensor| {
        if grad {
            t.detach().requires_grad_()
        } else {
            Ok(t)
        }
    };
    let x = match case.image {
        Image::Contiguous => leaf(Tensor::from_vec(data, &[n, c, h, w], dev)?)?,
        Image::Transposed => leaf(Tensor::from_vec(data, &[n, c, w, h], dev)?.transpose(2, 3)?)?,
        Image::Offset => {
            let all = values((n + 1) * c * h * w, 1, case.special);
            leaf(Tensor::from_vec(all, &[n + 1, c, h, w], dev)?.narrow(0, 1, n)?)?
        }
        Image::HalfTransposed => {
            let x = leaf(Tensor::from_vec(data, &[n, c, w, h], dev)?)?;
            let view = x.to_dtype(DType::F16)?.transpose(2, 3)?;
            return Ok((view, x));
        }
    };
    Ok((x.clone(), x))
}

/// Runs `case` under autocast and as the `f32` convolution of the halves,
/// with the gradients `needs` asks for from an `F16` (or, with `wide_grad`,
/// an `F32`) output gradient, and compares the bits (see
/// `common::assert_same_halves`).
fn check(dev: &Device, case: &Case, needs: [bool; 3], wide_grad: bool) -> Result<()> {
    let what = format!("{} (needs {needs:?}, F32 gradient {wide_grad})", case.name);
    let [kh, kw] = case.k;
    let w_shape = [case.o, case.c / case.groups, kh, kw];
    let leaf = |t: Tensor, grad: bool| if grad { t.requires_grad_() } else { Ok(t) };
    let (x, x_leaf) = image(case, dev, needs[0])?;
    let w = Tensor::from_vec(values(w_shape.iter().product(), 2, false), &w_shape, dev)?;
    let w = leaf(w.mul_scalar(0.25)?, needs[1])?;
    let b = match case.bias {
        true => Some(leaf(
            Tensor::from_vec(values(case.o, 3, false), &[case.o], dev)?,
            needs[2],
        )?),
        false => None,
    };
    let conv = |x: &Tensor, w: &Tensor, b: Option<&Tensor>| {
        conv2d(
            x,
            w,
            b,
            case.stride,
            case.padding,
            case.dilation,
            case.groups,
        )
    };
    let y = {
        let _ac = amp::autocast_forced(dev, DType::F16)?;
        conv(&x, &w, b.as_ref())?
    };
    assert_eq!(y.dtype(), DType::F16, "{what}");

    // The reference: the f32 convolution of the halves, outside autocast.
    let halves = |t: &Tensor, grad: bool| -> Result<Tensor> {
        let h = t.detach().to_dtype(DType::F16)?.to_dtype(DType::F32)?;
        leaf(h, grad)
    };
    let (xr, wr) = (halves(&x, needs[0])?, halves(&w, needs[1])?);
    let br = match &b {
        Some(b) => Some(leaf(b.detach(), needs[2])?),
        None => None,
    };
    let yr = conv(&xr, &wr, br.as_ref())?;
    // Bit for bit, but for neighbouring halves where the device sums F16
    // products on cooperative matrices.
    let loose = crate::common::f16_products_reassociate(dev);
    let floats = |t: &Tensor| t.to_dtype(DType::F32)?.to_vec();
    let same = |got: &Tensor, want: &Tensor, what: &str| -> Result<()> {
        crate::common::assert_same_halves(&floats(got)?, &floats(want)?, loose, what);
        Ok(())
    };
    same(&y, &yr.to_dtype(DType::F16)?, &format!("output of {what}"))?;

    let gy = Tensor::from_vec(values(y.numel(), 4, false), y.dims(), dev)?;
    let gy = match wide_grad {
        // Not halves: these must reach the kernels unrounded.
        true => gy.add_scalar(1.0 / 3.0)?,
        false => gy.to_dtype(DType::F16)?,
    };
    y.backward_with(&gy)?;
    yr.backward_with(&gy.to_dtype(DType::F32)?)?;
    // The F16 image's leaf is [N, C, W, H].
    let as_image = |g: Tensor| match case.image {
        Image::HalfTransposed => g.transpose(2, 3),
        _ => Ok(g),
    };
    let x_grad = x_leaf.grad().map(as_image).transpose()?;
    let grads = [
        (x_grad, xr.grad()),
        (w.grad(), wr.grad()),
        (
            b.as_ref().and_then(Tensor::grad),
            br.as_ref().and_then(Tensor::grad),
        ),
    ];
    for (k, pair) in grads.into_iter().enumerate() {
        match pair {
            (Some(g), Some(want)) => {
                assert!(needs[k], "{what}: gradient {k} was not asked for");
                let want = want.to_dtype(g.dtype())?;
                same(&g, &want, &format!("gradient {k} of {what}"))?;
            }
            (None, None) => assert!(!needs[k] || k == 2 && !case.bias, "{what}: no gradient {k}"),
            (g, _) => panic!(
                "{what}: gradient {k} on one side only ({:?})",
                g.map(|g| g.dims().to_vec())
            ),
        }
    }
    Ok(())
}

conformance!(
    autocast_convolution_is_the_f32_convolution_of_halves,
    |dev| {
        for case in CASES {
            // Every gradient, then each alone.
            for needs in [
                [true, true, true],
                [true, false, false],
                [false, true, false],
                [false, false, true],
            ] {
                if needs == [false, false, true] && !case.bias {
                    continue;
                }
                check(dev, case, needs, false)?;
            }
            check(dev, case, [true, true, case.bias], true)?;
        }
        Ok(())
    }
);

// On a GPU, an autocast convolution of an F16 image without a bias holds
// the F16 columns (9 × 1,024 halves: 18,432 bytes, a 32 KiB buffer) and its
// F16 output (1,024 bytes), which the product kernels write, at its peak:
// no F32 copy of the image (4 KiB), no f32 columns (36,864 bytes, a 64 KiB
// buffer) and no f32 sums (2 KiB), which the f32 kernels on copies of the
// halves needed. Its weight's gradient from an F32 output gradient
// (what batch norm hands back) reads those F16 columns too: the backward
// holds no 64 KiB buffer either. (A private device, so no other test's
// buffers count.)
#[test]
fn autocast_convolution_holds_no_f32_image_on_gpus() -> Result<()> {
    const F32_COLUMNS: u64 = 65_536;
    for api in ["vulkan", "gl"] {
        let Some(shared) = crate::common::gpu(api) else {
            continue;
        };
        let dev = crate::common::private_device(&shared);
        let x = Tensor::randn(&[1, 4, 16, 16], &dev)?.to_dtype(DType::F16)?;
        let w16 = Tensor::randn(&[2, 4, 3, 3], &dev)?.to_dtype(DType::F16)?;
        let w = w16.to_dtype(DType::F32)?.requires_grad_()?;
        let gy = Tensor::randn(&[1, 2, 16, 16], &dev)?;
        dev.synchronize()?;
        let peak_of = |run: &dyn Fn() -> Result<()>| -> Result<u64> {
            let before = dev.stats().bytes_live;
            dev.reset_peak_stats();
            run()?;
            Ok(dev.stats().bytes_live_peak - before)
        };
        let forward = || {
            let _ac = amp::autocast_forced(&dev, DType::F16)?;
            conv2d(&x, &w16, None, 1, 1, 1, 1)
        };
        // The first F16 product on a device with cooperative matrices
        // checks their kernel on a product of its own (ops/matmul/coop.rs):
        // once, before the measured run.
        forward().map(drop)?;
        dev.synchronize()?;
        let peak = peak_of(&|| forward().map(drop))?;
        assert_eq!(peak, 32_768 + 1_024, "forward on {}", dev.name());
        let y = {
            let _ac = amp::autocast_forced(&dev, DType::F16)?;
            conv2d(&x, &w, None, 1, 1, 1, 1)?
        };
        let peak = peak_of(&|| y.backward_with(&gy))?;
        assert!(w.grad().is_some());
        assert!(
            peak < F32_COLUMNS,
            "backward on {}: {peak} bytes",
            dev.name()
        );
    }
    Ok(())
}
