//! The entry points of the primitive ops (copies and casts, elementwise,
//! reductions, the matrix products, indexing, random numbers, the window
//! ops, max pooling and the int8 product), and the `OP` codes that map
//! lam's op enums to the elementwise and reduction shaders' pipeline
//! constants. Each [`Kernel`] lists its storage bindings in the order its
//! dispatch passes the buffers.

use lam_core::backend::{BinaryOp, ReduceOp, UnaryOp};

use super::Access::{Read, ReadWrite};
use super::{kernel, Kernel, Shader, FAULTS};

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
