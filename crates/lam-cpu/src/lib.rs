//! `lam-cpu`: lam's reference backend, and its production CPU path.
//!
//! [`CpuBackend`] implements every primitive of [`lam_core::Backend`] with
//! plain loops over `Vec<f32>` / `Vec<i32>` buffers, plus every optional
//! fused op (softmax, cross-entropy, Linear with bias and ReLU, the LSTM and
//! GRU gates, layer norm, batch norm, Adam).
//! Because every other backend is checked against it, each op is written to
//! be obviously right first: the formulas sit in one `match` per op family,
//! and hand-indexed arrays carry their shape in a comment. Speed comes from:
//! - contiguous fast paths, and strided views walked row by row (transposed
//!   matrices copied in cache-sized blocks);
//! - rayon over chunks of large outputs (one line, above a size threshold);
//! - the `gemm` crate for matmul, with strides passed through (transposes
//!   are free) and `fused_linear` starting its output as bias rows;
//! - a buffer pool, so a training loop's steady state neither allocates nor
//!   page-faults;
//! - the Adam update, and the folds of reductions and batch norm over
//!   contiguous runs (`runs`), compiled for AVX-512 and AVX2, chosen at run
//!   time.
//!
//! Every allocation an op makes is fallible: a buffer beyond memory is
//! [`lam_core::Error::OutOfMemory`], never an abort.
//!
//! [`device`] returns the process-wide CPU [`Device`].
//!
//! Code map — op families, one file each, named as the family's files in
//! lam-core, lam-wgpu and shaders/ (ARCHITECTURE.md has the table):
//! `copy` (read, copy, cast), `elementwise`, `reduce`, `matmul` (and
//! `fused_linear`), `index`, `window` (unfold, fold), `max_pool`, `random`,
//! `softmax`, `cross_entropy`, `lstm` (LSTM and GRU gates) and
//! `lstm_sequence` (an LSTM layer's time loop), `layer_norm`, `batch_norm`,
//! `adam`, `conv` (convolution and its gradient, im2col per image). Support:
//! - `backend`: the [`lam_core::Backend`] impl, which hands each method to
//!   its op family's module.
//! - `storage`: [`CpuStorage`] (a lock around an f32 or i32 vector), the
//!   read locks ops take, and bounds checks of views against buffers.
//! - `strided`: walking arbitrary views (gather, row starts).
//! - `parallel`: when and how an op splits its output across threads;
//!   `threads`: the pool whose thread 0 is the thread that first asked for
//!   [`device`].
//! - `pool`: recycled output vectors and fallible allocation;
//!   [`pool_stats`] counts reuses and fresh allocations.
//! - `math`: scalar formulas that need care (vectorisable exp, sigmoid
//!   and tanh; the `f64` erf and GELU the `f32` ones are tested against);
//!   `math_f32`: GELU and its derivative in `f32`, for wide loops.
//! - `packed`: products by a weight packed once for many calls.
//! - `runs`: sums, maxima and minima of contiguous runs, and batch norm's
//!   per-element loops, compiled for the widest vectors available.

mod adam;
mod attention;
mod attention_weights;
mod backend;
mod batch_norm;
mod conv;
mod copy;
mod cross_entropy;
mod elementwise;
mod index;
mod layer_norm;
mod lstm;
mod lstm_gates;
mod lstm_sequence;
mod lstm_sequence_grad;
mod lstm_units;
mod math;
mod math_f32;
mod matmul;
mod max_pool;
mod packed;
mod parallel;
mod pool;
mod quant;
mod random;
mod reduce;
mod runs;
mod sgd;
mod softmax;
mod storage;
mod strided;
mod threads;
mod transpose;
mod unscale;
mod window;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use lam_core::{Device, Storage};

pub use pool::{pool_stats, PoolStats};
pub use storage::CpuStorage;
use storage::{Counters, Data};

/// The CPU backend. Cheap to create; [`device`] shares one per process.
#[derive(Debug, Default)]
pub struct CpuBackend {
    counters: Arc<Counters>,
}

/// The process-wide CPU device: every call returns the same [`Device`].
///
/// The thread that asks first becomes thread 0 of lam-cpu's thread pool, so
/// the ops it runs split their work with the pool's threads without waking
/// them through rayon's injector (see `threads.rs`).
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            threads::adopt_current_thread();
            Device::new(Arc::new(CpuBackend::new()))
        })
        .clone()
}

impl CpuBackend {
    /// A new backend with its own counters. Prefer [`device`] unless a test
    /// needs a device distinct from the shared one.
    pub fn new() -> CpuBackend {
        CpuBackend::default()
    }

    /// Wraps data as a buffer (counted in `buffers_allocated` and `bytes_live`).
    fn store(&self, data: Data) -> Storage {
        Arc::new(CpuStorage::new(data, &self.counters))
    }

    /// Wraps the result of an op as a buffer and counts the op.
    fn op(&self, data: Data) -> Storage {
        self.count();
        self.store(data)
    }

    fn count(&self) {
        self.counters.dispatches.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod test_util;

#[cfg(test)]
mod tests {
    use lam_core::backend::UnaryOp;
    use lam_core::{Backend, DType};

    use super::*;

    #[test]
    fn device_is_a_singleton() {
        assert_eq!(device(), device());
        assert_eq!(device().name(), "cpu");
        assert!(!device().is_gpu());
    }

    #[test]
    fn stats_track_live_bytes_and_ops() {
        let b = CpuBackend::new();
        let s = b.zeros(10, DType::F32).unwrap();
        let t = b.from_i32(&[1, 2]).unwrap();
        let stats = b.stats();
        assert_eq!(stats.bytes_live, 48);
        assert_eq!(stats.buffers_allocated, 2);
        assert_eq!(stats.dispatches, 0);
        b.unary(UnaryOp::Neg, (&s, &lam_core::Layout::contiguous(&[10])))
            .unwrap();
        assert_eq!(b.stats().dispatches, 1);
        drop((s, t));
        assert_eq!(b.stats().bytes_live, 0);
    }
}
