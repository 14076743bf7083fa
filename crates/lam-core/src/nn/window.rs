//! Sliding windows over images: their geometry ([`Size2`], [`Window`]),
//! shared by convolution and pooling, and [`unfold`] (im2col: every
//! window's elements gathered into columns) and [`fold`] (col2im: columns
//! summed back into images), on which convolution is built. (Max pooling
//! has primitives of its own that build no columns: `max_pool.rs`.)
//!
//! Both are backend primitives ([`Backend::unfold`], [`Backend::fold`]) and
//! each is the other's gradient: unfold copies each pixel into every column
//! entry that reads it, so its adjoint sums those entries back, and vice
//! versa (padding entries read a constant and get no gradient).
//!
//! Columns are laid out `[C, kh·kw, N, OH·OW]` (see [`WindowGeometry`]):
//! channel-and-tap major, so each group's rows are one contiguous block and
//! a convolution reads them, by strides alone, as a batch of
//! `[C·kh·kw, OH·OW]` matrices, one per image (see `conv.rs`).
//!
//! [`Backend::unfold`]: crate::Backend::unfold
//! [`Backend::fold`]: crate::Backend::fold

use crate::backend::WindowGeometry;
use crate::{Error, Layout, Result, Tensor};

/// A height and width. `3.into()` is `(3, 3)`; `(1, 2).into()` is `h = 1, w = 2`.
/// The default is `(0, 0)` (no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size2 {
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
}

impl Size2 {
    /// `(h, w)`.
    pub const fn new(h: usize, w: usize) -> Size2 {
        Size2 { h, w }
    }
}

impl From<usize> for Size2 {
    fn from(v: usize) -> Size2 {
        Size2 { h: v, w: v }
    }
}

impl From<(usize, usize)> for Size2 {
    fn from((h, w): (usize, usize)) -> Size2 {
        Size2 { h, w }
    }
}

impl From<[usize; 2]> for Size2 {
    fn from([h, w]: [usize; 2]) -> Size2 {
        Size2 { h, w }
    }
}

/// The geometry of a 2-d sliding window: kernel, stride, zero padding on
/// each side, and dilation (the spacing of kernel taps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: Size2,
    pub stride: Size2,
    pub padding: Size2,
    pub dilation: Size2,
}

impl Window {
    /// A window, or an error naming `op` if a kernel, stride or dilation is 0.
    pub fn new(
        op: &'static str,
        kernel: Size2,
        stride: Size2,
        padding: Size2,
        dilation: Size2,
    ) -> Result<Window> {
        for (name, s) in [
            ("kernel size", kernel),
            ("stride", stride),
            ("dilation", dilation),
        ] {
            if s.h == 0 || s.w == 0 {
                return Err(Error::invalid(
                    op,
                    format!("{name} must be positive, found ({}, {})", s.h, s.w),
                ));
            }
        }
        Ok(Window {
            kernel,
            stride,
            padding,
            dilation,
        })
    }

    /// The output size for an `h × w` input:
    /// `⌊(h + 2p − d(k − 1) − 1) / s⌋ + 1` per axis (PyTorch's formula).
    pub fn output_size(&self, op: &'static str, h: usize, w: usize) -> Result<Size2> {
        let axis = |len: usize, k: usize, s: usize, p: usize, d: usize| -> Result<usize> {
            let sizes = || -> Option<(usize, usize)> {
                let span = d.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
                Some((span, len.checked_add(p.checked_mul(2)?)?))
            };
            let Some((span, padded)) = sizes() else {
                return Err(Error::invalid(
                    op,
                    format!("window {self:?} over an input of size ({h}, {w}) overflows"),
                ));
            };
            if padded < span {
                return Err(Error::invalid(
                    op,
                    format!(
                        "input of size ({h}, {w}) padded by ({}, {}) is smaller than the \
                         (dilated) kernel ({}, {})",
                        self.padding.h,
                        self.padding.w,
                        self.dilation.h * (self.kernel.h - 1) + 1,
                        self.dilation.w * (self.kernel.w - 1) + 1
                    ),
                ));
            }
            Ok((padded - span) / s + 1)
        };
        Ok(Size2 {
            h: axis(
                h,
                self.kernel.h,
                self.stride.h,
                self.padding.h,
                self.dilation.h,
            )?,
            w: axis(
                w,
                self.kernel.w,
                self.stride.w,
                self.padding.w,
                self.dilation.w,
            )?,
        })
    }

