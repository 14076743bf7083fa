//! Devices for tests that must reach every code path, each a
//! [`Wrapped`] backend with its own hooks:
//!
//! - [`Unfused`] forwards every primitive to a backend but declines every
//!   optional `fused_*` op, so `lam-core`'s composite fallbacks (softmax,
//!   cross-entropy, linear, Adam from primitives) run on that backend too.
//!   The conformance suite runs each test body on an unfused twin of every
//!   device, proving both paths of each fused op.
//! - [`Declining`] declines only the fused ops it names, so lam-core
//!   composes those from everything else the backend has (attention
//!   composed around `fused_attention_weights`, for one).
//! - [`Recorder`] forwards everything and counts which methods ran, so a
//!   test that claims to exercise every op can check it against
//!   [`crate::backend::OP_METHODS`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::backend::{Hooks, Wrapped};
use crate::{Device, Result};

/// A backend that runs another's primitives and declines every fused op.
pub type Unfused = Wrapped<DeclineFused>;

/// The hooks of [`Unfused`].
#[derive(Debug)]
pub struct DeclineFused;

impl Unfused {
    /// The unfused twin of `device`: a new device on the same backend (its
    /// tensors are not interchangeable with `device`'s) that takes no fused
    /// path. Its name is `device`'s with ` (unfused)` appended.
    pub fn device(device: &Device) -> Device {
        Device::new(Arc::new(Wrapped::wrap(
            device.unprofiled_backend(),
            DeclineFused,
        )))
    }
}

impl Hooks for DeclineFused {
    fn name(&self, inner: String) -> String {
        format!("{inner} (unfused)")
    }

    fn fused<T>(
        &self,
        _method: &'static str,
        _label: impl FnOnce() -> String,
        _taken: impl FnOnce(&T) -> bool,
        _call: impl FnOnce() -> Result<T>,
        decline: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        decline()
    }
}

/// A backend that runs another's ops but declines the fused ones it names.
pub type Declining = Wrapped<DeclineNamed>;

/// The hooks of [`Declining`]: the names of the fused methods it declines.
#[derive(Debug)]
pub struct DeclineNamed(&'static [&'static str]);

impl Declining {
    /// A twin of `device` (a new device on the same backend, as
    /// [`Unfused::device`]'s) declining the fused `methods` and taking
    /// every other fused path. Its name is `device`'s with
    /// ` (without ...)` appended.
    pub fn device(device: &Device, methods: &'static [&'static str]) -> Device {
        Device::new(Arc::new(Wrapped::wrap(
            device.unprofiled_backend(),
            DeclineNamed(methods),
        )))
    }
}

impl Hooks for DeclineNamed {
    fn name(&self, inner: String) -> String {
        format!("{inner} (without {})", self.0.join(", "))
    }

    fn fused<T>(
        &self,
        method: &'static str,
        _label: impl FnOnce() -> String,
        _taken: impl FnOnce(&T) -> bool,
        call: impl FnOnce() -> Result<T>,
        decline: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.0.contains(&method) {
            decline()
        } else {
            call()
        }
    }
}

/// A backend that forwards to another and counts the calls of each method.
pub type Recorder = Wrapped<CallCounts>;

/// The hooks of [`Recorder`].
#[derive(Debug, Default)]
pub struct CallCounts {
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl Recorder {
    /// Wraps `device`'s backend; the returned device runs everything on it
    /// and the recorder counts what ran.
    pub fn device(device: &Device) -> (Device, Arc<Recorder>) {
        let recorder = Arc::new(Wrapped::wrap(
            device.unprofiled_backend(),
            CallCounts::default(),
        ));
        (Device::new(recorder.clone()), recorder)
    }

    /// How often each method has been called (methods never called are absent).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.hooks()
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The methods of [`crate::backend::OP_METHODS`] never called so far.
    pub fn missing(&self) -> Vec<&'static str> {
        let calls = self.calls();
        crate::backend::OP_METHODS
            .iter()
            .copied()
            .filter(|m| !calls.contains_key(m))
            .collect()
    }
}

impl CallCounts {
    fn note(&self, method: &'static str) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(method)
            .or_insert(0) += 1;
    }
}

impl Hooks for CallCounts {
    fn op<T>(
        &self,
        method: &'static str,
        _label: impl FnOnce() -> String,
        call: impl FnOnce() -> T,
    ) -> T {
        self.note(method);
        call()
    }

    fn fused<T>(
        &self,
        method: &'static str,
        _label: impl FnOnce() -> String,
        _taken: impl FnOnce(&T) -> bool,
        call: impl FnOnce() -> Result<T>,
        _decline: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.note(method);
        call()
    }
}
