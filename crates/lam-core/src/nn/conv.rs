//! Convolutions: [`Conv2d`] and [`Conv1d`] (PyTorch's `nn.Conv2d` /
//! `nn.Conv1d`) and their functional forms [`conv2d`] and [`conv1d`].
//!
//! A convolution is im2col (`window::patches`, the `unfold` primitive)
//! followed by one batched matrix product, with the weight broadcast over
//! the images and the groups:
//!
//! ```text
//! x [N, C, H, W] → cols [C, kh·kw, N, L] = [G, C/G·kh·kw, N, L] → view [N, G, C/G·kh·kw, L]
//! weight [O, C/G, kh, kw] → [G, O/G, C/G·kh·kw]
//! weight × cols → [N, G, O/G, L] = [N, O, OH, OW] (+ bias [1, O, 1, 1])
//! ```
//!
//! The view is strides only and the product lands in `[N, O, OH, OW]`
//! order, so no permute or copy is needed in either direction; the columns'
//! gradient reaches `fold` as a strided view of the same kind. The other
//! reading the layout allows — the whole batch as one matrix,
//! `[O, C·kh·kw] × [C·kh·kw, N·L]` — measured slower on the CPU
//! (LeNet-sized layers, ~5000 vs ~7800 samples/s): its output must be
//! permuted back to `[N, O, ..]` and its gradient copied the other way.
//! The gradient comes from `unfold` (whose adjoint is `fold`) and `matmul`,
//! with nothing written by hand. `Conv1d` is `Conv2d` over a height-1
//! image. Unbatched inputs (`[C, H, W]`, `[C, L]`) are accepted as in
//! PyTorch. Only zero padding (PyTorch's `padding_mode="zeros"`) is
//! supported.

use super::summary::record;
use super::window::{patches, Size2, Window};
use super::{init, py_tuple, Module};
use crate::{Device, Error, Result, Tensor};

/// How errors name a convolution's weight.
const WEIGHT: &str = "weight [out, in/groups, kernel...]";

/// A 2-d convolution over `[N, C_in, H, W]` (or unbatched `[C_in, H, W]`).
#[derive(Module)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    #[module(param)]
    pub weight: Tensor,
    /// `[out_channels]`, absent when built with `bias: false`.
    #[module(param)]
    pub bias: Option<Tensor>,
    #[module(skip)]
    window: Window,
    groups: usize,
}

/// Options of [`Conv2d`] (PyTorch's keyword arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Step between windows (default 1).
    pub stride: Size2,
    /// Zeros added on each side (default 0).
    pub padding: Size2,
    /// Spacing between kernel taps (default 1).
    pub dilation: Size2,
    /// Channel groups; `in` and `out` channels must both divide by it (default 1).
    pub groups: usize,
    /// Learn an additive bias (default true).
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: 1.into(),
            padding: 0.into(),
            dilation: 1.into(),
            groups: 1,
            bias: true,
        }
    }
}

impl Conv2dConfig {
    /// With `stride`.
    pub fn stride(mut self, stride: impl Into<Size2>) -> Self {
        self.stride = stride.into();
        self
    }

    /// With `padding`.
    pub fn padding(mut self, padding: impl Into<Size2>) -> Self {
        self.padding = padding.into();
        self
    }

    /// With `dilation`.
    pub fn dilation(mut self, dilation: impl Into<Size2>) -> Self {
        self.dilation = dilation.into();
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

impl Conv2d {
    /// `nn.Conv2d(in_channels, out_channels, kernel_size)`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Size2>,
        device: &Device,
    ) -> Result<Conv2d> {
        Conv2d::with_config(
            in_channels,
            out_channels,
            kernel,
            Conv2dConfig::default(),
            device,
        )
    }

    /// `nn.Conv2d` with options: `Conv2dConfig::default().stride(2).padding(1)`.
    pub fn with_config(
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Size2>,
        config: Conv2dConfig,
        device: &Device,
    ) -> Result<Conv2d> {
        let kernel = kernel.into();
        let window = Window::new(
            "Conv2d",
            kernel,
            config.stride,
            config.padding,
            config.dilation,
        )?;
        check_groups("Conv2d", in_channels, out_channels, config.groups)?;
        let shape = [
            out_channels,
            in_channels / config.groups,
            kernel.h,
            kernel.w,
        ];
        let (weight, bias) = init_conv(&shape, config.bias, device)?;
        Ok(Conv2d {
            weight,
            bias,
            window,
            groups: config.groups,
        })
    }

    /// The window geometry (kernel, stride, padding, dilation).
    pub fn window(&self) -> Window {
        self.window
    }

    /// Number of channel groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
}

impl Module for Conv2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = conv2d_impl(
            "Conv2d",
            input,
            &self.weight,
            self.bias.as_ref(),
            &self.window,
            self.groups,
        );
        record(self, y)
    }

    fn extra_repr(&self) -> String {
        let w = &self.window;
        let pair = |s: Size2| py_tuple(&[s.h, s.w]);
        conv_repr(
            &self.weight,
            self.groups,
            self.bias.is_none(),
            [
                pair(w.kernel),
                pair(w.stride),
                pair(w.padding),
                pair(w.dilation),
            ],
            [w.padding == 0.into(), w.dilation == 1.into()],
        )
    }
}

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
    /// Zeros added on each side (default 0).
    pub padding: usize,
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
            padding: 0,
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

    /// With `padding`.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
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
        conv_repr(
            &self.weight,
            c.groups,
            self.bias.is_none(),
            [
                one(self.weight.dims()[2]),
                one(c.stride),
                one(c.padding),
                one(c.dilation),
            ],
            [c.padding == 0, c.dilation == 1],
        )
    }
}

