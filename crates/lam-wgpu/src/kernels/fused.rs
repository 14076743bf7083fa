//! The entry points of the optional fused ops: softmax, attention (fused
//! and the composite's weights), cross-entropy, the LSTM and GRU cells and
//! sequences, LayerNorm, BatchNorm and the optimizer and loss-scaling
//! updates. Each [`Kernel`] lists its storage bindings in the order its
//! dispatch passes the buffers.

use super::Access::{Read, ReadWrite};
use super::{kernel, Kernel, Shader, FAULTS};

pub(crate) const SOFTMAX: Kernel = kernel(Shader::Softmax, "softmax", &[(1, Read), (3, ReadWrite)]);
/// q, k, v, mask, out, stats.
pub(crate) const ATTENTION_FORWARD: Kernel = kernel(
    Shader::Attention,
    "attention_forward",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, ReadWrite),
        (6, ReadWrite),
    ],
);
/// out, stats, grad, rows.
pub(crate) const ATTENTION_ROWS: Kernel = kernel(
    Shader::Attention,
    "attention_rows",
    &[(5, ReadWrite), (6, ReadWrite), (7, Read), (8, ReadWrite)],
);
/// The softmax between the composite attention's products: scores, mask,
/// weights, stats.
pub(crate) const ATTENTION_WEIGHTS: Kernel = kernel(
    Shader::AttentionWeights,
    "attention_weights",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite)],
);
/// Its backward: scores, mask, weights, stats, dp, grad, out, ds.
pub(crate) const ATTENTION_WEIGHTS_GRAD: Kernel = kernel(
    Shader::AttentionWeights,
    "attention_weights_grad",
    &[
        (1, Read),
        (2, Read),
        (3, ReadWrite),
        (4, ReadWrite),
        (5, Read),
        (6, Read),
        (7, Read),
        (8, ReadWrite),
    ],
);
/// q, k, v, mask, grad, rows, dq.
pub(crate) const ATTENTION_GRAD_Q: Kernel = kernel(
    Shader::AttentionGrad,
    "attention_grad_q",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (7, Read),
        (8, Read),
        (9, ReadWrite),
    ],
);
/// q, k, v, mask, grad, rows, dk, dv.
pub(crate) const ATTENTION_GRAD_KV: Kernel = kernel(
    Shader::AttentionGrad,
    "attention_grad_kv",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (7, Read),
        (8, Read),
        (9, ReadWrite),
        (10, ReadWrite),
    ],
);
/// attention_tiled.wgsl: q, k, v, mask, out, stats (as [`ATTENTION_FORWARD`]).
pub(crate) const ATTENTION_TILED_FORWARD: Kernel = kernel(
    Shader::AttentionTiled,
    "attention_tiled_forward",
    ATTENTION_FORWARD.bindings,
);
/// q, k, v, mask, grad, rows, dq (as [`ATTENTION_GRAD_Q`]).
pub(crate) const ATTENTION_TILED_GRAD_Q: Kernel = kernel(
    Shader::AttentionTiledGrad,
    "attention_tiled_grad_q",
    ATTENTION_GRAD_Q.bindings,
);
/// q, k, v, mask, grad, rows, dk, dv (as [`ATTENTION_GRAD_KV`]).
pub(crate) const ATTENTION_TILED_GRAD_KV: Kernel = kernel(
    Shader::AttentionTiledGrad,
    "attention_tiled_grad_kv",
    ATTENTION_GRAD_KV.bindings,
);
/// logits, targets, grad, loss, faults.
pub(crate) const CROSS_ENTROPY: Kernel = kernel(
    Shader::CrossEntropy,
    "cross_entropy",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite), FAULTS],
);
/// lstm.wgsl: the two projections and c; hc, gates.
pub(crate) const LSTM_CELL: Kernel = kernel(
    Shader::Lstm,
    "lstm_cell",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (6, ReadWrite),
        (7, ReadWrite),
    ],
);
/// lstm.wgsl: grad_h, grad_c, gates, c, c'; the gates' and c's gradients.
pub(crate) const LSTM_CELL_GRAD: Kernel = kernel(
    Shader::Lstm,
    "lstm_cell_grad",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, Read),
        (6, ReadWrite),
        (7, ReadWrite),
    ],
);
/// lstm.wgsl: the step's input projection and h Wₕₕᵀ; the sequence's hs,
/// gates and cs (c read and c' written).
pub(crate) const LSTM_SEQUENCE_STEP: Kernel = kernel(
    Shader::Lstm,
    "lstm_sequence_step",
    &[
        (1, Read),
        (2, Read),
        (6, ReadWrite),
        (7, ReadWrite),
        (8, ReadWrite),
    ],
);
/// lstm.wgsl: the step's output gradient, that from the step after, the
/// gates, c, c'; the sequence's projection gradient, and c's gradient
/// (updated in place).
pub(crate) const LSTM_SEQUENCE_STEP_GRAD: Kernel = kernel(
    Shader::Lstm,
    "lstm_sequence_step_grad",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, Read),
        (6, ReadWrite),
        (7, ReadWrite),
    ],
);
/// lstm.wgsl: the two projections and h; h', gates.
pub(crate) const GRU_CELL: Kernel = kernel(
    Shader::Lstm,
    "gru_cell",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (6, ReadWrite),
        (7, ReadWrite),
    ],
);
/// lstm.wgsl: grad_h, gates, hidden projection, h; the gradients of the two
/// projections and of h.
pub(crate) const GRU_CELL_GRAD: Kernel = kernel(
    Shader::Lstm,
    "gru_cell_grad",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (6, ReadWrite),
        (7, ReadWrite),
        (8, ReadWrite),
    ],
);
/// layer_norm.wgsl: x, weight, bias; y, mean, rstd.
pub(crate) const LAYER_NORM: Kernel = kernel(
    Shader::LayerNorm,
    "layer_norm",
    &[
        (1, Read),
        (3, Read),
        (4, Read),
        (7, ReadWrite),
        (8, ReadWrite),
        (9, ReadWrite),
    ],
);
/// layer_norm.wgsl: x, grad, weight, mean, rstd; the input's gradient.
pub(crate) const LAYER_NORM_GRAD_INPUT: Kernel = kernel(
    Shader::LayerNorm,
    "layer_norm_grad_input",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (5, Read),
        (6, Read),
        (7, ReadWrite),
    ],
);
/// layer_norm.wgsl: x, grad, mean, rstd; the partial sums of the weight's
/// and the bias's gradients per chunk of rows.
pub(crate) const LAYER_NORM_GRAD_PARAMS: Kernel = kernel(
    Shader::LayerNorm,
    "layer_norm_grad_params",
    &[(1, Read), (2, Read), (5, Read), (6, Read), (7, ReadWrite)],
);
/// The partial sums; the weight's and the bias's gradients.
pub(crate) const LAYER_NORM_GRAD_PARAMS_SUM: Kernel = kernel(
    Shader::LayerNorm,
    "layer_norm_grad_params_sum",
    &[(7, ReadWrite), (8, ReadWrite), (9, ReadWrite)],
);
/// batch_norm.wgsl, the forward: x; per channel and chunk, Σ (x − x0).
pub(crate) const BATCH_NORM_SUMS: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_sums",
    &[(1, Read), (10, ReadWrite)],
);
/// x, the chunks' sums; the means (first row of the statistics), where a
/// channel has no chunks.
pub(crate) const BATCH_NORM_MEAN: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_mean",
    &[(1, Read), (8, ReadWrite), (10, ReadWrite)],
);
/// x, the chunks' sums; the means, and per channel and chunk Σ (x − mean)².
pub(crate) const BATCH_NORM_SQUARES: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_squares",
    &[(1, Read), (8, ReadWrite), (10, ReadWrite)],
);
/// The chunks' sums; the variances and invstds.
pub(crate) const BATCH_NORM_VARIANCE: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_variance",
    &[(8, ReadWrite), (10, ReadWrite)],
);
/// x, weight, bias, the statistics; y.
pub(crate) const BATCH_NORM_APPLY: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_apply",
    &[
        (1, Read),
        (3, Read),
        (4, Read),
        (7, ReadWrite),
        (8, ReadWrite),
    ],
);
/// batch_norm.wgsl, the gradient: x, grad, mean; per channel and chunk,
/// Σ grad and Σ grad·(x − mean).
pub(crate) const BATCH_NORM_GRAD_SUMS: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_grad_sums",
    &[(1, Read), (2, Read), (5, Read), (10, ReadWrite)],
);
/// The chunks' sums, invstd; the weight's and the bias's gradients.
pub(crate) const BATCH_NORM_GRAD_STATS: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_grad_stats",
    &[(6, Read), (8, ReadWrite), (9, ReadWrite), (10, ReadWrite)],
);
/// x, grad, weight, mean, invstd, the two gradients' sums; the input's
/// gradient.
pub(crate) const BATCH_NORM_GRAD_INPUT: Kernel = kernel(
    Shader::BatchNorm,
    "batch_norm_grad_input",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (5, Read),
        (6, Read),
        (7, ReadWrite),
        (8, ReadWrite),
        (9, ReadWrite),
    ],
);
/// batch_norm_running.wgsl: the running mean and variance, the batch's
/// mean and variance, the count; the next mean, variance and count.
pub(crate) const BATCH_NORM_RUNNING: Kernel = kernel(
    Shader::BatchNormRunning,
    "batch_norm_running",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, Read),
        (6, ReadWrite),
        (7, ReadWrite),
        (8, ReadWrite),
    ],
);
/// grad, param, m, v.
pub(crate) const ADAM: Kernel = kernel(
    Shader::Adam,
    "adam",
    &[(1, Read), (2, ReadWrite), (3, ReadWrite), (4, ReadWrite)],
);
/// Loss scaling's unscale (unscale.wgsl): binding 5 is the flag OR-ed into.
pub(crate) const UNSCALE: Kernel = kernel(
    Shader::Unscale,
    "unscale",
    &[(1, Read), (4, ReadWrite), (5, ReadWrite)],
);
/// sgd.wgsl: grad, param, momentum buffer (updated in place).
pub(crate) const SGD: Kernel = kernel(
    Shader::Sgd,
    "sgd",
    &[(1, Read), (2, ReadWrite), (3, ReadWrite)],
);
