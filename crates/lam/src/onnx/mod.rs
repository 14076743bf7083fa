//! ONNX export: `lam::onnx::export(&model, &example_input, path)` writes a
//! model that ONNX Runtime, TensorRT, tract, ort or burn can run.
//!
//! The model's forward runs once on the example input under
//! [`lam_core::capture`], in evaluation mode (dropout removed, batch norm on
//! its running statistics); the captured graph is written as ONNX (opset
//! 17, IR version 8) with the batch dim (dim 0 of the input) free, named
//! `batch`. The input is named `input`, the output `output`, and parameters
//! keep their `state_dict` names.
//!
//! Exported: `linear` (`Gemm`, or `MatMul` beyond 2-d), `conv1d`/`conv2d`
//! (stride, padding, dilation, groups), max, average and adaptive average
//! pooling, `batch_norm` (evaluation), `layer_norm`, `embedding`, the
//! activations, `softmax`/`log_softmax`, reshapes, flatten, permutes,
//! narrow, expand, `cat`, casts, elementwise and comparison ops,
//! reductions, `matmul`, `index_select`, `gather`, `RNN`/`LSTM`/`GRU`
//! (ONNX's own ops, gates reordered), and what is built from them
//! (`MultiheadAttention`, `TransformerEncoderLayer`). Anything else that
//! depends on the input is an error naming the op, never a silently wrong
//! file. A tensor the forward makes without the input (a mask, a fill) is
//! written as a constant, so one whose size follows the batch fixes it.

mod lower;
mod proto;
mod recurrent;

use std::path::Path;

use lam_core::capture::{capture_with, CaptureOptions, Graph};
use lam_core::nn::Module;
use lam_core::{Error, Result, Tensor};

pub use lower::OPSET;

/// Writes `model` as an ONNX file at `path`, traced on `example_input`
/// (whose dim 0 is the batch, free in the file).
pub fn export(model: &dyn Module, example_input: &Tensor, path: impl AsRef<Path>) -> Result<()> {
    let bytes = to_bytes(model, example_input)?;
    let path = path.as_ref();
    lam_core::checkpoint::write_atomic(path, &bytes)
}

/// The ONNX model of `model` traced on `example_input`, as bytes.
pub fn to_bytes(model: &dyn Module, example_input: &Tensor) -> Result<Vec<u8>> {
    let graph = capture_with(model, example_input, CaptureOptions::default())?;
    graph_to_bytes(&graph)
}

/// A captured graph as ONNX bytes.
pub fn graph_to_bytes(graph: &Graph) -> Result<Vec<u8>> {
    if graph.nodes.is_empty() && graph.output == graph.input {
        return Err(Error::invalid(
            "onnx export",
            "the model returned its input unchanged: there is nothing to export",
        ));
    }
    lower::lower(graph)
}
