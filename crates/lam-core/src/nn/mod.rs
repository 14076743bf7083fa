//! Neural-network building blocks, written once over the op set so they run
//! on every backend and differentiate through the tape: the [`Module`]
//! trait, PyTorch's layers with PyTorch's parameter names, shapes and
//! default initialisation, and their `torch.nn.functional` forms.
//!
//! Code map:
//! - `module`: [`Module`] (`forward`, and the fusion hooks `forward_then` /
//!   `as_activation`) on top of [`Visit`] (what it owns), [`Entry`],
//!   [`Mode`], [`join`]. `#[derive(Module)]` (from `lam-derive`, re-exported
//!   here under the trait's name) writes [`Visit`] from a struct's fields
//!   through `fields`: [`Submodule`] and [`TensorField`].
//! - `describe`: `Display` as PyTorch's `print(model)` ([`fmt_module`]);
//!   `summary`: [`Summary`], torchinfo's table ([`Module::summary`]).
//! - [`init`]: `torch.nn.init` (Xavier, Kaiming, gains, PyTorch's defaults).
//! - `linear`: [`Linear`], run as the optional `fused_linear` primitive
//!   (bias and activation applied in the product's write) or as separate
//!   ops where a backend declines it. `conv`: [`Conv2d`]; `conv1d`: [`Conv1d`];
//!   `conv_op`: the convolution tape op, the optional `fused_conv2d`
//!   primitive with `fused_conv2d_grad` as its gradient;
//!   `padding`: [`PaddingMode`], [`Padding`] and `functional::pad`.
//!   `window`: window geometry (shared with pooling), unfold (im2col) and
//!   fold (col2im), on which convolution is built.
//! - `pool`: [`MaxPool2d`], [`AvgPool2d`], [`AdaptiveAvgPool2d`];
//!   `unpool`: [`MaxUnpool2d`]; `max_pool`:
//!   the max-pooling tape op, the `max_pool` primitive (each window's
//!   maximum and winning tap in one pass) with `max_pool_grad` as its
//!   gradient.
//! - `norm`: [`BatchNorm1d`], [`BatchNorm2d`], [`BatchNorm3d`], [`LayerNorm`];
//!   `batch_norm`: the training-mode batch-norm tape op, the optional
//!   `fused_batch_norm` primitive with `fused_batch_norm_grad` as its
//!   gradient;
//!   `layer_norm`: the layer-norm tape op, the optional `fused_layer_norm`
//!   primitive with `fused_layer_norm_grad` as its gradient.
//! - `rnn`: [`RNN`], [`LSTM`], [`GRU`] on one engine; `rnn/cell`: one step
//!   of each cell, shared with the `*_cell` functions; `rnn/cells`: the
//!   single-step modules [`RNNCell`], [`LSTMCell`], [`GRUCell`];
//!   `rnn/fused`: the LSTM and GRU gates as one op (`fused_lstm_cell`,
//!   `fused_gru_cell`); `rnn/sequence`: a layer's sequence as one tape op.
//! - `attention`: [`MultiheadAttention`], its masks ([`AttnMask`],
//!   [`causal_mask`]); `transformer`: [`TransformerEncoderLayer`].
//! - `dropout`, `embedding`, `flatten`, `sequential`: one layer each.
//! - `activation`: activation layers ([`ReLU`], [`GELU`], [`PReLU`], ...).
//! - [`functional`]: every layer's computation as a plain function.
//!
//! Layers hold their parameters in public fields (`linear.weight`,
//! `bn.running_mean`) as leaf tensors that require grad; replace values with
//! [`crate::Tensor::set_data`] or the in-place [`init`] functions.

mod activation;
mod attention;
mod batch_norm;
mod conv;
mod conv1d;
mod conv_op;
mod describe;
mod dropout;
mod embedding;
mod fields;
mod flatten;
pub mod init;
mod layer_norm;
mod linear;
mod max_pool;
mod module;
mod norm;
mod padding;
mod pool;
pub mod prune;
pub mod quant;
mod rnn;
mod sequential;
mod summary;
mod transformer;
mod unpool;
mod window;

pub use crate::backend::LinearActivation;
pub use activation::{
    GeluApproximate, LeakyReLU, LogSoftmax, PReLU, ReLU, ReLU6, SiLU, Sigmoid, Softmax, Softplus,
    Tanh, ELU, GELU,
};
pub use attention::{causal_mask, AttnMask, MultiheadAttention, MultiheadAttentionConfig, MASKED};
pub use conv::{Conv2d, Conv2dConfig};
pub use conv1d::{Conv1d, Conv1dConfig};
pub use describe::{fmt_module, py_bool, py_float, py_tuple};
pub use dropout::Dropout;
pub use embedding::{Embedding, EmbeddingConfig};
pub use fields::{Submodule, TensorField, TensorRole};
pub use flatten::Flatten;
/// `#[derive(Module)]`: writes [`Visit`] (and `Display`) from a struct's
/// fields; see the `lam_derive` crate for what each field becomes.
pub use lam_derive::Module;
pub use linear::{Linear, LinearConfig};
pub use module::{join, Entry, Mode, Module, Visit};
pub use norm::{
    BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d, BatchNormConfig, LayerNorm, LayerNormConfig,
};
pub use padding::{Padding, PaddingMode};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
pub use rnn::{GRUCell, LSTMCell, RNNCell, RnnConfig, RnnNonlinearity, GRU, LSTM, RNN};
pub use sequential::Sequential;
pub use summary::{Summary, SummaryRow};
pub use transformer::{
    TransformerActivation, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
pub use unpool::MaxUnpool2d;
pub use window::{Size2, Window};

/// The layers' computations as functions of tensors, as
/// `torch.nn.functional` (weights passed explicitly; nothing is cached).
pub mod functional {
    pub use super::activation::{
        elu, gelu, gelu_tanh, leaky_relu, log_softmax, prelu, relu, relu6, sigmoid, silu, softmax,
        softplus, tanh,
    };
    pub use super::attention::scaled_dot_product_attention;
    pub use super::conv::conv2d;
    pub use super::conv1d::conv1d;
    pub use super::dropout::{dropout, dropout_with};
    pub use super::embedding::{embedding, embedding_with};
    pub use super::linear::{linear, linear_act};
    pub use super::norm::{batch_norm, layer_norm};
    pub use super::padding::{pad, pad_constant};
    pub use super::pool::{
        adaptive_avg_pool2d, avg_pool2d, avg_pool2d_with, max_pool2d, max_pool2d_with_indices,
    };
    pub use super::rnn::{
        gru_cell, gru_gates, lstm_cell, lstm_gates, rnn_relu_cell, rnn_tanh_cell,
    };
    pub use super::window::{fold, unfold};
}
