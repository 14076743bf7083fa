//! The contract between lam's tensors and the hardware.
//!
//! A backend implements a small, closed set of primitives, named by the enums
//! below so tests can loop over them. Everything else — views, broadcasting,
//! autodiff, layers, losses, optimizers — is written once in `lam-core` in
//! terms of these primitives and runs unchanged on every backend.
//!
//! Design choices:
//! - **Object safe.** A [`crate::Device`] holds an `Arc<dyn Backend>`, so the
//!   tensor type is not generic and the device is chosen at run time.
//! - **Storage is opaque.** Each backend has its own buffer type behind
//!   [`BackendStorage`]; only that backend looks inside (via `as_any`).
//! - **Views are layouts.** Every input is a `(storage, layout)` pair with
//!   arbitrary strides and offset; every output is a fresh contiguous buffer.
//!   A backend therefore never needs a separate transpose or broadcast op.
//! - **Fused ops are optional.** The `fused_*` methods return `Ok(None)` by
//!   default, and `lam-core` then runs its composite of primitives. A backend
//!   that overrides one must agree with the composite (the conformance suite
//!   checks it on every backend).
//!
//! Required methods: all except `fused_*`, `stats` and `synchronize`.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use crate::{DType, Layout, Result};

/// A backend's buffer. Its length is in elements of its dtype.
pub trait BackendStorage: Any + Send + Sync + Debug {
    /// For the owning backend to downcast to its concrete buffer type.
    fn as_any(&self) -> &dyn Any;
    /// Number of elements.
    fn len(&self) -> usize;
    /// True when the buffer holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element type.
    fn dtype(&self) -> DType;
}

/// A shared handle to a backend buffer. Views of one tensor share it.
pub type Storage = Arc<dyn BackendStorage>;

/// A storage and the view of it an op reads.
pub type View<'a> = (&'a Storage, &'a Layout);

/// What kind of processor runs a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Cpu,
    Gpu,
}

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
    /// -1, 0 or 1.
    Sign,
    /// `1` where `x > 0`, else `0` (the derivative of relu).
    Step,
    /// `x + c`.
    AddScalar(f32),
    /// `x * c`.
    MulScalar(f32),
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
    /// `a` where `b > 0`, else `0`: the upstream gradient `a` through a ReLU
    /// whose output is `b` (one pass instead of `a * step(b)`).
    ReluGrad,
}

/// The activation [`Backend::fused_linear`] applies as it writes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearActivation {
    Identity,
    Relu,
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

/// A distribution for [`Backend::fill_random`]. The numbers are a pure
/// function of `(seed, element index)` — see [`crate::rng`] — so every backend
/// produces the same tensor for the same seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Uniform in `[low, high)`.
    Uniform { low: f32, high: f32 },
    /// Normal with `mean` and `std`.
    Normal { mean: f32, std: f32 },
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

/// Counters a device keeps; GPU backends fill in the queue and pool fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Command buffers submitted to the device queue.
    pub submits: u64,
    /// Kernels dispatched (or primitive ops run on the CPU).
    pub dispatches: u64,
    /// Buffers newly allocated from the driver.
    pub buffers_allocated: u64,
    /// Buffer requests served from the pool.
    pub pool_hits: u64,
    /// Bytes held by live tensors.
    pub bytes_live: u64,
}

/// The geometry of the sliding-window primitives ([`Backend::unfold`],
/// [`Backend::fold`], [`Backend::max_pool`], [`Backend::max_pool_grad`]): `n` images of
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

/// A compute backend: the primitive op set over its own buffers.
///
/// Every method takes inputs as [`View`]s and returns a new contiguous
/// buffer, except `copy` and the fused optimizer updates, which write into a
/// buffer the caller owns. Buffers are therefore writable through shared
/// handles; `lam-core` writes only into buffers it has just created or that
/// hold optimizer-owned state (parameters, moments). Shapes have been validated by `lam-core` before a
/// backend sees them; a backend returns errors only for device failures
/// (allocation, limits, a lost device).
pub trait Backend: Send + Sync + Debug {
    /// Human-readable name, e.g. "cpu" or "vulkan: NVIDIA H200".
    fn name(&self) -> String;
    /// CPU or GPU.
    fn kind(&self) -> DeviceKind;

    /// A zero-filled buffer of `len` elements.
    fn zeros(&self, len: usize, dtype: DType) -> Result<Storage>;
    /// A buffer holding `data` (an upload: the backend is the receiver).
    #[allow(clippy::wrong_self_convention)]
    fn from_f32(&self, data: &[f32]) -> Result<Storage>;
    /// A buffer holding `data`.
    #[allow(clippy::wrong_self_convention)]
    fn from_i32(&self, data: &[i32]) -> Result<Storage>;
    /// The elements of an `F32` view, row-major.
    fn read_f32(&self, src: View) -> Result<Vec<f32>>;
    /// The elements of an `I32` view, row-major.
    fn read_i32(&self, src: View) -> Result<Vec<i32>>;

    /// Copies the elements of `src` into the view `dst` (same shape and dtype).
    /// This one primitive makes views contiguous and implements `cat`.
    fn copy(&self, src: View, dst: View) -> Result<()>;
    /// Converts between `F32` and `I32` (float to int truncates toward zero).
    fn cast(&self, src: View, to: DType) -> Result<Storage>;

