//! The op enums and parameter blocks the [`super::Backend`] methods take:
//! which elementwise function, which reduction, which distribution, one
//! Adam step's hyper-parameters, batch norm's running-statistics update,
//! and the sliding-window geometry.

use super::View;

/// Elementwise ops of one input. Those with parameters carry them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Square,
    Recip,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Relu,
    /// `x` if `x > 0` else `alpha * x`.
    LeakyRelu(f32),
    /// `x` if `x > 0` else `alpha * (exp(x) - 1)`.
    Elu(f32),
    /// GELU with the exact erf form (PyTorch's default).
    Gelu,
    /// `x * sigmoid(x)`.
    Silu,
    /// `log(1 + exp(x))`, computed stably.
    Softplus,
    /// `min(max(x, lo), hi)`.
    Clamp(f32, f32),
    /// -1, 0 or 1; NaN gives 0, as PyTorch's `sign`.
    Sign,
    /// `1` where `x > 0`, else `0` (the derivative of relu).
    Step,
    /// `x + c`.
    AddScalar(f32),
    /// `x * c`.
    MulScalar(f32),
    /// `x / c`, a true division (not `x * (1 / c)`, which rounds twice).
    DivScalar(f32),
    /// `x ^ p`.
    PowScalar(f32),
    /// `1` where `x > c`, else `0`.
    GtScalar(f32),
    /// `1` where `x < c`, else `0`.
    LtScalar(f32),
    /// Derivative of exact GELU: `Φ(x) + x φ(x)`.
    GeluGrad,
    /// `1` where `lo < x < hi`, else `0` (the derivative of clamp).
    InRange(f32, f32),
}

/// Elementwise ops of two inputs with the same (already broadcast) shape.
/// Comparisons return `1.0` for true and `0.0` for false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `0` where `b <= 0`, else `a`: the upstream gradient `a` through a
    /// ReLU whose output is `b` (one pass instead of `a * step(b)`). A NaN
    /// output passes the gradient, as PyTorch's `threshold_backward` does.
    ReluGrad,
    /// `a · (Φ(b) + b φ(b))`: the upstream gradient `a` through an exact
    /// GELU whose input is `b` (PyTorch's `gelu_backward`), one pass where
    /// `a * gelu'(b)` took two; `gelu'(b)` is rounded to f32 before the
    /// product, as it was.
    GeluGrad,
}

/// The activation [`Backend::fused_linear`](super::Backend::fused_linear) applies as it writes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearActivation {
    Identity,
    Relu,
}

/// What [`Backend::fused_batch_norm_running`](super::Backend::fused_batch_norm_running)
/// updates BatchNorm's running statistics from.
#[derive(Debug, Clone, Copy)]
pub struct BatchNormRunning<'a> {
    /// The running mean, `F32` `[C]`, any strides.
    pub running_mean: View<'a>,
    /// The running variance, `F32` `[C]`, any strides.
    pub running_var: View<'a>,
    /// The batch's mean, `F32` `[C]`, any strides.
    pub mean: View<'a>,
    /// The batch's biased variance, `F32` `[C]`, any strides.
    pub var: View<'a>,
    /// The batches seen, one `I32` element, where the module counts them.
    pub count: Option<View<'a>>,
    /// The batch's weight `m` in `running·(1 − m) + batch·m`.
    pub momentum: f32,
    /// n/(n−1) for n values per channel, which unbiases the variance.
    pub correction: f32,
}

/// Reductions over axes. `ArgMax`/`ArgMin` take exactly one axis, return
/// `I32` indices, and pick the first index on ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    ArgMax,
    ArgMin,
}

/// A distribution for [`Backend::fill_random`](super::Backend::fill_random). The numbers are a pure
/// function of `(seed, element index)` — see [`crate::rng`] — so every backend
/// produces the same tensor for the same seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Uniform in `[low, high)`.
    Uniform { low: f32, high: f32 },
    /// Normal with `mean` and `std`.
    Normal { mean: f32, std: f32 },
}

/// Hyper-parameters of one fused SGD step (`torch.optim.SGD`'s equations,
/// without its L1 term).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    pub lr: f32,
    /// 0 for plain SGD (then there is no momentum buffer).
    pub momentum: f32,
    pub dampening: f32,
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// The parameter's first step with momentum: the buffer becomes the
    /// (penalised) gradient instead of being decayed.
    pub first: bool,
}

/// Hyper-parameters of one fused Adam/AdamW step (PyTorch's update equations).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// L2 penalty added to the gradient (Adam) ...
    pub weight_decay: f32,
    /// ... or decoupled decay applied to the weights (AdamW) when true.
    pub decoupled: bool,
    /// 1-based step count, for bias correction.
    pub step: u32,
}

/// The geometry of the sliding-window primitives ([`Backend::unfold`](super::Backend::unfold),
/// [`Backend::fold`](super::Backend::fold), [`Backend::max_pool`](super::Backend::max_pool), [`Backend::max_pool_grad`](super::Backend::max_pool_grad)): `n` images of
/// `c` channels, `h × w` pixels, and a sliding window given per axis as
/// `[height, width]`. `out` is the number of window positions per axis,
/// `⌊(len + 2p − d(k − 1) − 1) / s⌋ + 1` (PyTorch's formula); `lam-core`
/// computes and validates it before a backend sees it.
///
/// Columns are laid out `[c, kh·kw, n, out_h·out_w]`: element
/// `[ci, i·kw + j, ni, oy·out_w + ox]` is tap `(i, j)` of the window at
/// `(oy, ox)` of image `ni`, channel `ci`, which reads pixel
/// `(oy·s_h + i·d_h − p_h, ox·s_w + j·d_w − p_w)`. With channel and tap
/// outermost, the columns are both one matrix `[C·kh·kw, n·out_h·out_w]` and,
/// as a strided view, a batch `[n, C·kh·kw, out_h·out_w]` (what convolution
/// uses), and each group's channels are one contiguous block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowGeometry {
    /// Images in the batch.
    pub n: usize,
    /// Channels per image.
    pub c: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Kernel taps `[height, width]`.
    pub kernel: [usize; 2],
    /// Step between windows `[height, width]`.
    pub stride: [usize; 2],
    /// Implicit padding on each side `[height, width]`.
    pub padding: [usize; 2],
    /// Spacing between taps `[height, width]`.
    pub dilation: [usize; 2],
    /// Window positions `[height, width]`.
    pub out: [usize; 2],
}

impl WindowGeometry {
    /// Taps per window, `kh·kw`.
    pub fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// Window positions per image, `out_h·out_w`.
    pub fn positions(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// The columns' shape, `[c, kh·kw, n, out_h·out_w]`.
    pub fn cols_shape(&self) -> [usize; 4] {
        [self.c, self.taps(), self.n, self.positions()]
    }

    /// The images' shape, `[n, c, h, w]`.
    pub fn image_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// One value per window, `[n, c, out_h, out_w]` (max pooling's output).
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.out[0], self.out[1]]
    }
}
