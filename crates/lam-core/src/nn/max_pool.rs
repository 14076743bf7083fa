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
//! [`Backend::max_pool`]: crate::Backend::max_pool
//! [`Backend::max_pool_grad`]: crate::Backend::max_pool_grad

use super::window::{geometry_of, Window};
use crate::backend::WindowGeometry;
use crate::{Layout, Result, Tensor};

/// Max pooling of `x: [N, C, H, W]` over `window`: `[N, C, OH, OW]`.
pub(crate) fn max_pool(op: &'static str, x: &Tensor, window: &Window) -> Result<Tensor> {
    let g = geometry_of(op, x, window)?;
    let s = x.storage();
    let (values, taps) = x.backend().max_pool((&s, x.layout()), &g)?;
    // lam-core's pooling windows always hold an image pixel (padding is at
    // most half the kernel), so every tap is in 0..kh·kw.
    let taps = Tensor::constant(taps, Layout::contiguous(&g.out_shape()), &x.device())
        .with_int_range(Some((0, g.taps() as i32 - 1)));
    Ok(Tensor::from_op(
        "max_pool2d",
        values,
        Layout::contiguous(&g.out_shape()),
        &[x],
        move |grad| Ok(vec![Some(max_pool_grad(grad, &taps, g)?)]),
    ))
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