    /// `op` applied to every element of an `F32` view.
    fn unary(&self, op: UnaryOp, src: View) -> Result<Storage>;
    /// `op` applied elementwise; both layouts have the output's shape.
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Storage>;
    /// `cond != 0 ? a : b` elementwise; all three layouts have the output's shape.
    fn select(&self, cond: View, a: View, b: View) -> Result<Storage>;
    /// Reduces `axes` of `src`; the output has `src`'s shape with those axes set to 1.
    fn reduce(&self, op: ReduceOp, src: View, axes: &[usize]) -> Result<Storage>;

    /// Batched matrix product of `lhs` `[B, M, K]` and `rhs` `[B, K, N]`,
    /// giving `[B, M, N]`. Any strides, including 0 on the batch dim and
    /// transposed matrices.
    fn matmul(&self, lhs: View, rhs: View) -> Result<Storage>;

    /// `out[.., i, ..] = src[.., index[i], ..]` along `dim`; `index` is a 1-d `I32` view.
    fn index_select(&self, src: View, dim: usize, index: View) -> Result<Storage>;
    /// `out[i][j][k] = src[i][index[i][j][k]][k]` (for `dim = 1`); the output
    /// has `index`'s shape, which matches `src`'s except along `dim`.
    fn gather(&self, src: View, dim: usize, index: View) -> Result<Storage>;
    /// A zero buffer of `shape` with `out[i][index[i][j][k]][k] += src[i][j][k]`
    /// (for `dim = 1`); `index` and `src` have the same shape.
    fn scatter_add(&self, shape: &[usize], dim: usize, index: View, src: View) -> Result<Storage>;

    /// im2col: every window of `src`, an `F32` view of shape `[n, c, h, w]`
    /// (any strides), as contiguous columns of shape
    /// [`WindowGeometry::cols_shape`]; taps outside the image read `pad_value`.
    fn unfold(&self, src: View, geometry: &WindowGeometry, pad_value: f32) -> Result<Storage>;
    /// col2im, the adjoint of [`Backend::unfold`]: a contiguous `[n, c, h, w]`
    /// buffer where each pixel is the sum of the column entries (an `F32`
    /// view of shape [`WindowGeometry::cols_shape`], any strides) of the
    /// taps that read it; entries of padding taps are dropped.
    fn fold(&self, cols: View, geometry: &WindowGeometry) -> Result<Storage>;
    /// Max pooling: the maximum over the in-image taps of each window of
    /// `src` (an `F32` view `[n, c, h, w]`, any strides) as a contiguous
    /// `F32` `[n, c, out_h, out_w]`, and the `I32` tap (`i·kw + j`) holding
    /// it, the first on ties (`-1` for a window with no tap in the image).
    /// One pass over the image: no columns are built.
    fn max_pool(&self, src: View, geometry: &WindowGeometry) -> Result<(Storage, Storage)>;
    /// The gradient of [`Backend::max_pool`]: a contiguous `F32`
    /// `[n, c, h, w]` where each pixel sums the entries of `grad`
    /// (`[n, c, out_h, out_w]`, any strides) whose winning tap (`taps`,
    /// `I32`, same shape, any strides) reads it.
    fn max_pool_grad(&self, grad: View, taps: View, geometry: &WindowGeometry) -> Result<Storage>;

    /// `len` numbers from `dist`, element `i` a pure function of `(seed, i)`.
    fn fill_random(&self, len: usize, dist: Distribution, seed: u64) -> Result<Storage>;

    /// Softmax (or log-softmax) over the last dim of a contiguous `[rows, cols]` view.
    fn fused_softmax(&self, _src: View, _log: bool) -> Result<Option<Storage>> {
        Ok(None)
    }

    /// Cross-entropy of logits `[rows, cols]` against `I32` targets `[rows]`:
    /// returns the per-row losses `[rows]` and the gradient of their mean
    /// with respect to the logits, `(softmax - onehot) / rows`.
    fn fused_cross_entropy(
        &self,
        _logits: View,
        _targets: View,
    ) -> Result<Option<(Storage, Storage)>> {
        Ok(None)
    }

    /// `act(input × weight + bias)` in one pass over the output, for
    /// `input [M, K]`, `weight [K, N]` (any strides; a `Linear` passes its
    /// `[N, K]` weight transposed) and an optional `bias [N]`: the bias add
    /// and the activation happen as the matrix product is written.
    fn fused_linear(
        &self,
        _input: View,
        _weight: View,
        _bias: Option<View>,
        _act: LinearActivation,
    ) -> Result<Option<Storage>> {
        Ok(None)
    }

    /// One Adam/AdamW step in place on contiguous buffers of equal length.
    /// Returns `false` if not fused (the caller then composes it).
    fn fused_adam(
        &self,
        _param: &Storage,
        _grad: &Storage,
        _m: &Storage,
        _v: &Storage,
        _step: &AdamStep,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Counters; backends without a queue report zeros where not applicable.
    fn stats(&self) -> DeviceStats {
        DeviceStats::default()
    }

    /// Waits until all recorded work has finished.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
