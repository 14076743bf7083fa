//! Average pooling: [`AvgPool2d`] and [`AdaptiveAvgPool2d`] (PyTorch's
//! layers of those names) and their functional forms.
//!
//! Average pooling is separable: the mean over a `kh × kw` rectangle is a
//! mean over columns followed by one over rows. Along each axis every
//! output's window is a span of input positions with a divisor, which gives
//! fixed windows with or without counting padding, and PyTorch's adaptive
//! windows (`start = ⌊o·H/OH⌋`, `end = ⌈(o+1)·H/OH⌉`). A span is summed by
//! gathering its positions (`index_select`), never as a product with a 0/1
//! weight row, so an infinity stays in the windows that hold it; the
//! gradient follows from the gather. Windows that tile an axis exactly
//! (global pooling, adaptive pooling to a divisor of the size) are a view
//! of it summed instead, with nothing gathered. Divisors are PyTorch's: the window's
//! extent within the padded image (`count_include_pad`, the default), or
//! within the image, or `divisor_override` for every window.

use super::{batch4, pool_window, size_repr, unbatch};
use crate::nn::summary::record;
use crate::nn::window::{Size2, Window};
use crate::nn::{py_bool, Module};
use crate::{Error, Result, Tensor};

/// Mean over each window of `[N, C, H, W]` (or `[C, H, W]`).
#[derive(Module)]
pub struct AvgPool2d {
    #[module(skip)]
    window: Window,
    count_include_pad: bool,
    ceil_mode: bool,
    #[module(skip)]
    divisor_override: Option<usize>,
}

/// Options of [`AvgPool2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2dConfig {
    /// Step between windows (default: the kernel size).
    pub stride: Option<Size2>,
    /// Implicit zero padding on each side, at most half the kernel (default 0).
    pub padding: Size2,
    /// Count padded zeros in the divisor (default true, as PyTorch).
    pub count_include_pad: bool,
    /// Round the output size up (default false).
    pub ceil_mode: bool,
    /// Divide every window's sum by this instead (default none; not 0).
    pub divisor_override: Option<usize>,
}

impl Default for AvgPool2dConfig {
    fn default() -> Self {
        AvgPool2dConfig {
            stride: None,
            padding: 0.into(),
            count_include_pad: true,
            ceil_mode: false,
            divisor_override: None,
        }
    }
}

impl AvgPool2dConfig {
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

    /// Whether padded zeros count in the divisor.
    pub fn count_include_pad(mut self, include: bool) -> Self {
        self.count_include_pad = include;
        self
    }

    /// With `ceil_mode`.
    pub fn ceil_mode(mut self, ceil: bool) -> Self {
        self.ceil_mode = ceil;
        self
    }

    /// With `divisor_override`.
    pub fn divisor_override(mut self, divisor: usize) -> Self {
        self.divisor_override = Some(divisor);
        self
    }
}

impl AvgPool2d {
    /// `nn.AvgPool2d(kernel_size)` (stride = kernel size).
    pub fn new(kernel: impl Into<Size2>) -> Result<AvgPool2d> {
        AvgPool2d::with_config(kernel, AvgPool2dConfig::default())
    }

    /// `nn.AvgPool2d` with options.
    pub fn with_config(kernel: impl Into<Size2>, config: AvgPool2dConfig) -> Result<AvgPool2d> {
        AvgPool2d::build("AvgPool2d", kernel.into(), config)
    }

    /// The window geometry.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The layer, with errors naming `op`.
    fn build(op: &'static str, kernel: Size2, config: AvgPool2dConfig) -> Result<AvgPool2d> {
        let window = pool_window(op, kernel, config.stride, config.padding, 1.into())?;
        if config.divisor_override == Some(0) {
            return Err(Error::invalid(op, "divisor_override must not be 0"));
        }
        Ok(AvgPool2d {
            window,
            count_include_pad: config.count_include_pad,
            ceil_mode: config.ceil_mode,
            divisor_override: config.divisor_override,
        })
    }
}

impl Module for AvgPool2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = avg_pool2d_impl("AvgPool2d", input, self);
        record(self, y)
    }

    fn extra_repr(&self) -> String {
        let w = &self.window;
        let mut s = format!(
            "kernel_size={}, stride={}, padding={}",
            size_repr(w.kernel),
            size_repr(w.stride),
            size_repr(w.padding)
        );
        if !self.count_include_pad {
            s += &format!(", count_include_pad={}", py_bool(false));
        }
        s
    }
}

/// `torch.nn.functional.avg_pool2d(input, kernel, stride, padding, count_include_pad=...)`.
pub fn avg_pool2d(
    input: &Tensor,
    kernel: impl Into<Size2>,
    stride: impl Into<Size2>,
    padding: impl Into<Size2>,
    count_include_pad: bool,
) -> Result<Tensor> {
    let config = AvgPool2dConfig::default()
        .stride(stride)
        .padding(padding)
        .count_include_pad(count_include_pad);
    avg_pool2d_with(input, kernel, config)
}

