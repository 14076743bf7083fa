//! The Backend primitives as kernel dispatches, one module per op family.
//!
//! Each op checks that its inputs live on this device, allocates a
//! contiguous output from the pool, packs a parameter block (`params.rs`)
//! and records one dispatch (a few for multi-pass reductions and list-based
//! scatter_add). None of them waits for the GPU; only readbacks do
//! (`queue.rs`).
//!
//! - [`copy`]: zeros, uploads, readback, copy, cast
//! - [`elementwise`]: unary, binary, select
//! - [`reduce`]: sum / max / min / argmax / argmin over axes
//! - [`matmul`]: batched, strided matrix product, `fused_linear`, and their
//!   F16 forms (`fused_matmul_f16`, the autocast `fused_linear_f16`)
//! - [`index`]: index_select, gather, scatter_add (deterministic, no float atomics)
//! - [`window`]: unfold (im2col) and fold (col2im, a gather)
//! - [`max_pool`]: max pooling and its gradient
//! - [`random`]: seeded uniform and normal fills
//! - [`softmax`]: softmax and log-softmax
//! - [`attention`]: scaled dot-product attention and its gradient
//! - [`cross_entropy`]: cross-entropy against class indices
//! - [`lstm`]: the LSTM and GRU gates of one step, and their gradients
//! - [`layer_norm`]: layer normalization and its gradient
//! - [`batch_norm`]: batch normalization in training mode and its gradient
//! - [`adam`]: the Adam/AdamW step
//! - [`unscale`]: loss scaling's unscale of a gradient, setting a shared overflow flag
//! - [`conv`]: convolution and its gradient, composed from `unfold`,
//!   `matmul`, `fold` and `reduce` (one group)
//!
//! Each module is named as its op family, and as its shaders in `shaders/`.

pub(crate) mod adam;
pub(crate) mod attention;
pub(crate) mod attention_weights;
pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod copy;
pub(crate) mod cross_entropy;
pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod layer_norm;
pub(crate) mod lstm;
pub(crate) mod matmul;
pub(crate) mod max_pool;
pub(crate) mod quant;
pub(crate) mod random;
pub(crate) mod reduce;
pub(crate) mod sgd;
pub(crate) mod softmax;
pub(crate) mod unscale;
pub(crate) mod window;

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Error, Layout, Result};

use crate::context::Gpu;
use crate::storage::GpuStorage;

/// The GPU buffer and layout of an input view, checked to be on `gpu` and
/// of dtype `want` (when given), and to lie within its buffer.
pub(crate) fn input<'a>(
    gpu: &Arc<Gpu>,
    op: &'static str,
    view: View<'a>,
    want: Option<DType>,
) -> Result<(&'a GpuStorage, &'a Layout)> {
    let (storage, layout) = view;
    let s = GpuStorage::of(storage, gpu, op)?;
    if let Some(want) = want {
        if storage.dtype() != want {
            return Err(Error::DTypeMismatch {
                op,
                expected: want,
                found: storage.dtype(),
            });
        }
    }
    // lam-core builds layouts; this guards the GPU against a bad one anyway,
    // since an out-of-bounds read there is silent rather than a panic.
    if layout.shape.len() != layout.strides.len() {
        return Err(Error::invalid(
            op,
            format!("layout {layout:?} has mismatched shape and strides"),
        ));
    }
    if layout.numel() > 0 {
        // Saturating, so even an absurd layout is an error and not an overflow.
        let last = layout
            .shape
            .iter()
            .zip(&layout.strides)
            .fold(layout.offset, |acc, (&d, &s)| {
                acc.saturating_add((d - 1).saturating_mul(s))
            });
        if last >= storage.len() {
            return Err(Error::OutOfRange {
                op,
                index: i64::try_from(last).unwrap_or(i64::MAX),
                size: storage.len(),
            });
        }
    }
    Ok((s, layout))
}

/// A fresh contiguous output of `len` elements.
pub(crate) fn output(
    gpu: &Arc<Gpu>,
    op: &'static str,
    len: usize,
    dtype: DType,
) -> Result<GpuStorage> {
    GpuStorage::alloc(gpu, op, len, dtype)
}

/// Workgroups of 256 threads covering `n` elements, as a folded grid.
pub(crate) fn grid_for(op: &'static str, n: usize) -> Result<[u32; 3]> {
    crate::params::fold_grid(op, (n as u64).div_ceil(256))
}
