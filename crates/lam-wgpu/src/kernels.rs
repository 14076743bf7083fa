//! The only file that names a shader: each WGSL file is embedded here with
//! `include_str!`, each entry point is a [`Kernel`] with the bindings it uses,
//! and the tables below map lam's op enums to the shaders' pipeline constants.
//!
//! Shaders share code through the snippets of `shaders/lib/` (the
//! [`LIBRARY`]), pasted in by `// #include` lines (see `wgsl.rs`); each
//! shader is expanded once per process, on first use.
//!
//! A kernel variant is (kernel, pipeline constants); the pipeline cache builds
//! one pipeline per variant. Variants use WGSL `override` constants, never text
//! substitution, so every expanded file stays plain WGSL that naga validates
//! as is (`tests/shaders_validate.rs`, which also checks that every file in
//! `shaders/` is named here and every snippet is included somewhere).

use std::sync::OnceLock;

use lam_core::backend::{BinaryOp, ReduceOp, UnaryOp};

use crate::wgsl::{expand, Expanded};

/// Declares [`Shader`] from one list of (variant, file in `shaders/`): the
/// enum, [`Shader::ALL`], the file names and the embedded texts.
macro_rules! shaders {
    ($($variant:ident => $file:literal,)*) => {
        /// A WGSL source file in `shaders/`, one or two per op family.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum Shader {
            $($variant,)*
        }

        impl Shader {
            /// Every shader.
            pub(crate) const ALL: &'static [Shader] = &[$(Shader::$variant,)*];

            /// The file name, for labels and error messages.
            pub(crate) fn file(self) -> &'static str {
                match self {
                    $(Shader::$variant => $file,)*
                }
            }

            /// The file as written, embedded at compile time.
            fn text(self) -> &'static str {
                match self {
                    $(Shader::$variant => include_str!(concat!("../../../shaders/", $file)),)*
                }
            }
        }
    };
}

shaders! {
    Copy => "copy.wgsl",
    CopyHalf => "copy_half.wgsl",
    Elementwise => "elementwise.wgsl",
    Reduce => "reduce.wgsl",
    Matmul => "matmul.wgsl",
    MatmulLarge => "matmul_large.wgsl",
    MatmulSubgroup => "matmul_subgroup.wgsl",
    MatmulSmall => "matmul_small.wgsl",
    MatmulCoop => "matmul_coop.wgsl",
    MatmulCoop8 => "matmul_coop8.wgsl",
    MatmulSplit => "matmul_split.wgsl",
    Index => "index.wgsl",
    IndexScatter => "index_scatter.wgsl",
    Window => "window.wgsl",
    MaxPool => "max_pool.wgsl",
    Quant => "quant.wgsl",
    Random => "random.wgsl",
    Softmax => "softmax.wgsl",
    Attention => "attention.wgsl",
    AttentionGrad => "attention_grad.wgsl",
    AttentionTiled => "attention_tiled.wgsl",
    AttentionTiledGrad => "attention_tiled_grad.wgsl",
    AttentionWeights => "attention_weights.wgsl",
    CrossEntropy => "cross_entropy.wgsl",
    Lstm => "lstm.wgsl",
    LayerNorm => "layer_norm.wgsl",
    BatchNorm => "batch_norm.wgsl",
    BatchNormRunning => "batch_norm_running.wgsl",
    Adam => "adam.wgsl",
    Sgd => "sgd.wgsl",
    Unscale => "unscale.wgsl",
}

/// A snippet of `shaders/lib/`: the path `// #include` names it by, and its text.
macro_rules! snippet {
    ($path:literal) => {
        ($path, include_str!(concat!("../../../shaders/", $path)))
    };
}

/// The snippets shaders may include.
pub(crate) const LIBRARY: &[(&str, &str)] = &[
    snippet!("lib/grid.wgsl"),
    snippet!("lib/dims.wgsl"),
    snippet!("lib/nan.wgsl"),
    snippet!("lib/half.wgsl"),
    snippet!("lib/elementwise_views.wgsl"),
    snippet!("lib/matmul_io.wgsl"),
    snippet!("lib/matmul_tile64.wgsl"),
    snippet!("lib/matmul_mac4.wgsl"),
    snippet!("lib/matmul_coop_body.wgsl"),
    snippet!("lib/index_params.wgsl"),
    snippet!("lib/window_params.wgsl"),
    snippet!("lib/rows.wgsl"),
    snippet!("lib/attention_params.wgsl"),
    snippet!("lib/attention_tiles.wgsl"),
    snippet!("lib/range_fault.wgsl"),
];

