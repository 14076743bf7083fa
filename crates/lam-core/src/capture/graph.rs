//! The graph IR a capture produces: values (the example input, parameters,
//! constants and op results, each with a shape and an optional batch axis)
//! and nodes (one lam op each, in execution order).

use crate::backend::{BinaryOp, LinearActivation, ReduceOp, UnaryOp};
use crate::nn::{Size2, Window};
use crate::{DType, Tensor};

/// Index of a [`Value`] in [`Graph::values`].
pub type ValueId = usize;

/// A captured forward pass.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Every value, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// The ops in the order they ran.
    pub nodes: Vec<Node>,
    /// The example input.
    pub input: ValueId,
    /// What the forward returned.
    pub output: ValueId,
}

/// One tensor of the graph.
#[derive(Debug, Clone)]
pub struct Value {
    /// The parameter's or buffer's `state_dict` name, `input`, `const_N` or `tN`.
    pub name: String,
    /// The shape seen during the capture.
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// The axis that is the example input's batch dim, when the value has
    /// one (a dynamic dim of the exported graph).
    pub batch_axis: Option<usize>,
    pub kind: ValueKind,
}

/// Where a [`Value`] comes from.
#[derive(Debug, Clone)]
pub enum ValueKind {
    /// The example input.
    Input,
    /// A parameter or buffer of the model (its data).
    Parameter(Tensor),
    /// A tensor made outside the captured ops (a mask, a fill): its data.
    Constant(Tensor),
    /// The output of a node.
    Computed,
}

impl ValueKind {
    /// The data of a parameter or constant.
    pub fn data(&self) -> Option<&Tensor> {
        match self {
            ValueKind::Parameter(t) | ValueKind::Constant(t) => Some(t),
            _ => None,
        }
    }
}

/// One op of the graph. `inputs` follow the op's own order (see [`Op`]);
/// `None` is an optional input left out (a missing bias).
#[derive(Debug, Clone)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
}

/// The ops a capture records: lam's tensor ops and layer functions, each
/// with its attributes. Output shapes are on the output values.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `x` → `op(x)`.
    Unary(UnaryOp),
    /// `a, b` → `op(a, b)`, broadcasting.
    Binary(BinaryOp),
    /// `cond, a, b` → `a` where `cond != 0`, else `b`.
    Where,
    /// `x` → reduction over `axes` (all when empty).
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keepdim: bool,
    },
    /// `x` → mean over `axes` (all when empty).
    Mean { axes: Vec<usize>, keepdim: bool },
    /// `a, b` → `a @ b` (NumPy's matmul).
    MatMul,
    /// `x, weight [out, in], bias?` → `act(x Wᵀ + b)`.
    Linear { act: LinearActivation },
    /// `x [N, C, H, W], weight, bias?` → 2-d convolution.
    Conv2d { window: Window, groups: usize },
    /// `x` → max pooling (padding taps never win).
    MaxPool2d { window: Window, ceil_mode: bool },
    /// `x` → average pooling.
    AvgPool2d {
        window: Window,
        count_include_pad: bool,
        ceil_mode: bool,
        /// Every window's divisor, instead of its size.
        divisor_override: Option<usize>,
    },
    /// `x` → PyTorch's adaptive average pooling to `output`.
    AdaptiveAvgPool2d { output: Size2 },
    /// `x, running_mean, running_var, weight?, bias?` → evaluation-mode batch norm.
    BatchNorm { eps: f32 },
    /// `x, weight?, bias?` → layer norm over the last `dims` dims.
    LayerNorm { dims: usize, eps: f32 },
    /// `x` → softmax (or log-softmax) along `axis`.
    Softmax { axis: usize, log: bool },
    /// `x` → the same elements in the output's shape.
    Reshape,
    /// `x` → dims reordered: output dim `i` is input dim `perm[i]`.
    Permute(Vec<usize>),
    /// `x` → broadcast to the output's shape.
    Expand,
    /// `x` → `len` elements of `axis` from `start`.
    Narrow {
        axis: usize,
        start: usize,
        len: usize,
    },
    /// `xs..` → joined along `axis`.
    Concat { axis: usize },
    /// `x` → converted to `to`.
    Cast { to: DType },
    /// `x` → itself (a copy): recorded as the input value, never a node.
    Identity,
    /// `x, index (1-d I32)` → `index_select` along `axis`.
    IndexSelect { axis: usize },
    /// `x, index` → `gather` along `axis`.
    Gather { axis: usize },
    /// `indices (I32), weight [num, dim]` → rows of `weight`.
    Embedding,
    /// A recurrent layer: see [`Recurrent`].
    Recurrent(Recurrent),
}

/// The cell of a [`Recurrent`] op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentCell {
    Tanh,
    Relu,
    /// PyTorch's gate order `i, f, g, o`.
    Lstm,
    /// PyTorch's gate order `r, z, n`.
    Gru,
}

/// An `RNN`, `LSTM` or `GRU` layer run from given or zero states.
///
/// Inputs: `x`, then one initial state per state kind (`h`, and `c` for the
/// LSTM; `None` for zeros), then per layer and direction (layer-major,
/// forward first) `weight_ih, weight_hh, bias_ih?, bias_hh?` in PyTorch's
/// gate order. Outputs: the sequence output, then the final state of each
/// kind (`[layers·dirs, B, H]`), as the layer returns them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recurrent {
    pub cell: RecurrentCell,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    pub batch_first: bool,
    /// False for an unbatched `[T, in]` input.
    pub batched: bool,
    pub bias: bool,
}

impl Recurrent {
    /// State kinds: 2 for the LSTM (`h`, `c`), else 1.
    pub fn states(&self) -> usize {
        if self.cell == RecurrentCell::Lstm {
            2
        } else {
            1
        }
    }

    /// 2 when bidirectional, else 1.
    pub fn dirs(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }
}

impl Graph {
    /// The value `id`.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id]
    }
}
