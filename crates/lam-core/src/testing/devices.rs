//! Devices for tests that must reach every code path:
//!
//! - [`Unfused`] forwards every primitive to a backend but declines every
//!   optional `fused_*` op, so `lam-core`'s composite fallbacks (softmax,
//!   cross-entropy, linear, Adam from primitives) run on that backend too.
//!   The conformance suite runs each test body on an unfused twin of every
//!   device, proving both paths of each fused op.
//! - [`Recorder`] forwards everything and notes which methods ran, so a test
//!   that claims to exercise every op can check it against
//!   [`crate::backend::OP_METHODS`].
//!
//! Both are generated from the trait's method list, so a new method is
//! forwarded (or declined) without touching this file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::backend::{
    backend_methods, AdamStep, Backend, BinaryOp, DeviceKind, DeviceStats, Distribution,
    LinearActivation, ReduceOp, Storage, UnaryOp, View, WindowGeometry,
};
use crate::{DType, Device, Result};

/// A backend that runs `inner`'s primitives and declines every fused op.
#[derive(Debug)]
pub struct Unfused {
    inner: Arc<dyn Backend>,
}

impl Unfused {
    /// The unfused twin of `device`: a new device on the same backend (its
    /// tensors are not interchangeable with `device`'s) that takes no fused
    /// path. Its name is `device`'s with ` (unfused)` appended.
    pub fn device(device: &Device) -> Device {
        Device::new(Arc::new(Unfused {
            inner: device.unprofiled_backend(),
        }))
    }
}

/// A backend that forwards to `inner` and counts the calls of each method.
#[derive(Debug)]
pub struct Recorder {
    inner: Arc<dyn Backend>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl Recorder {
    /// Wraps `device`'s backend; the returned device runs everything on it
    /// and the recorder counts what ran.
    pub fn device(device: &Device) -> (Device, Arc<Recorder>) {
        let recorder = Arc::new(Recorder {
            inner: device.unprofiled_backend(),
            calls: Mutex::new(BTreeMap::new()),
        });
        (Device::new(recorder.clone()), recorder)
    }

    /// How often each method has been called (methods never called are absent).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

    fn note(&self, method: &'static str) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(method)
            .or_insert(0) += 1;
    }
}

/// Generates the two test backends' impls from the method list.
macro_rules! test_backends {
    (
        name { $(#[$na:meta])* fn name(&self) -> String; }
        info { $( $(#[$ia:meta])* fn $info:ident(&self) -> $iret:ty $(= $idef:expr)?; )* }
        ops { $(
            $(#[$oa:meta])*
            fn $op:ident(&self $(, $oarg:ident: $oty:ty)* $(,)?) -> $oret:ty
                $(= $odef:expr)? $(, named $olabel:expr)?;
        )* }
        fused { $(
            $(#[$fa:meta])*
            fn $fused:ident(&self $(, $farg:ident: $fty:ty)* $(,)?) -> $fret:ty
                = $fdef:expr, taken $ftaken:expr $(, named $flabel:expr)?;
        )* }
    ) => {
        impl Backend for Unfused {
            fn name(&self) -> String {
                format!("{} (unfused)", self.inner.name())
            }
            $( fn $info(&self) -> $iret { self.inner.$info() } )*
            $( fn $op(&self $(, $oarg: $oty)*) -> $oret { self.inner.$op($($oarg),*) } )*
            $(
                #[allow(unused_variables)]
                fn $fused(&self $(, $farg: $fty)*) -> $fret {
                    $fdef
                }
            )*
        }

        impl Backend for Recorder {
            fn name(&self) -> String {
                self.inner.name()
            }
            $( fn $info(&self) -> $iret { self.inner.$info() } )*
            $(
                fn $op(&self $(, $oarg: $oty)*) -> $oret {
                    self.note(stringify!($op));
                    self.inner.$op($($oarg),*)
                }
            )*
            $(
                fn $fused(&self $(, $farg: $fty)*) -> $fret {
                    self.note(stringify!($fused));
                    self.inner.$fused($($farg),*)
                }
            )*
        }
    };
}

backend_methods!(test_backends);
