//! The [`Backend`] trait, written once as a list of methods.
//!
//! `backend_methods!` holds every method's signature and documentation, and
//! expands to the trait itself and to the one backend that wraps another,
//! [`Wrapped`], which forwards every method through its [`Hooks`]. Every
//! wrapper is a `Wrapped` with its own hooks: the profiler's
//! [`crate::profile::Profiled`] times calls, the test devices of
//! [`crate::testing`] decline every fused op ([`crate::testing::Unfused`]) or
//! count calls ([`crate::testing::Recorder`]). So a method added to the list
//! is forwarded by every wrapper without anyone writing it — a wrapper that
//! forgot an optional `fused_*` method would silently turn that fused path
//! off — and a method cannot reach the trait without being in the list.
//!
//! The list has four groups:
//! - `name`: the device's name (hooks may word it their own way);
//! - `info`: facts about the device, forwarded as they are;
//! - `ops`: the primitives and `synchronize`, run through [`Hooks::op`],
//!   labelled by their name or by the `named` expression (built only when a
//!   hook asks) for families told apart by an op enum. `= default` gives an
//!   optional method its default body;
//! - `fused`: optional fused ops, run through [`Hooks::fused`]. The `=` body
//!   is the default, which declines (the caller then composes the op from
//!   primitives); `taken` tells from a result whether the backend ran it.
//!
//! The generator, `define_backend!`, is in `methods/define.rs`; this file
//! is the list.

// `macro_use`: the list's expansion at the end of this file calls it.
#[macro_use]
mod define;

use std::fmt::Debug;

use super::wrapped::{op_name, product_name, Hooks, Wrapped};
use super::{
    AdamStep, AttentionInputs, AttentionScores, BatchNormRunning, BinaryOp, DeviceKind,
    DeviceStats, Distribution, LinearActivation, ReduceOp, SgdStep, Storage, UnaryOp, View,
    WindowGeometry,
};
use crate::{DType, Result};

