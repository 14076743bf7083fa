//! Convolutions: [`Conv2d`] (PyTorch's `nn.Conv2d`) and its functional
//! form [`conv2d`], and what `conv1d.rs` builds [`super::Conv1d`] on.
//!
//! A convolution is one tape op over the backend's `fused_conv2d` and
//! `fused_conv2d_grad` (`conv_op.rs`) where the backend has them: the CPU
//! builds one image's columns at a time in cache; lam-wgpu runs its own
//! kernels for the steps below (one group). Elsewhere (and as the
//! reference those kernels are tested against, [`composed_conv2d`]) it is
//! im2col (`window::patches`, the `unfold` primitive) followed by one
//! batched matrix product, with the weight broadcast over the images and
//! the groups:
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
//! image (`conv1d.rs`). Unbatched inputs (`[C, H, W]`, `[C, L]`) are accepted as in
//! PyTorch.
//!
//! Padding: zeros on both sides equally are the window's own (unfold reads
//! them without a copy). `padding="same"` ([`Padding::Same`]) splits
//! `dilation·(k − 1)` as PyTorch does, the odd one after; the part beyond
//! the smaller side is joined to the input first. Other `padding_mode`s
//! ([`PaddingMode`]) pad the input with [`pad`] and convolve with none.

use super::conv_op::fused_conv2d;
use super::padding::{pad, pad_constant, Padding, PaddingMode};
use super::summary::record;
use super::window::{geometry_of, patches, Size2, Window};
use super::{init, py_tuple, Module};
use crate::{Device, Error, Result, Tensor};

/// How errors name a convolution's weight.
pub(super) const WEIGHT: &str = "weight [out, in/groups, kernel...]";

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
    #[module(skip)]
    padding: Padding<Size2>,
    #[module(skip)]
    padding_mode: PaddingMode,
}

/// Options of [`Conv2d`] (PyTorch's keyword arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Step between windows (default 1).
    pub stride: Size2,
    /// Padding on each side, or `"same"` (default 0).
    pub padding: Padding<Size2>,
    /// What the padding holds (default zeros).
    pub padding_mode: PaddingMode,
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
            padding_mode: PaddingMode::Zeros,
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

    /// With `padding` on each side.
    pub fn padding(mut self, padding: impl Into<Size2>) -> Self {
        self.padding = Padding::Explicit(padding.into());
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
            explicit(config.padding),
            config.dilation,
        )?;
        check_same(
            "Conv2d",
            config.padding == Padding::Same,
            config.stride != 1.into(),
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
            padding: config.padding,
            padding_mode: config.padding_mode,
        })
    }

    /// The window geometry (kernel, stride, padding, dilation); the
    /// padding is 0 for `"same"` (see [`Conv2d::padding`]).
    pub fn window(&self) -> Window {
        self.window
    }

    /// The padding: sizes, or `"same"`.
    pub fn padding(&self) -> Padding<Size2> {
        self.padding
    }

    /// What the padding holds.
    pub fn padding_mode(&self) -> PaddingMode {
        self.padding_mode
    }

    /// Number of channel groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
}

impl Module for Conv2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = padded_conv(
            "Conv2d",
            input,
            &self.weight,
            self.bias.as_ref(),
            &self.window,
            self.groups,
            self.padding == Padding::Same,
            self.padding_mode,
        );
        record(self, y)
    }

    fn extra_repr(&self) -> String {
        let w = &self.window;
        let pair = |s: Size2| py_tuple(&[s.h, s.w]);
        let padding = match self.padding {
            Padding::Same => "same".to_string(),
            Padding::Explicit(p) => pair(p),
        };
        conv_repr(
            &self.weight,
            self.groups,
            self.bias.is_none(),
            [pair(w.kernel), pair(w.stride), padding, pair(w.dilation)],
            [
                self.padding == Padding::Explicit(0.into()),
                w.dilation == 1.into(),
            ],
            self.padding_mode,
        )
    }
}

/// 2-d convolution of `input: [N, C, H, W]` (or `[C, H, W]`) with
/// `weight: [O, C/groups, kh, kw]` and optional `bias: [O]`
/// (`torch.nn.functional.conv2d`); `padding` is zeros on each side
/// (`1`, `(1, 2)`) or [`Padding::Same`].
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: impl Into<Size2>,
    padding: impl Into<Padding<Size2>>,
    dilation: impl Into<Size2>,
    groups: usize,
) -> Result<Tensor> {
    let (_, _, kh, kw) = weight.dims4("conv2d", WEIGHT)?;
    let (stride, padding) = (stride.into(), padding.into());
    let window = Window::new(
        "conv2d",
        Size2::new(kh, kw),
        stride,
        explicit(padding),
        dilation.into(),
    )?;
    let same = padding == Padding::Same;
    check_same("conv2d", same, stride != 1.into())?;
    padded_conv(
        "conv2d",
        input,
        weight,
        bias,
        &window,
        groups,
        same,
        PaddingMode::Zeros,
    )
}

