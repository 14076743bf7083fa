//! The max-pooling tape op behind [`super::MaxPool2d`] and
//! [`super::functional::max_pool2d`].
//!
//! Forward ([`Backend::max_pool`]) gives each window's maximum and the tap
//! that holds it (the first maximum, as PyTorch's kernel) in one pass over
//! the image; backward ([`Backend::max_pool_grad`]) sends each window's
//! gradient to that one pixel. Neither builds the `[C, kh·kw, N, L]`
//! columns that an unfold + argmax + gather composite would, nor the
//! scatter and fold its gradient would need.
//!
//! PyTorch's `return_indices` (each maximum's flat position `y·W + x` in
//! its input plane) follow from the winning taps without another pass:
//! the position is the window's origin plus the tap's offset, an
//! `index_select` of a table of `kh·kw` offsets.
//!
//! [`Backend::max_pool`]: crate::Backend::max_pool
//! [`Backend::max_pool_grad`]: crate::Backend::max_pool_grad

use super::window::{pool_geometry_of, Window};
use crate::backend::WindowGeometry;
use crate::{DType, Error, Layout, Result, Tensor};

/// Max pooling of `x: [N, C, H, W]` over `window`: `[N, C, OH, OW]`, the
/// output size rounded up with `ceil_mode`.
pub(crate) fn max_pool(
    op: &'static str,
    x: &Tensor,
    window: &Window,
    ceil_mode: bool,
) -> Result<Tensor> {
    Ok(max_pool_taps(op, x, window, ceil_mode)?.0)
}

/// [`max_pool`] and, as `I32` `[N, C, OH, OW]`, the flat position
/// `y·W + x` of each maximum in its `H × W` plane (PyTorch's indices).
pub(crate) fn max_pool_indices(
    op: &'static str,
    x: &Tensor,
    window: &Window,
    ceil_mode: bool,
) -> Result<(Tensor, Tensor)> {
    let (values, taps, g) = max_pool_taps(op, x, window, ceil_mode)?;
    let plane = g.h * g.w;
    if plane > 1 << 24 {
        // Positions are summed in f32, exact up to 2^24.
        return Err(Error::invalid(
            op,
            format!("indices of a {}×{} plane exceed 2^24", g.h, g.w),
        ));
    }
    let dev = x.device();
    let [kh, kw] = g.kernel;
    // Tap i·kw + j reads (i·dh, j·dw) from the window's origin.
    let offsets: Vec<f32> = (0..kh * kw)
        .map(|t| ((t / kw) * g.dilation[0] * g.w + (t % kw) * g.dilation[1]) as f32)
        .collect();
    // Window (oy, ox)'s origin: (oy·sh − ph, ox·sw − pw), as y·W + x.
    let [oh, ow] = g.out;
    let origins: Vec<f32> = (0..oh * ow)
        .map(|o| {
            let y = (o / ow * g.stride[0]) as f32 - g.padding[0] as f32;
            let x = (o % ow * g.stride[1]) as f32 - g.padding[1] as f32;
            y * g.w as f32 + x
        })
        .collect();
    let offsets = Tensor::from_vec(offsets, &[kh * kw], &dev)?;
    let origins = Tensor::from_vec(origins, &[oh, ow], &dev)?;
    let flat = taps.reshape_exact(&[taps.numel()])?;
    let indices = offsets
        .index_select(0, &flat)?
        .reshape_exact(taps.dims())?
        .add(&origins)?
        .to_dtype(DType::I32)?;
    Ok((values, indices.with_int_range(Some((0, plane as i32 - 1)))))
}

/// The max-pool tape op: values, winning taps and the geometry.
fn max_pool_taps(
    op: &'static str,
    x: &Tensor,
    window: &Window,
    ceil_mode: bool,
) -> Result<(Tensor, Tensor, WindowGeometry)> {
    let g = pool_geometry_of(op, x, window, ceil_mode)?;
    // Pooling compares in f32: an F16 image (a convolution's product under
    // autocast) is read through an F32 cast.
    let x = &x.float32(op)?;
    let s = x.storage();
    let (values, taps) = x.backend().max_pool((&s, x.layout()), &g)?;
    // lam-core's pooling windows always hold an image pixel (padding is at
    // most half the kernel, and a ceil-mode window starts inside the image
    // or its left padding), so every tap is in 0..kh·kw.
    let taps = Tensor::constant(taps, Layout::contiguous(&g.out_shape()), &x.device())
        .with_int_range(Some((0, g.taps() as i32 - 1)));
    let kept = taps.clone();
    let values = Tensor::from_op(
        "max_pool2d",
        values,
        Layout::contiguous(&g.out_shape()),
        &[x],
        move |grad| Ok(vec![Some(max_pool_grad(grad, &kept, g)?)]),
    );
    Ok((values, taps, g))
}

/// `grad: [N, C, OH, OW]` sent to the winning pixels: `[N, C, H, W]`.
/// A constant: backward runs without recording (lam has no double backward).
fn max_pool_grad(grad: &Tensor, taps: &Tensor, g: WindowGeometry) -> Result<Tensor> {
    let (s, t) = (grad.storage(), taps.storage());
    let out = grad
        .backend()
        .max_pool_grad((&s, grad.layout()), (&t, taps.layout()), &g)?;
    Ok(Tensor::constant(
        out,
        Layout::contiguous(&g.image_shape()),
        &grad.device(),
    ))
}
