//! [`Profiled`]: a backend that forwards every call to another backend
//! and, while profiling is on, times each op on the host.
//!
//! Every `Device` holds its backend inside one of these (see
//! `Device::new`), so profiling can be switched on at any time, for devices
//! opened before or after. It is a [`Wrapped`] backend with [`Timer`] hooks,
//! so it forwards every method of the trait's list, the optional `fused_*`
//! ones included. A fused call the backend declines is recorded as
//! `fused_* (declined)`, so the table shows which path ran.

use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Backend, Hooks, Wrapped};
use crate::Result;

use super::{is_enabled, record, Clock};

/// A backend wrapped for profiling; behaves exactly as the backend inside.
pub type Profiled = Wrapped<Timer>;

impl Profiled {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> Profiled {
        let device = inner.name();
        Wrapped::wrap(inner, Timer { device })
    }
}

/// The hooks of [`Profiled`]: while profiling is on, each call is timed on
/// the host under its op's name.
#[derive(Debug)]
pub struct Timer {
    /// The wrapped backend's name, computed once: the section times go to.
    device: String,
}

impl Hooks for Timer {
    #[inline]
    fn op<T>(
        &self,
        _method: &'static str,
        label: impl FnOnce() -> String,
        call: impl FnOnce() -> T,
    ) -> T {
        if !is_enabled() {
            return call();
        }
        let start = Instant::now();
        let out = call();
        let elapsed = start.elapsed();
        record(&self.device, Clock::Host, &label(), elapsed);
        out
    }

    fn fused<T>(
        &self,
        _method: &'static str,
        label: impl FnOnce() -> String,
        taken: impl FnOnce(&T) -> bool,
        call: impl FnOnce() -> Result<T>,
        _decline: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if !is_enabled() {
            return call();
        }
        let start = Instant::now();
        let out = call();
        let elapsed = start.elapsed();
        let name = match &out {
            Ok(v) if !taken(v) => format!("{} (declined)", label()),
            _ => label(),
        };
        record(&self.device, Clock::Host, &name, elapsed);
        out
    }
}