impl Shader {
    /// The device features the shader needs beyond WebGPU's baseline; it is
    /// compiled only on devices opened with them.
    pub(crate) fn features(self) -> wgpu::Features {
        match self {
            Shader::MatmulSubgroup => wgpu::Features::SUBGROUP,
            Shader::MatmulCoop | Shader::MatmulCoop8 => {
                wgpu::Features::SUBGROUP
                    | wgpu::Features::SHADER_F16
                    | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
            }
            _ => wgpu::Features::empty(),
        }
    }

    /// The WGSL text as pipelines compile it, includes expanded (once per
    /// process), or why the expansion failed.
    pub(crate) fn source(self) -> Result<&'static Expanded, &'static str> {
        static EXPANDED: OnceLock<Vec<Result<Expanded, String>>> = OnceLock::new();
        let all = EXPANDED.get_or_init(|| {
            Shader::ALL
                .iter()
                .map(|s| expand(s.file(), s.text(), LIBRARY))
                .collect()
        });
        let at = Shader::ALL.iter().position(|&s| s == self);
        match at.and_then(|i| all.get(i)) {
            Some(Ok(expanded)) => Ok(expanded),
            Some(Err(why)) => Err(why),
            None => Err("a shader missing from Shader::ALL"),
        }
    }
}

/// One shader as the pipelines compile it, for `tests/shaders_validate.rs`.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ShaderSource {
    /// The file in `shaders/`.
    pub file: &'static str,
    /// The expanded WGSL, or why the expansion failed.
    pub text: Result<String, String>,
    /// The snippets of `shaders/lib/` it includes, directly or not.
    pub includes: Vec<&'static str>,
    /// The device features it needs (empty: WebGPU's baseline).
    pub features: wgpu::Features,
}

/// Every shader, expanded exactly as the pipelines get it, and every
/// snippet path of the library. For the naga validation test; not for
/// other uses.
#[doc(hidden)]
pub fn shader_sources() -> (Vec<ShaderSource>, Vec<&'static str>) {
    let shaders = Shader::ALL
        .iter()
        .map(|&s| {
            let expanded = s.source();
            ShaderSource {
                file: s.file(),
                text: expanded
                    .map(|e| e.text.clone())
                    .map_err(|why| why.to_string()),
                includes: expanded.map(|e| e.includes.clone()).unwrap_or_default(),
                features: s.features(),
            }
        })
        .collect();
    (shaders, LIBRARY.iter().map(|&(path, _)| path).collect())
}

/// How an entry point uses a storage binding. Binding 0 is always the
/// kernel's uniform parameter block and is not listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    Read,
    ReadWrite,
}

/// One compute entry point and its storage bindings `(binding, access)`,
/// in the order `Gpu::dispatch` receives the buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    pub bindings: &'static [(u32, Access)],
}

use Access::{Read, ReadWrite};

const fn kernel(shader: Shader, entry: &'static str, bindings: &'static [(u32, Access)]) -> Kernel {
    Kernel {
        shader,
        entry,
        bindings,
    }
}

pub(crate) const UNARY: Kernel = kernel(Shader::Elementwise, "unary", &[(1, Read), (4, ReadWrite)]);
pub(crate) const BINARY: Kernel = kernel(
    Shader::Elementwise,
    "binary",
    &[(1, Read), (2, Read), (4, ReadWrite)],
);
pub(crate) const SELECT: Kernel = kernel(
    Shader::Elementwise,
    "select_where",
    &[(1, Read), (2, Read), (3, Read), (4, ReadWrite)],
);
pub(crate) const CAST: Kernel = kernel(Shader::Copy, "cast_dtype", &[(1, Read), (4, ReadWrite)]);
pub(crate) const COPY: Kernel = kernel(Shader::Copy, "copy_view", &[(1, Read), (4, ReadWrite)]);
/// F16 copies and casts (copy_half.wgsl): the copy writes halves through
/// binding 5, the casts write whole words.
pub(crate) const COPY_HALF: Kernel =
    kernel(Shader::CopyHalf, "copy_half", &[(1, Read), (5, ReadWrite)]);
