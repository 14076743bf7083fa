//! 2-d pooling: [`MaxPool2d`], [`AvgPool2d`], [`AdaptiveAvgPool2d`]
//! (PyTorch's layers of those names) and their functional forms. Both
//! fixed-window layers take PyTorch's `ceil_mode` (the output size rounded
//! up; a last window may run past the padding, and is cut to the image);
//! max pooling returns PyTorch's indices on request
//! ([`MaxPool2d::forward_with_indices`], for [`super::MaxUnpool2d`]), and
//! average pooling takes `divisor_override`.
//!
//! Max pooling is its own tape op (`max_pool.rs`): one pass gives each
//! window's maximum and winning tap, and the gradient goes to exactly that
//! one pixel per window — the first maximum, as PyTorch's kernel does.
//!
//! Average pooling, with fixed and with adaptive windows, is in
//! `pool/average.rs`; this file holds max pooling and the window checks
//! and batching both share.

mod average;

use super::max_pool::{max_pool, max_pool_indices};
use super::summary::record;
use super::window::{Size2, Window};
use super::{py_bool, py_tuple, Module};
use crate::{Error, Result, Tensor};

pub use average::{
    adaptive_avg_pool2d, avg_pool2d, avg_pool2d_with, AdaptiveAvgPool2d, AvgPool2d, AvgPool2dConfig,
};

/// Max over each window of `[N, C, H, W]` (or `[C, H, W]`).
#[derive(Module)]
pub struct MaxPool2d {
    #[module(skip)]
    window: Window,
    ceil_mode: bool,
}

/// Options of [`MaxPool2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaxPool2dConfig {
    /// Step between windows (default: the kernel size).
    pub stride: Option<Size2>,
    /// Implicit `-inf` padding on each side, at most half the kernel (default 0).
    pub padding: Size2,
    /// Spacing between window taps (default 1).
    pub dilation: Option<Size2>,
    /// Round the output size up (default false).
    pub ceil_mode: bool,
}

impl MaxPool2dConfig {
    /// With `ceil_mode`.
    pub fn ceil_mode(mut self, ceil: bool) -> Self {
        self.ceil_mode = ceil;
        self
    }

    /// With `stride`.
    pub fn stride(mut self, stride: impl Into<Size2>) -> Self {
        self.stride = Some(stride.into());
        self
    }

    /// With `padding`.
    pub fn padding(mut self, padding: impl Into<Size2>) -> Self {
        self.padding = padding.into();
        self
    }

    /// With `dilation`.
    pub fn dilation(mut self, dilation: impl Into<Size2>) -> Self {
        self.dilation = Some(dilation.into());
        self
    }
}

impl MaxPool2d {
    /// `nn.MaxPool2d(kernel_size)` (stride = kernel size).
    pub fn new(kernel: impl Into<Size2>) -> Result<MaxPool2d> {
        MaxPool2d::with_config(kernel, MaxPool2dConfig::default())
    }

    /// `nn.MaxPool2d` with options.
    pub fn with_config(kernel: impl Into<Size2>, config: MaxPool2dConfig) -> Result<MaxPool2d> {
        MaxPool2d::build("MaxPool2d", kernel.into(), config)
    }

    /// The layer, with errors naming `op`.
    fn build(op: &'static str, kernel: Size2, config: MaxPool2dConfig) -> Result<MaxPool2d> {
        let window = pool_window(
            op,
            kernel,
            config.stride,
            config.padding,
            config.dilation.unwrap_or(1.into()),
        )?;
        Ok(MaxPool2d {
            window,
            ceil_mode: config.ceil_mode,
        })
    }

    /// The window geometry.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Whether the output size is rounded up.
    pub fn ceil_mode(&self) -> bool {
        self.ceil_mode
    }

    /// PyTorch's `return_indices=True`: the maxima and, as `I32`, the flat
    /// position `y·W + x` of each in its input plane (what
    /// [`super::MaxUnpool2d`] takes).
    pub fn forward_with_indices(&self, input: &Tensor) -> Result<(Tensor, Tensor)> {
        max_pool2d_indices_impl("MaxPool2d", input, &self.window, self.ceil_mode)
    }
}