/// `torch.nn.functional.avg_pool2d` with every option of `config`
/// (`ceil_mode`, `divisor_override`, ...).
pub fn avg_pool2d_with(
    input: &Tensor,
    kernel: impl Into<Size2>,
    config: AvgPool2dConfig,
) -> Result<Tensor> {
    let pool = AvgPool2d::build("avg_pool2d", kernel.into(), config)?;
    avg_pool2d_impl("avg_pool2d", input, &pool)
}

/// Mean over PyTorch's adaptive windows, giving a fixed output size.
#[derive(Module)]
pub struct AdaptiveAvgPool2d {
    #[module(skip)]
    output_size: Size2,
}

impl AdaptiveAvgPool2d {
    /// `nn.AdaptiveAvgPool2d(output_size)`.
    pub fn new(output_size: impl Into<Size2>) -> Result<AdaptiveAvgPool2d> {
        let output_size = output_size.into();
        if output_size.h == 0 || output_size.w == 0 {
            return Err(Error::invalid(
                "AdaptiveAvgPool2d",
                format!(
                    "output size must be positive, found ({}, {})",
                    output_size.h, output_size.w
                ),
            ));
        }
        Ok(AdaptiveAvgPool2d { output_size })
    }

    /// The output height and width.
    pub fn output_size(&self) -> Size2 {
        self.output_size
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, adaptive_avg_pool2d(input, self.output_size))
    }

    fn extra_repr(&self) -> String {
        format!("output_size={}", size_repr(self.output_size))
    }
}

/// `torch.nn.functional.adaptive_avg_pool2d(input, output_size)`.
pub fn adaptive_avg_pool2d(input: &Tensor, output_size: impl Into<Size2>) -> Result<Tensor> {
    let out = output_size.into();
    if crate::capture::hooked() {
        let op = crate::capture::Op::AdaptiveAvgPool2d { output: out };
        return crate::capture::traced(|| op, &[Some(input)], || adaptive_avg_pool2d(input, out));
    }
    let (x, batched) = batch4("adaptive_avg_pool2d", input)?;
    let (h, w) = (x.dims()[2], x.dims()[3]);
    if out.h == 0 || out.w == 0 || h == 0 || w == 0 {
        return Err(Error::invalid(
            "adaptive_avg_pool2d",
            format!(
                "needs positive sizes, found input {:?} and output ({}, {})",
                input.dims(),
                out.h,
                out.w
            ),
        ));
    }
    // PyTorch's windows: [⌊o·len/out⌋, ⌈(o+1)·len/out⌉).
    let spans = |len: usize, n: usize| -> Vec<(usize, usize, usize)> {
        (0..n)
            .map(|o| {
                let (start, end) = (o * len / n, ((o + 1) * len).div_ceil(n));
                (start, end, end - start)
            })
            .collect()
    };
    let y = separable_pool(&x, &spans(h, out.h), &spans(w, out.w))?;
    unbatch(y, batched)
}

fn avg_pool2d_impl(op: &'static str, input: &Tensor, pool: &AvgPool2d) -> Result<Tensor> {
    if crate::capture::hooked() {
        return crate::capture::traced(
            || crate::capture::Op::AvgPool2d {
                window: pool.window,
                count_include_pad: pool.count_include_pad,
                ceil_mode: pool.ceil_mode,
                divisor_override: pool.divisor_override,
            },
            &[Some(input)],
            || avg_pool2d_impl(op, input, pool),
        );
    }
    let (x, batched) = batch4(op, input)?;
    let (h, w) = (x.dims()[2], x.dims()[3]);
    let window = &pool.window;
    let out = window.pool_output_size(op, h, w, pool.ceil_mode)?;
    // Window `o` along an axis covers padded positions [o·s, o·s + k), i.e.
    // input positions [o·s − p, o·s − p + k) clipped to the image. Its
    // divisor counts the padded positions too, up to the right padding's
    // end (a ceil-mode window may run past it), as PyTorch's kernel does;
    // an override divides once, after both axes.
    let include = pool.count_include_pad;
    let fixed = pool.divisor_override.is_some();
    let spans =
        |len: usize, n: usize, k: usize, s: usize, p: usize| -> Vec<(usize, usize, usize)> {
            (0..n)
                .map(|o| {
                    let start = (o * s).saturating_sub(p).min(len);
                    let end = (o * s + k).saturating_sub(p).min(len);
                    let padded = (o * s + k).min(len + 2 * p) - o * s;
                    let divisor = match (fixed, include) {
                        (true, _) => 1,
                        (false, true) => padded,
                        (false, false) => end - start,
                    };
                    (start, end, divisor)
                })
                .collect()
        };
    let (k, s, p) = (window.kernel, window.stride, window.padding);
    let mut y = separable_pool(
        &x,
        &spans(h, out.h, k.h, s.h, p.h),
        &spans(w, out.w, k.w, s.w, p.w),
    )?;
    if let Some(d) = pool.divisor_override {
        y = y.div_scalar(d as f32)?;
    }
    unbatch(y, batched)
}

