//! [`Conv1d`] (PyTorch's `nn.Conv1d`) and its functional form [`conv1d`]:
//! a [`super::Conv2d`] convolution over a height-1 image, the kernel given
//! height 1 (`[N, C, L]` → `[N, C, 1, L]`), padding and options included.

use super::conv::{check_groups, check_same, conv_repr, init_conv, padded_conv, WEIGHT};
use super::padding::{Padding, PaddingMode};
use super::summary::record;
use super::window::{Size2, Window};
use super::{py_tuple, Module};
use crate::{Device, Result, Tensor};

/// A 1-d convolution over `[N, C_in, L]` (or unbatched `[C_in, L]`).
#[derive(Module)]
pub struct Conv1d {
    /// `[out_channels, in_channels / groups, k]`.
    #[module(param)]
    pub weight: Tensor,
    /// `[out_channels]`, absent when built with `bias: false`.
    #[module(param)]
    pub bias: Option<Tensor>,
    #[module(skip)]
    config: Conv1dConfig,
}

/// Options of [`Conv1d`] (PyTorch's keyword arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dConfig {
    /// Step between windows (default 1).
    pub stride: usize,
    /// Padding on each side, or `"same"` (default 0).
    pub padding: Padding<usize>,
    /// What the padding holds (default zeros).
    pub padding_mode: PaddingMode,
    /// Spacing between kernel taps (default 1).
    pub dilation: usize,
    /// Channel groups (default 1).
    pub groups: usize,
    /// Learn an additive bias (default true).
    pub bias: bool,
}

impl Default for Conv1dConfig {
    fn default() -> Self {
        Conv1dConfig {
            stride: 1,
            padding: Padding::Explicit(0),
            padding_mode: PaddingMode::Zeros,
            dilation: 1,
            groups: 1,
            bias: true,
        }
    }
}

impl Conv1dConfig {
    /// With `stride`.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// With `padding` on each side.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = Padding::Explicit(padding);
        self
    }

    /// With PyTorch's `padding="same"` (stride 1 only).
    pub fn padding_same(mut self) -> Self {
        self.padding = Padding::Same;
        self
    }

    /// With `padding_mode`.
    pub fn padding_mode(mut self, mode: PaddingMode) -> Self {
        self.padding_mode = mode;
        self
    }

    /// With `dilation`.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }

    /// With `groups`.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

impl Conv1d {
    /// `nn.Conv1d(in_channels, out_channels, kernel_size)`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        device: &Device,
    ) -> Result<Conv1d> {
        Conv1d::with_config(
            in_channels,
            out_channels,
            kernel,
            Conv1dConfig::default(),
            device,
        )
    }

    /// `nn.Conv1d` with options.
    pub fn with_config(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        config: Conv1dConfig,
        device: &Device,
    ) -> Result<Conv1d> {
        window_1d("Conv1d", kernel, &config)?;
        check_groups("Conv1d", in_channels, out_channels, config.groups)?;
        let shape = [out_channels, in_channels / config.groups, kernel];
        let (weight, bias) = init_conv(&shape, config.bias, device)?;
        Ok(Conv1d {
            weight,
            bias,
            config,
        })
    }

    /// The options this layer was built with.
    pub fn config(&self) -> Conv1dConfig {
        self.config
    }
}

impl Module for Conv1d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = conv1d_impl(
            "Conv1d",
            input,
            &self.weight,
            self.bias.as_ref(),
            &self.config,
        );
        record(self, y)
    }

    fn extra_repr(&self) -> String {
        let c = &self.config;
        let one = |v: usize| py_tuple(&[v]);
        let padding = match c.padding {
            Padding::Same => "same".to_string(),
            Padding::Explicit(p) => one(p),
        };
        conv_repr(
            &self.weight,
            c.groups,
            self.bias.is_none(),
            [
                one(self.weight.dims()[2]),
                one(c.stride),
                padding,
                one(c.dilation),
            ],
            [c.padding == Padding::Explicit(0), c.dilation == 1],
            c.padding_mode,
        )
    }
}

/// 1-d convolution of `input: [N, C, L]` (or `[C, L]`) with
/// `weight: [O, C/groups, k]` and optional `bias: [O]`
/// (`torch.nn.functional.conv1d`).
pub fn conv1d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: impl Into<Padding<usize>>,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let config = Conv1dConfig {
        stride,
        padding: padding.into(),
        padding_mode: PaddingMode::Zeros,
        dilation,
        groups,
        bias: bias.is_some(),
    };
    conv1d_impl("conv1d", input, weight, bias, &config)
}

fn conv1d_impl(
    op: &'static str,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    config: &Conv1dConfig,
) -> Result<Tensor> {
    let (_, _, k) = weight.dims3(op, WEIGHT)?;
    input.batched(op, 3, "[N, C, L]", "[C, L]")?;
    let window = window_1d(op, k, config)?;
    // [N, C, L] → [N, C, 1, L] (or [C, L] → [C, 1, L]); the kernel gets height 1.
    let x = input.unsqueeze(-2)?;
    let y = padded_conv(
        op,
        &x,
        &weight.unsqueeze(2)?,
        bias,
        &window,
        config.groups,
        config.padding == Padding::Same,
        config.padding_mode,
    )?;
    y.squeeze(-2)
}

/// The height-1 window of a 1-d convolution.
fn window_1d(op: &'static str, kernel: usize, c: &Conv1dConfig) -> Result<Window> {
    let padding = match c.padding {
        Padding::Explicit(p) => p,
        Padding::Same => 0,
    };
    let window = Window::new(
        op,
        Size2::new(1, kernel),
        Size2::new(1, c.stride),
        Size2::new(0, padding),
        Size2::new(1, c.dilation),
    )?;
    check_same(op, c.padding == Padding::Same, c.stride != 1)?;
    Ok(window)
}
