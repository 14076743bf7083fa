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
//!   checks it on every backend, and on a device that declines every fused
//!   op, [`crate::testing::Unfused`]).
//! - **One list of methods.** The trait is generated from a single list
//!   (`methods.rs`), which also generates [`Wrapped`], the backend every
//!   wrapper (the profiler, the test devices) is, so none can miss a method.
//!
//! Files: `methods.rs` (the trait, as that list), `wrapped.rs` (the wrapper
//! and its [`Hooks`]), `ops.rs` (the op enums and parameter blocks the
//! methods take), this file (buffers and counters).

mod attention;
mod methods;
mod ops;
mod wrapped;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

pub use attention::{AttentionInputs, AttentionScores};
pub use methods::{Backend, OP_METHODS};
pub use ops::{
    AdamStep, BatchNormRunning, BinaryOp, Distribution, LinearActivation, ReduceOp, SgdStep,
    UnaryOp, WindowGeometry,
};
pub use wrapped::{Hooks, Wrapped};

use crate::{DType, Layout};

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

/// `(T, B, H)` of [`Backend::fused_lstm_sequence`] and its gradient, from
/// the `[T, B, 4H]` sequence of gates (or their projection) and the
/// `[4H, H]` recurrent weight: the one check of both backends, errors
/// naming `op`.
pub fn lstm_sequence_sizes(
    op: &'static str,
    seq: &Layout,
    w_hh: &Layout,
) -> crate::Result<(usize, usize, usize)> {
    let h = match w_hh.shape[..] {
        [g, h] if g == 4 * h => h,
        _ => {
            let why = "a [4H, H] recurrent weight";
            return Err(crate::Error::shape(op, why, &w_hh.shape));
        }
    };
    match seq.shape[..] {
        [t, b, g] if g == 4 * h => Ok((t, b, h)),
        _ => Err(crate::Error::shape(
            op,
            format!("a [T, B, {}] sequence of gates", 4 * h),
            &seq.shape,
        )),
    }
}

/// What kind of processor runs a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Cpu,
    Gpu,
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
    /// The most `bytes_live` has been since the device was made or since
    /// [`crate::Device::reset_peak_stats`]: the analogue of PyTorch's
    /// `torch.cuda.max_memory_allocated`, where `bytes_live + bytes_pooled`
    /// is that of its reserved memory. GPU backends track it; the CPU
    /// reports zero.
    pub bytes_live_peak: u64,
    /// Bytes the device keeps besides live tensors: freed buffers waiting
    /// for reuse and, on GPUs, staging and kernel-parameter buffers. A
    /// training loop's steady state keeps this flat.
    pub bytes_pooled: u64,
}