    /// A pooling layer's output size (PyTorch's `pooling_output_shape`):
    /// [`Window::output_size`], or with `ceil_mode` the division rounded up,
    /// less the last window if it would start in the right padding.
    pub fn pool_output_size(
        &self,
        op: &'static str,
        h: usize,
        w: usize,
        ceil_mode: bool,
    ) -> Result<Size2> {
        let floor = self.output_size(op, h, w)?;
        if !ceil_mode {
            return Ok(floor);
        }
        let axis = |out: usize, len: usize, k: usize, s: usize, p: usize, d: usize| {
            // The padded length less the dilated kernel: what output_size divided.
            let room = len + 2 * p - (d * (k - 1) + 1);
            let mut out = out + usize::from(!room.is_multiple_of(s));
            if (out - 1) * s >= len + p {
                out -= 1;
            }
            out
        };
        let (k, s, p, d) = (self.kernel, self.stride, self.padding, self.dilation);
        Ok(Size2 {
            h: axis(floor.h, h, k.h, s.h, p.h, d.h),
            w: axis(floor.w, w, k.w, s.w, p.w, d.w),
        })
    }
}

/// Every window of `input: [N, C, H, W]` as columns `[C, kh·kw, N, OH·OW]`:
/// element `[c, i·kw + j, n, oy·OW + ox]` is tap `(i, j)` of the window at
/// `(oy, ox)`, or `pad_value` where that tap falls outside the image.
/// Differentiable; the gradient is [`fold`].
pub fn unfold(input: &Tensor, window: &Window, pad_value: f32) -> Result<Tensor> {
    Ok(patches("unfold", input, window, pad_value)?.0)
}

/// The adjoint of [`unfold`]: an image of `image_shape` (`[N, C, H, W]`)
/// where each pixel is the sum of the entries of `cols`
/// (`[C, kh·kw, N, OH·OW]`) that read it; padding entries are dropped.
/// Differentiable; the gradient is [`unfold`] with zero padding.
pub fn fold(cols: &Tensor, window: &Window, image_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "fold";
    let &[n, c, h, w] = image_shape else {
        return Err(Error::invalid(
            OP,
            format!("an image shape [N, C, H, W] is needed, found {image_shape:?}"),
        ));
    };
    cols.check_f32(OP)?;
    let g = geometry(window, [n, c, h, w], window.output_size(OP, h, w)?);
    cols.expect_shape(OP, "columns", &g.cols_shape())?;
    fold_op(cols, g)
}

/// [`unfold`] for layers: errors name `op`, and the geometry comes back
/// with the columns.
pub(crate) fn patches(
    op: &'static str,
    x: &Tensor,
    window: &Window,
    pad_value: f32,
) -> Result<(Tensor, WindowGeometry)> {
    let g = geometry_of(op, x, window)?;
    Ok((unfold_op(x, g, pad_value)?, g))
}

/// The geometry of `window` over `x`, which must be an F32 `[N, C, H, W]`.
pub(crate) fn geometry_of(op: &'static str, x: &Tensor, window: &Window) -> Result<WindowGeometry> {
    pool_geometry_of(op, x, window, false)
}

/// [`geometry_of`] with a pooling layer's `ceil_mode`.
pub(crate) fn pool_geometry_of(
    op: &'static str,
    x: &Tensor,
    window: &Window,
    ceil_mode: bool,
) -> Result<WindowGeometry> {
    let (n, c, h, w) = x.dims4(op, "[N, C, H, W]")?;
    x.check_float(op)?;
    let out = window.pool_output_size(op, h, w, ceil_mode)?;
    let g = geometry(window, [n, c, h, w], out);
    // The columns are the largest buffer the window ops make.
    let [kh, kw] = g.kernel;
    crate::layout::checked_numel(op, &[c, kh, kw, n, g.out[0], g.out[1]])?;
    Ok(g)
}

/// The unfold tape op: `x` is `[N, C, H, W]` matching `g` (an `F16` image
/// is read through an `F32` cast: columns are `F32`).
pub(crate) fn unfold_op(x: &Tensor, g: WindowGeometry, pad_value: f32) -> Result<Tensor> {
    let x = &x.float32("unfold")?;
    let s = x.storage();
    let out = x.backend().unfold((&s, x.layout()), &g, pad_value)?;
    Ok(Tensor::from_op(
        "unfold",
        out,
        Layout::contiguous(&g.cols_shape()),
        &[x],
        move |grad| Ok(vec![Some(fold_op(grad, g)?)]),
    ))
}

/// The fold tape op: `cols` is `[C, K, N, L]` matching `g` (callers check).
pub(crate) fn fold_op(cols: &Tensor, g: WindowGeometry) -> Result<Tensor> {
    let s = cols.storage();
    let out = cols.backend().fold((&s, cols.layout()), &g)?;
    Ok(Tensor::from_op(
        "fold",
        out,
        Layout::contiguous(&g.image_shape()),
        &[cols],
        move |grad| Ok(vec![Some(unfold_op(grad, g, 0.0)?)]),
    ))
}

fn geometry(window: &Window, [n, c, h, w]: [usize; 4], out: Size2) -> WindowGeometry {
    let pair = |s: Size2| [s.h, s.w];
    WindowGeometry {
        n,
        c,
        h,
        w,
        kernel: pair(window.kernel),
        stride: pair(window.stride),
        padding: pair(window.padding),
        dilation: pair(window.dilation),
        out: [out.h, out.w],
    }
}
