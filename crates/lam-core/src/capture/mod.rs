//! Graph capture: one forward pass of a model on an example input, recorded
//! as a small graph IR ([`Graph`]) — the ops lam ran, with their shapes and
//! attributes, the model's parameters and buffers as named values, and the
//! axis of each value that is the input's batch dim (so that a graph made
//! from one batch size runs at any other).
//!
//! lam's ops and layer functions call a hook (`record::traced`) around their
//! work; off, it is one thread-local load. The ops recorded are the tensor
//! ops (elementwise, reductions, matmul, softmax, views, `cat`, casts,
//! `index_select`, `gather`) and the layers with a meaning of their own
//! (`linear`, `conv1d`/`conv2d`, the poolings, `batch_norm` in evaluation,
//! `layer_norm`, `embedding`, the recurrent layers); layers made of those
//! (attention, transformer blocks) are recorded as the ops they run. An op
//! that depends on the input but is not recorded is an error naming it,
//! never a constant that would silently freeze the input's value.
//!
//! [`capture`] runs in evaluation mode (dropout is then the identity and
//! batch norm uses its running statistics) and restores each layer's mode.
//! `lam::onnx` writes a graph as an ONNX model.

mod batch;
mod graph;
mod record;

pub use graph::{Graph, Node, Op, Recurrent, RecurrentCell, Value, ValueId, ValueKind};
pub(crate) use record::{hooked, traced, traced_many};

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::nn::{Entry, Module};
use crate::{Result, Tensor};

/// Options of [`capture_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Dim 0 of the input is the batch, free in the graph (default true).
    pub dynamic_batch: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            dynamic_batch: true,
        }
    }
}

/// The graph of `model.forward(example)` with default options.
pub fn capture(model: &dyn Module, example: &Tensor) -> Result<Graph> {
    capture_with(model, example, CaptureOptions::default())
}

/// The graph of `model.forward(example)`, run in evaluation mode.
pub fn capture_with(
    model: &dyn Module,
    example: &Tensor,
    options: CaptureOptions,
) -> Result<Graph> {
    let params: HashMap<u64, (String, Tensor)> = model
        .state_dict()
        .into_iter()
        .map(|(name, t)| (t.id(), (name, t)))
        .collect();
    // The input requires grad so that anything computed from it through an
    // op no hook records carries a tape node naming that op.
    let input = if example.dtype() == crate::DType::F32 {
        example.detach().requires_grad_()?
    } else {
        example.detach()
    };
    let mut modes = Vec::new();
    model.visit("", &mut |_, e| {
        if let Entry::Mode(flag) = e {
            modes.push(flag.load(Ordering::Relaxed));
        }
    });
    model.eval();
    let result = (|| {
        let session = record::Session::start(&input, params, options.dynamic_batch)?;
        let out = model.forward(&input)?;
        session.finish(&out)
    })();
    let mut saved = modes.into_iter();
    model.visit("", &mut |_, e| {
        if let Entry::Mode(flag) = e {
            if let Some(was) = saved.next() {
                flag.store(was, Ordering::Relaxed);
            }
        }
    });
    result
}