/// The mean of each window of `x: [N, C, H, W]`, pooled along W and then H,
/// where `spans[o] = (start, end, divisor)`: output `o` along an axis is the
/// sum of input positions `start..end` over `divisor`.
fn separable_pool(
    x: &Tensor,
    rows: &[(usize, usize, usize)],
    cols: &[(usize, usize, usize)],
) -> Result<Tensor> {
    let x = &x.float32("pool")?;
    if let (Some(r), Some(c)) = (tiling(x.dims()[2], rows), tiling(x.dims()[3], cols)) {
        // Both axes tiled by windows of one divisor each (a global average
        // pool, say): one view, one reduction over both window axes.
        let (n, ch) = (x.dims()[0], x.dims()[1]);
        let split = [n, ch, rows.len(), r.0, cols.len(), c.0].map(|d| d as isize);
        let sums = x.reshape(&split)?.sum(&[3, 5], false)?;
        return sums.div_scalar((r.1 * c.1) as f32);
    }
    pool_axis(&pool_axis(x, 3, cols)?, 2, rows)
}

/// `(width, divisor)` when the windows `spans` tile an axis of `size`
/// exactly, each `width` long with the same `divisor`.
fn tiling(size: usize, spans: &[(usize, usize, usize)]) -> Option<(usize, usize)> {
    let &(_, _, divisor) = spans.first()?;
    let width = size / spans.len();
    let tiles = spans.len() * width == size
        && spans.iter().enumerate().all(|(o, &(start, end, d))| {
            start == o * width && end == start + width && d == divisor
        });
    tiles.then_some((width, divisor.max(1)))
}

/// `x` pooled along `dim` over `spans`. Each window's positions are
/// gathered (windows shorter than the longest are filled with a selected-
/// away repeat) and summed: no window is a product with a 0/1 weight row,
/// so an infinity or NaN stays in the windows that contain it (0·inf is
/// NaN, which a matrix product would spread to every window).
fn pool_axis(x: &Tensor, dim: usize, spans: &[(usize, usize, usize)]) -> Result<Tensor> {
    let dev = x.device();
    let width = spans
        .iter()
        .map(|&(s, e, _)| e - s)
        .max()
        .unwrap_or(0)
        .max(1);
    // [.., n_out · width, ..] -> [.., n_out, width, ..]
    let mut split = x.shape();
    split[dim] = spans.len();
    split.insert(dim + 1, width);
    let sum_dim = [dim as isize + 1];
    let tiled = !spans.is_empty()
        && spans.len() * width == x.dims()[dim]
        && spans
            .iter()
            .enumerate()
            .all(|(o, &(start, end, _))| start == o * width && end == start + width);
    if tiled {
        // Windows that tile the axis (a global average pool, say): a view
        // and a sum, with nothing gathered or selected (nor scattered back
        // in the gradient).
        let sums = x.reshape(&split.iter().map(|&d| d as isize).collect::<Vec<_>>())?;
        let sums = sums.sum(&sum_dim, false)?;
        let divisor = spans[0].2.max(1);
        if spans.iter().all(|s| s.2.max(1) == divisor) {
            return sums.div_scalar(divisor as f32);
        }
        let divisors: Vec<f32> = spans.iter().map(|s| s.2.max(1) as f32).collect();
        let mut out_shape = vec![1; x.rank()];
        out_shape[dim] = spans.len();
        return sums.div(&Tensor::from_vec(divisors, &out_shape, &dev)?);
    }
    let mut index = Vec::with_capacity(spans.len() * width);
    let mut inside = Vec::with_capacity(spans.len() * width);
    for &(start, end, _) in spans {
        for j in 0..width {
            let within = start + j < end;
            // Out-of-window slots read a position of the window (or 0) and
            // are selected away below.
            index.push((start + j).min(end.max(1) - 1) as i32);
            inside.push(if within { 1.0 } else { 0.0 });
        }
    }
    let index = Tensor::from_vec_i32(index, &[spans.len() * width], &dev)?;
    let picked = x
        .index_select(dim as isize, &index)?
        .reshape_exact(&split)?;
    let mut mask_shape = vec![1; split.len()];
    mask_shape[dim] = spans.len();
    mask_shape[dim + 1] = width;
    let mask = Tensor::from_vec(inside, &mask_shape, &dev)?;
    let kept = Tensor::where_cond(&mask, &picked, &Tensor::scalar(0.0, &dev)?)?;
    let mut out_shape = vec![1; x.rank()];
    out_shape[dim] = spans.len();
    let divisors: Vec<f32> = spans.iter().map(|s| s.2.max(1) as f32).collect();
    let divisors = Tensor::from_vec(divisors, &out_shape, &dev)?;
    kept.sum(&sum_dim, false)?.div(&divisors)
}