/// The list of [`Backend`] methods (see the module doc), expanded by
/// `define_backend`.
macro_rules! backend_methods {
    () => {
        define_backend! {
            name {
                /// Human-readable name, e.g. "cpu" or "vulkan: NVIDIA H200".
                fn name(&self) -> String;
            }
            info {
                /// CPU or GPU.
                fn kind(&self) -> DeviceKind;
                /// Counters; backends without a queue report zeros where not applicable.
                fn stats(&self) -> DeviceStats = DeviceStats::default();
                /// Restarts `DeviceStats::bytes_live_peak` from the bytes
                /// live now (backends that keep no peak have nothing to do).
                fn reset_peak_stats(&self) -> () = ();
                /// True when half-precision arithmetic is native to the device
                /// (a GPU adapter with WGSL's `shader-f16`): what
                /// [`crate::amp::autocast`] asks before computing in `F16`.
                /// Every backend stores `F16` tensors either way.
                fn native_f16(&self) -> bool = false;
            }
            ops {
                /// A zero-filled buffer of `len` elements.
                fn zeros(&self, len: usize, dtype: DType) -> Result<Storage>;
                /// A buffer of `len` elements whose values are unspecified
                /// (but initialised: reading them is no error), for an
                /// output the caller writes entirely, as `cat` does: both
                /// backends hand out a recycled buffer as it is, saving the
                /// fill (on a GPU, a clearing kernel).
                fn empty(&self, len: usize, dtype: DType) -> Result<Storage>;
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
                /// This one primitive implements `cat` and writes into slices.
                fn copy(&self, src: View, dst: View) -> Result<()>;
                /// Converts between `F32`, `I32` and `F16` (float to int truncates toward
                /// zero; NaN becomes 0 and out-of-range values saturate, as Rust's `as`;
                /// to `F16` rounds to nearest even with IEEE overflow, subnormals and
                /// NaN, and int to `F16` goes through `f32`, as PyTorch's). To `src`'s
                /// own dtype it is a contiguous copy in one pass: how views are made
                /// contiguous.
                fn cast(&self, src: View, to: DType) -> Result<Storage>;

                /// `op` applied to every element of an `F32` view.
                fn unary(&self, op: UnaryOp, src: View) -> Result<Storage>,
                    named op_name("unary", &op);
                /// `op` applied elementwise; both layouts have the output's shape.
                fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Storage>,
                    named op_name("binary", &op);
                /// `cond != 0 ? a : b` elementwise; all three layouts have the output's shape.
                fn select(&self, cond: View, a: View, b: View) -> Result<Storage>;
                /// Reduces `axes` of `src`; the output has `src`'s shape with those axes set to 1.
                fn reduce(&self, op: ReduceOp, src: View, axes: &[usize]) -> Result<Storage>,
                    named op_name("reduce", &op);

                /// Batched matrix product of `lhs` `[B, M, K]` and `rhs` `[B, K, N]`,
                /// giving `[B, M, N]`. Any strides, including 0 on the batch dim and
                /// transposed matrices.
                fn matmul(&self, lhs: View, rhs: View) -> Result<Storage>,
                    named product_name("matmul", lhs.1, rhs.1);

                /// `out[.., i, ..] = src[.., index[i], ..]` along `dim`; `index` is a
                /// 1-d `I32` view. An index outside `0..src.shape[dim]` is an error
                /// (see the trait doc on index values).
                fn index_select(&self, src: View, dim: usize, index: View) -> Result<Storage>;
                /// `out[i][j][k] = src[i][index[i][j][k]][k]` (for `dim = 1`); the output
                /// has `index`'s shape, which matches `src`'s except along `dim`.
                fn gather(&self, src: View, dim: usize, index: View) -> Result<Storage>;
                /// A zero buffer of `shape` with `out[i][index[i][j][k]][k] += src[i][j][k]`
                /// (for `dim = 1`); `index` and `src` have the same shape.
                fn scatter_add(&self, shape: &[usize], dim: usize, index: View, src: View)
                    -> Result<Storage>;

                /// im2col: every window of `src`, an `F32` view of shape `[n, c, h, w]`
                /// (any strides), as contiguous columns of shape
                /// [`WindowGeometry::cols_shape`]; taps outside the image read `pad_value`.
                fn unfold(&self, src: View, geometry: &WindowGeometry, pad_value: f32)
                    -> Result<Storage>;
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
                fn max_pool(&self, src: View, geometry: &WindowGeometry)
                    -> Result<(Storage, Storage)>;
                /// The gradient of [`Backend::max_pool`]: a contiguous `F32`
                /// `[n, c, h, w]` where each pixel sums the entries of `grad`
                /// (`[n, c, out_h, out_w]`, any strides) whose winning tap (`taps`,
                /// `I32`, same shape, any strides) reads it.
                fn max_pool_grad(&self, grad: View, taps: View, geometry: &WindowGeometry)
                    -> Result<Storage>;

                /// The int8 product of dynamic quantization: each row `m` of
                /// `input` (`F32` `[M, K]`, any strides) quantized with its
                /// scale `s = input_scale[m]` (`F32` `[M]`, any strides; when
                /// `None`, the backend takes `s = max |x| / 127` over the row,
                /// NaN if the row holds one, in the same pass) as
                /// `q = clamp(round(x / s), -127, 127)` (halves to even; every
                /// `q` is 0 where `s` is not positive), times `weight` (`I32`
                /// `[N, ⌈K/4⌉]`, contiguous: four int8 values per word, the
                /// lowest byte first, zero past `K`) accumulated in `i32`, each
                /// output scaled by `s · weight_scale[n]` (`F32` `[N]`) plus the
                /// optional `bias` (`F32` `[N]`): a contiguous `F32` `[M, N]`.
                fn matmul_i8(&self, input: View, input_scale: Option<View>, weight: View,
                    weight_scale: View, bias: Option<View>) -> Result<Storage>;

                /// `len` numbers from `dist`, element `i` a pure function of `(seed, i)`.
                fn fill_random(&self, len: usize, dist: Distribution, seed: u64) -> Result<Storage>;

                /// Waits until all recorded work has finished.
                fn synchronize(&self) -> Result<()> = Ok(());
            }
            fused {
                /// Softmax (or log-softmax) over the last dim of a `[rows, cols]` view,
                /// as a contiguous `[rows, cols]` buffer. The view has any strides and
                /// may start anywhere in its buffer (a narrowed input does).
                fn fused_softmax(&self, src: View, log: bool) -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some,
                    named String::from(if log { "fused_log_softmax" } else { "fused_softmax" });
                /// [`Backend::unary`] of an `F16` (or `F32`) view whose result is
                /// `to`, `F16` or `F32`: each half widened exactly to `f32`, `op`
                /// computed as `unary` computes it, and an `F16` result rounded
                /// once to nearest even — bit for bit the cast to `F32`, `unary`
                /// and the cast back, in one pass over memory instead of three.
                /// Declining, the caller composes those.
                fn fused_unary_f16(&self, op: UnaryOp, src: View, to: DType)
                    -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some,
                    named op_name("fused_unary_f16", &op);
                /// [`Backend::binary`] of two views each `F16` or `F32` (both
                /// layouts the output's shape), the result `to`, `F16` or `F32`:
                /// as [`Backend::fused_unary_f16`], bit for bit the casts of the
                /// `F16` operands to `F32`, `binary` and the cast of the result.
                fn fused_binary_f16(&self, op: BinaryOp, lhs: View, rhs: View, to: DType)
                    -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some,
                    named op_name("fused_binary_f16", &op);
                /// [`Backend::matmul`] of two `F16` views, as a contiguous `F16`
                /// `[B, M, N]`: each output the sum of the exact products of
                /// the halves, accumulated in `f32` and rounded to `F16` once;
                /// with `to` `F32`, those halves widened back (the `F16`
                /// product's cast, as a weight's gradient takes it). Declining,
                /// the caller casts the operands to `F32`, multiplies them with
                /// [`Backend::matmul`] and casts the result to `F16` (and back):
                /// the same numbers, up to the order of the `f32` sums, in
                /// three or four more passes over memory.
                fn fused_matmul_f16(&self, lhs: View, rhs: View, to: DType)
                    -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some,
                    named product_name("fused_matmul_f16", lhs.1, rhs.1);
                /// Scaled dot-product attention (see [`AttentionInputs`]) without
                /// the `[L, S]` score matrix in memory (FlashAttention's online
                /// softmax over key tiles): the output, a contiguous `[B, H, L, Ev]`,
                /// and each query row's softmax statistics, a contiguous
                /// `[B, H, L, 2]`: the shift `m` (the maximum of its scaled,
                /// masked scores) and `l = Σ exp(score - m)`, from which the
                /// weights are `exp(score - m) / l`. A row whose every key is
                /// masked (`-∞`) has `m = l = 0` and output 0. (Kept apart
                /// rather than as one logsumexp `m + ln l`, which loses `ln l`
                /// next to a large `m`: rows masked by `-1e9` everywhere.)
                fn fused_attention(&self, inputs: &AttentionInputs<'_>)
                    -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_attention`] with respect to
                /// `q`, `k` and `v` (contiguous `[B, H, L, E]`, `[B, H, S, E]`,
                /// `[B, H, S, Ev]`, broadcast dims not summed), given its output
                /// `out` and softmax statistics `stats` and the output's gradient
                /// `grad` (any strides), the scores recomputed tile by tile
                /// (FlashAttention-2's backward).
                fn fused_attention_grad(&self, inputs: &AttentionInputs<'_>, out: View,
                    stats: View, grad: View) -> Result<Option<(Storage, Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The attention weights between the composite attention's two
                /// products, where [`Backend::fused_attention`] declined:
                /// `p = softmax(scale · scores + mask, causal)` over each row of
                /// the products `scores` (see [`AttentionScores`]), a contiguous
                /// `[B, H, L, S]`, and the statistics of
                /// [`Backend::fused_attention`], a contiguous `[B, H, L, 2]`. A
                /// row whose every key is masked has weights 0 and statistics
                /// `(0, 0)`; a row with a NaN or `+∞` score has NaN weights and
                /// statistics (as the fused kernels' output). One pass over the
                /// scores where composing it takes a dozen.
                fn fused_attention_weights(&self, inputs: &AttentionScores<'_>)
                    -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The composite attention's backward between its products: from
                /// the products and mask of [`Backend::fused_attention_weights`],
                /// its statistics `stats` (`[B, H, L, 2]`), `dp = grad · vᵀ`
                /// (`[B, H, L, S]`), and the output's gradient `grad` and the
                /// output `out` (`[B, H, L, Ev]`), all with any strides: the
                /// weights `p = exp(x - m) · (1 / l)` (0 where `l = 0`) of the
                /// masked, scaled scores `x`, and their gradient
                /// `ds = p ∘ (dp - rowsum(grad ∘ out))`, both contiguous
                /// `[B, H, L, S]`. `ds` is also an additive mask's gradient.
                fn fused_attention_weights_grad(&self, inputs: &AttentionScores<'_>,
                    stats: View, dp: View, grad: View, out: View)
                    -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// Cross-entropy of logits `[rows, cols]` against `I32` targets `[rows]`:
                /// returns the per-row losses `[rows]` and the gradient of their mean
                /// with respect to the logits, `(softmax - onehot) / rows`, both
                /// `F32`. A target outside `0..cols` is an error (see the trait doc
                /// on index values). Logits are `F32`, or `F16` where the backend
                /// reads halves (widened exactly, the same numbers as their `F32`
                /// cast); a backend that does not declines `F16` logits.
                fn fused_cross_entropy(&self, logits: View, targets: View)
                    -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// `act(input × weight + bias)` in one pass over the output, for
                /// `input [M, K]`, `weight [K, N]` (any strides; a `Linear` passes its
                /// `[N, K]` weight transposed) and an optional `bias [N]`: the bias add
                /// and the activation happen as the matrix product is written.
                fn fused_linear(&self, input: View, weight: View, bias: Option<View>,
                    act: LinearActivation) -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some,
                    named product_name(&op_name("fused_linear", &act), input.1, weight.1);
                /// [`Backend::fused_linear`] as autocast runs a `Linear` with a
                /// bias: `input` and `weight` are `F16` views, the bias `F32`, and
                /// the contiguous `F32` `[M, N]` output is `act(p + bias)` where
                /// `p` is the product summed in `f32` and rounded to `F16` (as
                /// [`Backend::fused_matmul_f16`] rounds it) then widened back:
                /// bit for bit the `F16` product cast to `F32`, added to the bias
                /// by [`Backend::binary`] and passed through the activation, all
                /// done as the product is written rather than in passes of their own.
                /// With `to` `F16` the output is that `F32` result rounded to `F16`
                /// once more (its cast, done as it is written).
                fn fused_linear_f16(&self, input: View, weight: View, bias: View,
                    act: LinearActivation, to: DType) -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some,
                    named product_name(&op_name("fused_linear_f16", &act), input.1, weight.1);
                /// One LSTM step's gate arithmetic for `B` rows of hidden size
                /// `H`: from the input and hidden projections (`[B, 4H]` each,
                /// biases included, gates `i, f, g, o`) and the cell state `c`
                /// (`[B, H]`), all with any strides, returns a contiguous
                /// `[2, B, H]` holding `h' = o ⊙ tanh(c')` then
                /// `c' = f ⊙ c + i ⊙ g` — `i, f, o` sigmoids and `g` the tanh of
                /// the summed projections — and the activated gates, a
                /// contiguous `[B, 4H]` for [`Backend::fused_lstm_cell_grad`].
                fn fused_lstm_cell(&self, input_gates: View, hidden_gates: View, c: View)
                    -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_lstm_cell`]: from `grad_h`
                /// and `grad_c` (`[B, H]`), the activated `gates` (`[B, 4H]`),
                /// the step's input cell state `c` and its output `c_new`
                /// (`[B, H]`), all with any strides, the gradient of the summed
                /// projections (contiguous `[B, 4H]`, that of either
                /// projection) and of `c` (contiguous `[B, H]`).
                fn fused_lstm_cell_grad(&self, grad_h: View, grad_c: View, gates: View,
                    c: View, c_new: View) -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// One GRU step's gate arithmetic for `B` rows of hidden size
                /// `H`: from the input and hidden projections (`[B, 3H]` each,
                /// each with its own bias, gates `r, z, n`) and the hidden
                /// state `h` (`[B, H]`), all with any strides, returns
                /// `h' = n + z ⊙ (h − n)` (contiguous `[B, H]`) with
                /// `r, z` the sigmoids of the summed projections and
                /// `n = tanh(x_n + r ⊙ h_n)`, and the activated gates `r, z, n`
                /// (contiguous `[B, 3H]`) for [`Backend::fused_gru_cell_grad`].
                fn fused_gru_cell(&self, input_gates: View, hidden_gates: View, h: View)
                    -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_gru_cell`]: from `grad_h`
                /// (`[B, H]`), the activated `gates` (`[B, 3H]`), the hidden
                /// projection `hidden_gates` (`[B, 3H]`) and the step's input
                /// state `h` (`[B, H]`), all with any strides, the gradients
                /// of the input projection and of the hidden projection
                /// (contiguous `[B, 3H]` each) and of `h` (contiguous `[B, H]`).
                fn fused_gru_cell_grad(&self, grad_h: View, gates: View, hidden_gates: View,
                    h: View) -> Result<Option<(Storage, Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// A whole LSTM layer's time loop in one direction, `T` steps of
                /// [`Backend::fused_lstm_cell`] each fed `h Wₕₕᵀ`: from the input
                /// projection `input_gates` (`[T, B, 4H]`, biases included),
                /// `w_hh` (`[4H, H]`) and the initial `h` and `c` (`[B, H]`),
                /// all with any strides, steps in time order or, when
                /// `reverse`, backwards. Returns `hs` and `cs` (contiguous
                /// `[T + 1, B, H]`: the initial state, then each step's) and
                /// the activated gates (contiguous `[T, B, 4H]`), all in the
                /// order run, for [`Backend::fused_lstm_sequence_grad`].
                fn fused_lstm_sequence(&self, input_gates: View, w_hh: View, h: View, c: View,
                    reverse: bool) -> Result<Option<(Storage, Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// [`Backend::fused_lstm_sequence`] from the layer's input
                /// rather than its projection, with the initial `state`
                /// `(h, c)`: `x` (`[T, B, in]`), `w_ih`
                /// (`[4H, in]`) and the optional `bias` (`[4H]`, `b_ih +
                /// b_hh`), all with any strides, step `t`'s `input_gates`
                /// being `x_t W_ihᵀ + bias`; the same results. A backend
                /// offers it where projecting inside the loop pays (lam-cpu,
                /// multiplying `[x | h]` by `[W_ihᵀ; W_hhᵀ]`: where that
                /// weight is small or `in` is at most `H / 4`) and declines
                /// otherwise, and the caller projects first.
                fn fused_lstm_layer(&self, x: View, w_ih: View, bias: Option<View>, w_hh: View,
                    state: (View, View), reverse: bool)
                    -> Result<Option<(Storage, Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_lstm_sequence`]: from the
                /// gradient reaching each step's output `h` (`grad_hs`,
                /// `[T, B, H]` in time order) and the final `c` (`grad_c`,
                /// `[B, H]`), the `gates` and `cs` it returned and `w_hh`, all
                /// with any strides, the gradient of the input projection
                /// (contiguous `[T, B, 4H]`, time order) and of the initial `h`
                /// and `c` (contiguous `[B, H]` each), and optionally the
                /// projection's gradient summed over steps and rows (`[4H]`,
                /// the bias's gradient), where the backend adds it up as it
                /// goes; else the caller sums.
                fn fused_lstm_sequence_grad(&self, grad_hs: View, grad_c: View, gates: View,
                    cs: View, w_hh: View, reverse: bool)
                    -> Result<Option<(Storage, Storage, Storage, Option<Storage>)>>
                    = Ok(None), taken Option::is_some;
                /// Layer normalization of each row of a `[rows, cols]` view:
                /// `y = (x − mean) · rstd ⊙ weight + bias` with the row's mean,
                /// biased variance and `rstd = 1 / √(var + eps)`; `weight` and
                /// `bias` are optional `[cols]` views (all views any strides).
                /// Returns `y` (contiguous `[rows, cols]`) and each row's mean
                /// and `rstd` (contiguous `[rows]`) for
                /// [`Backend::fused_layer_norm_grad`].
                fn fused_layer_norm(&self, input: View, weight: Option<View>,
                    bias: Option<View>, eps: f32) -> Result<Option<(Storage, Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_layer_norm`] from `grad`
                /// (`[rows, cols]`), the `input`, its rows' `mean` and `rstd`
                /// (`[rows]`) and the optional `weight` (`[cols]`), all with
                /// any strides: the input's gradient (contiguous `[rows,
                /// cols]`) and the sums over rows of `grad ⊙ x̂` and of `grad`
                /// (contiguous `[cols]` each: the weight's and the bias's).
                fn fused_layer_norm_grad(&self, grad: View, input: View, mean: View, rstd: View,
                    weight: Option<View>) -> Result<Option<(Storage, Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// One Adam/AdamW step in place on contiguous buffers of equal length.
                /// Returns `false` if not fused (the caller then composes it).
                fn fused_adam(&self, param: &Storage, grad: &Storage, m: &Storage,
                    v: &Storage, step: &AdamStep) -> Result<bool>
                    = Ok(false), taken |&fused: &bool| fused;
                /// One SGD step in place on contiguous buffers of equal
                /// length: `param`, `grad`, and `momentum_buffer` exactly when
                /// `step.momentum != 0`. Returns `false` if not fused (the
                /// caller then composes it).
                fn fused_sgd(&self, param: &Storage, grad: &Storage,
                    momentum_buffer: Option<&Storage>, step: &SgdStep) -> Result<bool>
                    = Ok(false), taken |&fused: &bool| fused;
                /// Loss scaling's unscale (PyTorch's
                /// `_amp_foreach_non_finite_check_and_unscale_`), one gradient
                /// at a time: the `F32` view `grad` (any strides) times
                /// `inv_scale`, as `unary`'s `MulScalar` computes it, as a
                /// contiguous `F32` buffer; where any of its elements is
                /// infinite or NaN, `found` (an `F32` `[1]` of its own, 0 or 1)
                /// becomes 1, else it is left as it is. One pass over the
                /// gradient, where the composition takes five ops and a sum;
                /// the caller zeroes `found` once for all the gradients and
                /// reads it once.
                fn fused_unscale(&self, grad: View, inv_scale: f32, found: &Storage)
                    -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some;
                /// Batch normalization in training mode of `input`, a `[N, C, L]`
                /// view (`L` the spatial dims flattened, 1 for `[N, C]`): per
                /// channel the mean and biased variance of its `N·L` values
                /// (a constant channel has exactly its value as mean and 0 as
                /// variance), `invstd = 1 / √(var + eps)` and
                /// `y = (x − mean) · invstd ⊙ weight + bias`; `weight` and
                /// `bias` are optional `[C]` views (all views any strides).
                /// Returns `y` (contiguous `[N, C, L]`) and the statistics, a
                /// contiguous `[3, C]`: mean, biased variance, invstd.
                fn fused_batch_norm(&self, input: View, weight: Option<View>,
                    bias: Option<View>, eps: f32) -> Result<Option<(Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_batch_norm`] from `grad`
                /// (`[N, C, L]`), the `input`, the channels' `mean` and `invstd`
                /// (`[C]`) and the optional `weight` (`[C]`), all with any
                /// strides: the input's gradient (contiguous `[N, C, L]`) and
                /// the per-channel sums of `grad ⊙ x̂` and of `grad` (contiguous
                /// `[C]` each: the weight's and the bias's).
                fn fused_batch_norm_grad(&self, grad: View, input: View, mean: View,
                    invstd: View, weight: Option<View>)
                    -> Result<Option<(Storage, Storage, Storage)>>
                    = Ok(None), taken Option::is_some;
                /// BatchNorm's running statistics after a training batch, as
                /// PyTorch updates them: per channel `running·(1 − m) + batch·m`
                /// with `m` = `momentum`, for the mean with the batch's `mean`,
                /// for the variance with the batch's biased `var` times
                /// `correction` (n/(n−1), which unbiases it), each product
                /// rounded to f32 before the sum as lam-core composes it; and
                /// the batches seen, `count + 1`, where a `count` is given.
                /// Returns the new running mean and variance (contiguous `[C]`
                /// each) and count: one pass where the composition takes ten
                /// ops.
                fn fused_batch_norm_running(&self, update: BatchNormRunning)
                    -> Result<Option<(Storage, Storage, Option<Storage>)>>
                    = Ok(None), taken Option::is_some;
                /// 2-d convolution of `input` (`F32` `[N, C, H, W]`, any strides)
                /// with `weight` (`F32` `[O, C/groups, kh, kw]`, any strides) over
                /// the windows of `geometry` (whose `c` is `C`; taps outside the
                /// image read zero), plus the optional `bias` (`F32` `[O]`): a
                /// contiguous `[N, O, out_h, out_w]` where channel `o` of group
                /// `o / (O/groups)` sees input channels of that group only.
                fn fused_conv2d(&self, input: View, weight: View, bias: Option<View>,
                    geometry: &WindowGeometry, groups: usize) -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_conv2d`] from the output's
                /// gradient `grad` (`[N, O, out_h, out_w]`) and the `input` and
                /// `weight` (all any strides): the gradients of the input
                /// (contiguous `[N, C, H, W]`), the weight (contiguous
                /// `[O, C/groups, kh, kw]`) and the bias (contiguous `[O]`), each
                /// computed only where `needs` (in that order) says.
                fn fused_conv2d_grad(&self, grad: View, input: View, weight: View,
                    geometry: &WindowGeometry, groups: usize, needs: [bool; 3])
                    -> Result<Option<[Option<Storage>; 3]>>
                    = Ok(None), taken Option::is_some;
                /// [`Backend::fused_conv2d`] as autocast runs it: `input` and
                /// `weight` are `F16` views (any strides), the optional `bias`
                /// `F32`, and the output a contiguous `F16`
                /// `[N, O, out_h, out_w]`: each element the sum of the exact
                /// products of the halves accumulated in `f32`, plus the bias in
                /// `f32`, rounded to `F16` once. Bit for bit
                /// [`Backend::fused_conv2d`] of the halves cast to `F32`, its
                /// output cast to `F16`, where the backend sums in the same
                /// order; declining, the caller does just that (copies of the
                /// image and its columns in `F32`, which this need not make).
                fn fused_conv2d_f16(&self, input: View, weight: View, bias: Option<View>,
                    geometry: &WindowGeometry, groups: usize) -> Result<Option<Storage>>
                    = Ok(None), taken Option::is_some;
                /// The gradient of [`Backend::fused_conv2d_f16`] from the output's
                /// gradient `grad` (`F16` or `F32`, `[N, O, out_h, out_w]`) and
                /// the `F16` `input` and `weight` (all any strides): the
                /// gradients as [`Backend::fused_conv2d_grad`] returns them
                /// (contiguous `F32`, where `needs` says), bit for bit its
                /// gradients of `F32` copies of the three, where the backend sums
                /// in the same order; declining, the caller computes those.
                fn fused_conv2d_f16_grad(&self, grad: View, input: View, weight: View,
                    geometry: &WindowGeometry, groups: usize, needs: [bool; 3])
                    -> Result<Option<[Option<Storage>; 3]>>
                    = Ok(None), taken Option::is_some;
            }
        }
    };
}

backend_methods!();