pub(crate) const CAST_TO_HALF: Kernel = kernel(
    Shader::CopyHalf,
    "cast_to_half",
    &[(1, Read), (4, ReadWrite)],
);
pub(crate) const CAST_FROM_HALF: Kernel = kernel(
    Shader::CopyHalf,
    "cast_from_half",
    &[(1, Read), (4, ReadWrite)],
);
pub(crate) const FILL: Kernel = kernel(Shader::Copy, "fill_value", &[(4, ReadWrite)]);
/// src, src_idx, out_val, out_idx.
pub(crate) const REDUCE: Kernel = kernel(
    Shader::Reduce,
    "reduce",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite)],
);
/// The same bindings, a thread per output column (reduce.wgsl).
pub(crate) const REDUCE_COLUMNS: Kernel = kernel(
    Shader::Reduce,
    "reduce_columns",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite)],
);
/// a, b, c, bias (read only with the bias epilogue).
pub(crate) const MATMUL: Kernel = kernel(
    Shader::Matmul,
    "matmul",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, Read)],
);
/// a, b, c, bias: the 128 x 128-tile kernel for large aligned products.
pub(crate) const MATMUL_LARGE: Kernel = kernel(
    Shader::MatmulLarge,
    "matmul_large",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, Read)],
);
/// Split-K's sum of partials (bound as a), output c, bias.
pub(crate) const MATMUL_SPLIT_SUM: Kernel = kernel(
    Shader::MatmulSplit,
    "matmul_split_sum",
    &[(1, Read), (3, ReadWrite), (4, Read)],
);
/// a, b, c, bias: 32 x 32 tiles, for products of few 64 x 64 tiles.
pub(crate) const MATMUL_SMALL: Kernel = kernel(
    Shader::MatmulSmall,
    "matmul_small",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, Read)],
);
/// a, b, c, bias: matmul.wgsl's tiles with A shared through subgroup shuffles.
pub(crate) const MATMUL_SUBGROUP: Kernel = kernel(
    Shader::MatmulSubgroup,
    "matmul_subgroup",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, Read)],
);
/// a, b, c, bias: f16 x f16 + f32 cooperative matrices of 16 x 16 x 16.
pub(crate) const MATMUL_COOP: Kernel = kernel(
    Shader::MatmulCoop,
    "matmul_coop",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, Read)],
);
/// a, b, c, bias: the same on 8 x 8 x 8 fragments.
pub(crate) const MATMUL_COOP8: Kernel = kernel(
    Shader::MatmulCoop8,
    "matmul_coop",
    &[(1, Read), (2, Read), (3, ReadWrite), (4, Read)],
);
/// The binding of the device's fault words (lib/range_fault.wgsl), last in
/// the bindings of every kernel that checks user indices.
const FAULTS: (u32, Access) = (7, ReadWrite);

/// src, index, out, faults.
pub(crate) const INDEX_SELECT: Kernel = kernel(
    Shader::Index,
    "index_select",
    &[(1, Read), (2, Read), (3, ReadWrite), FAULTS],
);
pub(crate) const GATHER: Kernel = kernel(
    Shader::Index,
    "gather",
    &[(1, Read), (2, Read), (3, ReadWrite), FAULTS],
);
pub(crate) const SCATTER_ADD: Kernel = kernel(
    Shader::Index,
    "scatter_add",
    &[(1, Read), (2, Read), (3, ReadWrite), FAULTS],
);
/// index_scatter.wgsl: index, counts (atomic), offsets, list, src, out;
/// csr_count checks the index (faults).
pub(crate) const CSR_COUNT: Kernel = kernel(
    Shader::IndexScatter,
    "csr_count",
    &[(1, Read), (2, ReadWrite), FAULTS],
);
pub(crate) const CSR_SCAN: Kernel = kernel(
    Shader::IndexScatter,
    "csr_scan",
    &[(2, ReadWrite), (3, ReadWrite)],
);
pub(crate) const CSR_FILL: Kernel = kernel(
    Shader::IndexScatter,
    "csr_fill",
    &[(1, Read), (2, ReadWrite), (3, ReadWrite), (4, ReadWrite)],
);
pub(crate) const CSR_SORT: Kernel = kernel(
    Shader::IndexScatter,
    "csr_sort",
    &[(3, ReadWrite), (4, ReadWrite)],
);
pub(crate) const SCATTER_ROWS: Kernel = kernel(
    Shader::IndexScatter,
    "scatter_rows",
    &[(3, ReadWrite), (4, ReadWrite), (5, Read), (6, ReadWrite)],
);
pub(crate) const FILL_RANDOM: Kernel = kernel(Shader::Random, "fill_random", &[(1, ReadWrite)]);
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
/// sgd.wgsl: grad, param, momentum buffer (updated in place).
/// Loss scaling's unscale (unscale.wgsl): binding 5 is the flag OR-ed into.
pub(crate) const UNSCALE: Kernel = kernel(
    Shader::Unscale,
    "unscale",
    &[(1, Read), (4, ReadWrite), (5, ReadWrite)],
);
pub(crate) const SGD: Kernel = kernel(
    Shader::Sgd,
    "sgd",
    &[(1, Read), (2, ReadWrite), (3, ReadWrite)],
);

/// window.wgsl: image (as words), cols (as words).
pub(crate) const UNFOLD: Kernel = kernel(Shader::Window, "unfold", &[(1, Read), (3, ReadWrite)]);
/// window.wgsl: [`UNFOLD`] of an F16 image into F16 columns, a word per thread.
pub(crate) const UNFOLD_HALF: Kernel =
    kernel(Shader::Window, "unfold_half", &[(1, Read), (3, ReadWrite)]);
