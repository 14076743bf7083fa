//! [`Device`]: a cheap, clonable handle to a backend chosen at run time.
//!
//! Users write a model once and pick the device when the program runs, as in
//! PyTorch. The constructors that need a concrete backend (`cpu()`, `gpu()`,
//! `auto()`) live in the `lam` facade, which knows the backend crates;
//! `lam-core` itself depends on none of them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::backend::{Backend, DeviceKind, DeviceStats};
use crate::profile::Profiled;
use crate::{Error, Result};

/// A handle to a compute device. Clones share the backend; two handles are
/// the same device exactly when they came from the same `Device::new`.
#[derive(Clone)]
pub struct Device {
    backend: Arc<Profiled>,
    id: u64,
}

static NEXT_DEVICE_ID: AtomicU64 = AtomicU64::new(1);

impl Device {
    /// Wraps a backend as a new device.
    ///
    /// The backend goes inside a [`Profiled`] wrapper so that
    /// [`crate::profile`] can time its ops whenever profiling is turned on;
    /// while it is off the wrapper costs one atomic load per op.
    pub fn new(backend: Arc<dyn Backend>) -> Device {
        Device {
            backend: Arc::new(Profiled::new(backend)),
            id: NEXT_DEVICE_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The backend's name, e.g. "cpu".
    pub fn name(&self) -> String {
        self.backend.name()
    }

    /// CPU or GPU.
    pub fn kind(&self) -> DeviceKind {
        self.backend.kind()
    }

    /// True for GPU devices.
    pub fn is_gpu(&self) -> bool {
        self.kind() == DeviceKind::Gpu
    }

    /// The backend (for lam's own crates and custom ops).
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// A shared handle to the backend.
    pub fn backend_arc(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// The backend this device was made from, without the profiling
    /// wrapper: for wrapping it again in another device (a second
    /// `Profiled` layer would time every op twice).
    pub(crate) fn unprofiled_backend(&self) -> Arc<dyn Backend> {
        self.backend.inner().clone()
    }

    /// Queue and memory counters.
    pub fn stats(&self) -> DeviceStats {
        self.backend.stats()
    }

    /// Restarts the peak of live bytes (`DeviceStats::bytes_live_peak`)
    /// from the bytes live now, as PyTorch's
    /// `torch.cuda.reset_peak_memory_stats`, and returns the counters as
    /// they were before, so one call reads a phase's peak and starts the
    /// next phase's.
    pub fn reset_peak_stats(&self) -> DeviceStats {
        let before = self.backend.stats();
        self.backend.reset_peak_stats();
        before
    }

    /// Waits for all queued work to finish.
    pub fn synchronize(&self) -> Result<()> {
        self.backend.synchronize()
    }

    /// An error unless `self` and `other` are the same device.
    pub fn check_same(&self, other: &Device, op: &'static str) -> Result<()> {
        if self == other {
            Ok(())
        } else {
            Err(Error::DeviceMismatch {
                op,
                lhs: self.to_string(),
                rhs: other.to_string(),
            })
        }
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Device) -> bool {
        self.id == other.id
    }
}

impl Eq for Device {}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.backend.name())
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({}#{})", self.backend.name(), self.id)
    }
}