impl Module for MaxPool2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = max_pool2d_impl("MaxPool2d", input, &self.window, self.ceil_mode);
        record(self, y)
    }

    fn extra_repr(&self) -> String {
        let w = &self.window;
        format!(
            "kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={}",
            size_repr(w.kernel),
            size_repr(w.stride),
            size_repr(w.padding),
            size_repr(w.dilation),
            py_bool(self.ceil_mode)
        )
    }
}

/// `torch.nn.functional.max_pool2d(input, kernel, stride, padding, dilation)`.
pub fn max_pool2d(
    input: &Tensor,
    kernel: impl Into<Size2>,
    stride: impl Into<Size2>,
    padding: impl Into<Size2>,
    dilation: impl Into<Size2>,
) -> Result<Tensor> {
    let window = pool_window(
        "max_pool2d",
        kernel.into(),
        Some(stride.into()),
        padding.into(),
        dilation.into(),
    )?;
    max_pool2d_impl("max_pool2d", input, &window, false)
}

/// `torch.nn.functional.max_pool2d(input, kernel, ..., return_indices=True)`
/// with every option of `config`: the maxima and their flat positions
/// (`I32`), as [`MaxPool2d::forward_with_indices`].
pub fn max_pool2d_with_indices(
    input: &Tensor,
    kernel: impl Into<Size2>,
    config: MaxPool2dConfig,
) -> Result<(Tensor, Tensor)> {
    let pool = MaxPool2d::build("max_pool2d", kernel.into(), config)?;
    max_pool2d_indices_impl("max_pool2d", input, &pool.window, pool.ceil_mode)
}

fn max_pool2d_impl(
    op: &'static str,
    input: &Tensor,
    window: &Window,
    ceil_mode: bool,
) -> Result<Tensor> {
    if crate::capture::hooked() {
        return crate::capture::traced(
            || crate::capture::Op::MaxPool2d {
                window: *window,
                ceil_mode,
            },
            &[Some(input)],
            || max_pool2d_impl(op, input, window, ceil_mode),
        );
    }
    let (x, batched) = batch4(op, input)?;
    unbatch(max_pool(op, &x, window, ceil_mode)?, batched)
}

fn max_pool2d_indices_impl(
    op: &'static str,
    input: &Tensor,
    window: &Window,
    ceil_mode: bool,
) -> Result<(Tensor, Tensor)> {
    let (x, batched) = batch4(op, input)?;
    let (values, indices) = max_pool_indices(op, &x, window, ceil_mode)?;
    Ok((unbatch(values, batched)?, unbatch(indices, batched)?))
}

/// A size as PyTorch prints what it was given: `2` for a square one,
/// `(2, 3)` otherwise.
fn size_repr(s: Size2) -> String {
    if s.h == s.w {
        s.h.to_string()
    } else {
        py_tuple(&[s.h, s.w])
    }
}

/// A pooling window with PyTorch's checks: stride defaults to the kernel and
/// padding may be at most half the kernel (so no window is all padding).
fn pool_window(
    op: &'static str,
    kernel: Size2,
    stride: Option<Size2>,
    padding: Size2,
    dilation: Size2,
) -> Result<Window> {
    let window = Window::new(op, kernel, stride.unwrap_or(kernel), padding, dilation)?;
    if padding.h > kernel.h / 2 || padding.w > kernel.w / 2 {
        return Err(Error::invalid(
            op,
            format!(
                "padding ({}, {}) must be at most half the kernel size ({}, {})",
                padding.h, padding.w, kernel.h, kernel.w
            ),
        ));
    }
    Ok(window)
}

/// `input` as `[N, C, H, W]`, and whether it already had a batch dim.
fn batch4(op: &'static str, input: &Tensor) -> Result<(Tensor, bool)> {
    if input.batched(op, 4, "[N, C, H, W]", "[C, H, W]")? {
        Ok((input.clone(), true))
    } else {
        Ok((input.unsqueeze(0)?, false))
    }
}

/// `y` without the batch dim [`batch4`] added to an unbatched input.
fn unbatch(y: Tensor, batched: bool) -> Result<Tensor> {
    if batched {
        Ok(y)
    } else {
        y.squeeze(0)
    }
}