/// window.wgsl: cols, image.
pub(crate) const FOLD: Kernel = kernel(Shader::Window, "fold", &[(2, Read), (4, ReadWrite)]);
/// max_pool.wgsl: image, maxima, taps.
pub(crate) const MAX_POOL: Kernel = kernel(
    Shader::MaxPool,
    "max_pool",
    &[(2, Read), (4, ReadWrite), (6, ReadWrite)],
);
/// max_pool.wgsl: grad, image gradient, taps.
pub(crate) const MAX_POOL_GRAD: Kernel = kernel(
    Shader::MaxPool,
    "max_pool_grad",
    &[(2, Read), (4, ReadWrite), (5, Read)],
);

/// quant.wgsl: input, input scale, packed weight, weight scales, bias, output.
pub(crate) const MATMUL_I8: Kernel = kernel(
    Shader::Quant,
    "matmul_i8",
    &[
        (1, Read),
        (2, Read),
        (3, Read),
        (4, Read),
        (5, Read),
        (6, ReadWrite),
    ],
);

/// quant.wgsl: [`MATMUL_I8`]'s first pass where six buffers are too many:
/// input, input scale, packed weight, output.
pub(crate) const MATMUL_I8_ROWS: Kernel = kernel(
    Shader::Quant,
    "matmul_i8_rows",
    &[(1, Read), (2, Read), (3, Read), (6, ReadWrite)],
);

/// quant.wgsl: its second pass: weight scales, bias, output (in place).
pub(crate) const MATMUL_I8_COLUMNS: Kernel = kernel(
    Shader::Quant,
    "matmul_i8_columns",
    &[(4, Read), (5, Read), (6, ReadWrite)],
);

/// quant.wgsl: input, its row scales (written).
pub(crate) const ROW_SCALE_I8: Kernel =
    kernel(Shader::Quant, "row_scale", &[(1, Read), (7, ReadWrite)]);

/// `OP` code of `unary` in elementwise.wgsl and the op's (alpha, beta).
pub(crate) fn unary_code(op: UnaryOp) -> (u32, f32, f32) {
    use UnaryOp::*;
    match op {
        Neg => (0, 0.0, 0.0),
        Abs => (1, 0.0, 0.0),
        Exp => (2, 0.0, 0.0),
        Log => (3, 0.0, 0.0),
        Sqrt => (4, 0.0, 0.0),
        Square => (5, 0.0, 0.0),
        Recip => (6, 0.0, 0.0),
        Sin => (7, 0.0, 0.0),
        Cos => (8, 0.0, 0.0),
        Tanh => (9, 0.0, 0.0),
        Sigmoid => (10, 0.0, 0.0),
        Relu => (11, 0.0, 0.0),
        LeakyRelu(a) => (12, a, 0.0),
        Elu(a) => (13, a, 0.0),
        Gelu => (14, 0.0, 0.0),
        Silu => (15, 0.0, 0.0),
        Softplus => (16, 0.0, 0.0),
        Clamp(lo, hi) => (17, lo, hi),
        Sign => (18, 0.0, 0.0),
        Step => (19, 0.0, 0.0),
        AddScalar(c) => (20, c, 0.0),
        MulScalar(c) => (21, c, 0.0),
        DivScalar(c) => (27, c, 0.0),
        PowScalar(c) => (22, c, 0.0),
        GtScalar(c) => (23, c, 0.0),
        LtScalar(c) => (24, c, 0.0),
        GeluGrad => (25, 0.0, 0.0),
        InRange(lo, hi) => (26, lo, hi),
    }
}

/// `OP` code of `binary` in elementwise.wgsl.
pub(crate) fn binary_code(op: BinaryOp) -> u32 {
    use BinaryOp::*;
    match op {
        Add => 0,
        Sub => 1,
        Mul => 2,
        Div => 3,
        Pow => 4,
        Maximum => 5,
        Minimum => 6,
        Eq => 7,
        Ne => 8,
        Lt => 9,
        Le => 10,
        Gt => 11,
        Ge => 12,
        ReluGrad => 13,
        GeluGrad => 14,
    }
}

/// `OP` code of reduce.wgsl.
pub(crate) fn reduce_code(op: ReduceOp) -> u32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Max => 1,
        ReduceOp::Min => 2,
        ReduceOp::ArgMax => 3,
        ReduceOp::ArgMin => 4,
    }
}

/// The op behind a `FAULT_*` code of lib/range_fault.wgsl, as an
/// [`lam_core::Error::OutOfRange`] names it.
pub(crate) fn fault_op(code: u32) -> &'static str {
    match code {
        1 => "index_select (detected on the device)",
        2 => "gather (detected on the device)",
        3 => "scatter_add (detected on the device)",
        4 => "cross_entropy (detected on the device)",
        _ => "an index op (detected on the device)",
    }
}