/// 2-d convolution of `input: [N, C, H, W]` (or `[C, H, W]`) with
/// `weight: [O, C/groups, kh, kw]` and optional `bias: [O]`
/// (`torch.nn.functional.conv2d`).
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: impl Into<Size2>,
    padding: impl Into<Size2>,
    dilation: impl Into<Size2>,
    groups: usize,
) -> Result<Tensor> {
    let (_, _, kh, kw) = weight.dims4("conv2d", WEIGHT)?;
    let window = Window::new(
        "conv2d",
        Size2::new(kh, kw),
        stride.into(),
        padding.into(),
        dilation.into(),
    )?;
    conv2d_impl("conv2d", input, weight, bias, &window, groups)
}

/// 1-d convolution of `input: [N, C, L]` (or `[C, L]`) with
/// `weight: [O, C/groups, k]` and optional `bias: [O]`
/// (`torch.nn.functional.conv1d`).
pub fn conv1d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let config = Conv1dConfig {
        stride,
        padding,
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
    let y = conv2d_impl(op, &x, &weight.unsqueeze(2)?, bias, &window, config.groups)?;
    y.squeeze(-2)
}

/// The height-1 window of a 1-d convolution.
fn window_1d(op: &'static str, kernel: usize, c: &Conv1dConfig) -> Result<Window> {
    Window::new(
        op,
        Size2::new(1, kernel),
        Size2::new(1, c.stride),
        Size2::new(0, c.padding),
        Size2::new(1, c.dilation),
    )
}

fn conv2d_impl(
    op: &'static str,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    groups: usize,
) -> Result<Tensor> {
    let (o, cg, kh, kw) = weight.dims4(op, WEIGHT)?;
    let x = if input.batched(op, 4, "[N, C, H, W]", "[C, H, W]")? {
        input.clone()
    } else {
        input.unsqueeze(0)?
    };
    if Size2::new(kh, kw) != window.kernel {
        return Err(Error::shape(
            op,
            format!(
                "a weight with a {}×{} kernel",
                window.kernel.h, window.kernel.w
            ),
            weight.dims(),
        ));
    }
    if groups == 0 || !o.is_multiple_of(groups) {
        return Err(Error::invalid(
            op,
            format!("groups ({groups}) must be positive and divide the {o} output channels"),
        ));
    }
    let (n, c) = (x.dims()[0], x.dims()[1]);
    if c != cg * groups {
        return Err(Error::shape(
            op,
            format!(
                "an input with {} channels (weight {:?}, groups {groups})",
                cg * groups,
                weight.dims()
            ),
            input.dims(),
        ));
    }
    if let Some(b) = bias {
        b.expect_shape(op, "a bias", &[o])?;
    }
    let (cols, g) = patches(op, &x, window, 0.0)?; // [C, kh·kw, N, OH·OW]
    let (k, l) = (cg * g.taps(), g.positions());
    // cols [G, K, N, L] viewed as [N, G, K, L]: a batched product whose
    // output is already [N, O, L].
    let cols = cols
        .reshape_exact(&[groups, k, n, l])?
        .permute(&[2, 0, 1, 3])?;
    let w = weight.reshape_exact(&[groups, o / groups, k])?;
    let y = w
        .matmul(&cols)?
        .reshape_exact(&[n, o, g.out[0], g.out[1]])?;
    let mut y = match bias {
        Some(b) => y.add(&b.reshape_exact(&[1, o, 1, 1])?)?,
        None => y,
    };
    if input.rank() == 3 {
        y = y.squeeze(0)?;
    }
    Ok(y)
}

fn check_groups(
    op: &'static str,
    in_channels: usize,
    out_channels: usize,
    groups: usize,
) -> Result<()> {
    if groups == 0 || !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        return Err(Error::invalid(
            op,
            format!(
                "groups ({groups}) must be positive and divide both in_channels ({in_channels}) \
                 and out_channels ({out_channels})"
            ),
        ));
    }
    Ok(())
}

/// PyTorch's default: weight and bias `U(-1/√fan_in, 1/√fan_in)`.
fn init_conv(shape: &[usize], bias: bool, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
    let (fan_in, _) = init::fans(shape)?;
    let weight = init::default_uniform(shape, fan_in, device)?.requires_grad_()?;
    let bias = if bias {
        Some(init::default_uniform(&[shape[0]], fan_in, device)?.requires_grad_()?)
    } else {
        None
    };
    Ok((weight, bias))
}

/// PyTorch's `_ConvNd.extra_repr`: channels, kernel and stride always;
/// padding, dilation, groups and a missing bias when not the defaults.
/// `geometry` is (kernel, stride, padding, dilation) as Python tuples;
/// `defaults` says whether padding and dilation are the defaults.
fn conv_repr(
    weight: &Tensor,
    groups: usize,
    no_bias: bool,
    geometry: [String; 4],
    defaults: [bool; 2],
) -> String {
    let [kernel, stride, padding, dilation] = geometry;
    let (out_c, in_c) = (weight.dims()[0], weight.dims()[1] * groups);
    let mut s = format!("{in_c}, {out_c}, kernel_size={kernel}, stride={stride}");
    if !defaults[0] {
        s += &format!(", padding={padding}");
    }
    if !defaults[1] {
        s += &format!(", dilation={dilation}");
    }
    if groups != 1 {
        s += &format!(", groups={groups}");
    }
    if no_bias {
        s += ", bias=False";
    }
    s
}
