//! [`Profiled`]: a [`Backend`] that forwards every call to another backend
//! and, while profiling is on, times each op on the host.
//!
//! Every `Device` holds its backend inside one of these (see
//! `Device::new`), so profiling can be switched on at any time, for devices
//! opened before or after. Its `Backend` impl is generated from the trait's
//! method list (`backend/methods.rs`), so it forwards every method, the
//! optional `fused_*` ones included: one that fell through to the trait's
//! default would silently turn a fused path off.
//! A fused call the backend declines is recorded as `fused_* (declined)`,
//! so the table shows which path ran.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{
    backend_methods, AdamStep, Backend, BinaryOp, DeviceKind, DeviceStats, Distribution,
    LinearActivation, ReduceOp, Storage, UnaryOp, View, WindowGeometry,
};
use crate::{DType, Result};

use super::{is_enabled, record, Clock};

/// A backend wrapped for profiling; behaves exactly as the backend inside.
pub struct Profiled {
    inner: Arc<dyn Backend>,
    /// `inner.name()`, computed once: the section the times go to.
    device: String,
}

impl Profiled {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> Profiled {
        let device = inner.name();
        Profiled { inner, device }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// Runs `call`, timing it under the name `op` builds (only while
    /// profiling is on, so naming costs nothing otherwise).
    #[inline]
    fn timed<T>(&self, op: impl FnOnce() -> String, call: impl FnOnce() -> T) -> T {
        if !is_enabled() {
            return call();
        }
        let start = Instant::now();
        let out = call();
        let elapsed = start.elapsed();
        record(&self.device, Clock::Host, &op(), elapsed);
        out
    }

    /// As [`Profiled::timed`] for a fused op, named by whether the
    /// backend took it.
    fn timed_fused<T>(
        &self,
        op: impl FnOnce() -> String,
        fused: impl FnOnce(&T) -> bool,
        call: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if !is_enabled() {
            return call();
        }
        let start = Instant::now();
        let out = call();
        let elapsed = start.elapsed();
        let name = match &out {
            Ok(v) if !fused(v) => format!("{} (declined)", op()),
            _ => op(),
        };
        record(&self.device, Clock::Host, &name, elapsed);
        out
    }
}

impl fmt::Debug for Profiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Transparent: a device prints as the backend it wraps.
        self.inner.fmt(f)
    }
}

/// Generates `impl Backend for Profiled` from the method list: `info`
/// methods forward as they are, `ops` are timed under their name (or their
/// `named` label), and `fused` ones under their label with `(declined)`
/// appended when the backend did not take the op.
macro_rules! profiled_backend {
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
        impl Backend for Profiled {
            fn name(&self) -> String {
                self.inner.name()
            }
            $(
                fn $info(&self) -> $iret {
                    self.inner.$info()
                }
            )*
            $(
                fn $op(&self $(, $oarg: $oty)*) -> $oret {
                    self.timed(
                        || profiled_backend!(@label $op $(, $olabel)?),
                        || self.inner.$op($($oarg),*),
                    )
                }
            )*
            $(
                fn $fused(&self $(, $farg: $fty)*) -> $fret {
                    self.timed_fused(
                        || profiled_backend!(@label $fused $(, $flabel)?),
                        $ftaken,
                        || self.inner.$fused($($farg),*),
                    )
                }
            )*
        }
    };
    (@label $name:ident) => {
        String::from(stringify!($name))
    };
    (@label $name:ident, $label:expr) => {
        $label
    };
}

backend_methods!(profiled_backend);

/// `family.snake_case_variant` from an op enum's `Debug` form, dropping any
/// parameters: `UnaryOp::LeakyRelu(0.1)` → `unary.leaky_relu`. Derived
/// rather than listed so a new op variant is named without touching this file.
fn op_name(family: &str, op: &dyn fmt::Debug) -> String {
    let debug = format!("{op:?}");
    let variant = debug.split(['(', ' ', '{']).next().unwrap_or("");
    let mut name = String::with_capacity(family.len() + variant.len() + 4);
    name.push_str(family);
    name.push('.');
    for (i, ch) in variant.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                name.push('_');
            }
            name.extend(ch.to_lowercase());
        } else {
            name.push(ch);
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_are_family_dot_snake_case_without_parameters() {
        assert_eq!(op_name("unary", &UnaryOp::Relu), "unary.relu");
        assert_eq!(
            op_name("unary", &UnaryOp::LeakyRelu(0.1)),
            "unary.leaky_relu"
        );
        assert_eq!(op_name("unary", &UnaryOp::Clamp(0.0, 1.0)), "unary.clamp");
        assert_eq!(op_name("binary", &BinaryOp::Add), "binary.add");
        assert_eq!(op_name("reduce", &ReduceOp::ArgMax), "reduce.arg_max");
    }
}