/// The explicit padding of `padding` (0 for `"same"`, which is added at
/// run time from the kernel).
fn explicit(padding: Padding<Size2>) -> Size2 {
    match padding {
        Padding::Explicit(p) => p,
        Padding::Same => 0.into(),
    }
}

/// PyTorch's rule: `padding="same"` needs stride 1.
pub(super) fn check_same(op: &'static str, same: bool, strided: bool) -> Result<()> {
    if same && strided {
        return Err(Error::invalid(
            op,
            "padding=\"same\" needs stride 1 (PyTorch's rule)",
        ));
    }
    Ok(())
}

/// A convolution whose padding is `window.padding` on both sides, or, with
/// `same`, PyTorch's "same" split; filled as `mode` says. Zeros the window
/// can read implicitly stay implicit.
#[allow(clippy::too_many_arguments)]
pub(super) fn padded_conv(
    op: &'static str,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    groups: usize,
    same: bool,
    mode: PaddingMode,
) -> Result<Tensor> {
    // (before, after) per axis [height, width].
    let sides = |k: usize, d: usize, p: usize| -> Result<(usize, usize)> {
        if !same {
            return Ok((p, p));
        }
        let total = d
            .checked_mul(k - 1)
            .ok_or_else(|| Error::invalid(op, format!("window {window:?} overflows")))?;
        Ok((total / 2, total - total / 2))
    };
    let (k, d, p) = (window.kernel, window.dilation, window.padding);
    let (top, bottom) = sides(k.h, d.h, p.h)?;
    let (left, right) = sides(k.w, d.w, p.w)?;
    let mut window = *window;
    if mode == PaddingMode::Zeros && top == bottom && left == right {
        window.padding = Size2::new(top, left);
        return conv2d_impl(op, input, weight, bias, &window, groups);
    }
    if input.rank() < 3 {
        // Let the convolution name the bad input.
        return conv2d_impl(op, input, weight, bias, &window, groups);
    }
    let x = if mode == PaddingMode::Zeros {
        // The window pads the smaller side of each axis; the rest is joined.
        window.padding = Size2::new(top.min(bottom), left.min(right));
        let extra = |a: usize, b: usize| (a - a.min(b), b - a.min(b));
        let ((l, r), (t, b)) = (extra(left, right), extra(top, bottom));
        pad_constant(input, &[l, r, t, b], 0.0)?
    } else {
        window.padding = Size2::new(0, 0);
        pad(input, &[left, right, top, bottom], mode)?
    };
    conv2d_impl(op, &x, weight, bias, &window, groups)
}

fn conv2d_impl(
    op: &'static str,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    groups: usize,
) -> Result<Tensor> {
    if crate::capture::hooked() {
        return crate::capture::traced(
            || crate::capture::Op::Conv2d {
                window: *window,
                groups,
            },
            &[Some(input), Some(weight), bias],
            || conv2d_impl(op, input, weight, bias, window, groups),
        );
    }
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
    let c = x.dims()[1];
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
    let g = geometry_of(op, &x, window)?;
    let mut y = match fused_conv2d(op, &x, weight, bias, window, g, groups)? {
        Some(y) => y,
        None => composed_conv2d(op, &x, weight, bias, window, groups)?,
    };
    if input.rank() == 3 {
        y = y.squeeze(0)?;
    }
    Ok(y)
}

/// The convolution of a batch from `unfold` and one batched `matmul` (see
/// the module doc): what a backend without `fused_conv2d` runs (untaped,
/// inside the tape op), the reference the fused kernels are tested
/// against, and the taped path of `F16` tensors.
pub(super) fn composed_conv2d(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    window: &Window,
    groups: usize,
) -> Result<Tensor> {
    let (o, cg, n) = (weight.dims()[0], weight.dims()[1], x.dims()[0]);
    let (cols, g) = patches(op, x, window, 0.0)?; // [C, kh·kw, N, OH·OW]
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
    match bias {
        Some(b) => y.add(&b.reshape_exact(&[1, o, 1, 1])?),
        None => Ok(y),
    }
}

pub(super) fn check_groups(
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
pub(super) fn init_conv(
    shape: &[usize],
    bias: bool,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
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
/// `defaults` says whether padding and dilation are the defaults; a
/// `padding_mode` other than zeros is named last.
pub(super) fn conv_repr(
    weight: &Tensor,
    groups: usize,
    no_bias: bool,
    geometry: [String; 4],
    defaults: [bool; 2],
    mode: PaddingMode,
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
    if mode != PaddingMode::Zeros {
        s += &format!(", padding_mode={}", mode.py_name());
    }
    s
}
