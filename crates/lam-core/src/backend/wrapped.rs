//! [`Wrapped`]: a backend that forwards every method to another one through
//! [`Hooks`], which may act around each call. Its `Backend` impl is
//! generated from the trait's method list (`methods.rs`), so every method is
//! forwarded; a wrapper only writes the hooks it needs.

use std::fmt;
use std::sync::Arc;

use super::Backend;
use crate::Result;

/// A backend running `inner`'s methods through `hooks`.
pub struct Wrapped<H> {
    pub(crate) inner: Arc<dyn Backend>,
    pub(crate) hooks: H,
}

impl<H: Hooks> Wrapped<H> {
    /// `inner` with `hooks` around each call.
    pub fn wrap(inner: Arc<dyn Backend>, hooks: H) -> Wrapped<H> {
        Wrapped { inner, hooks }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// The hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }
}

impl<H> fmt::Debug for Wrapped<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Transparent: a wrapped backend prints as the backend it wraps.
        self.inner.fmt(f)
    }
}

/// What a [`Wrapped`] backend does around the calls it forwards. Each method
/// has a default that just forwards.
pub trait Hooks: Send + Sync + 'static {
    /// The device's name, given the wrapped backend's.
    fn name(&self, inner: String) -> String {
        inner
    }

    /// Runs the primitive `method`; `call` forwards it, and `label` builds
    /// the name an op enum gives it (`unary.relu`), for hooks that report.
    fn op<T>(
        &self,
        method: &'static str,
        label: impl FnOnce() -> String,
        call: impl FnOnce() -> T,
    ) -> T {
        let _ = (method, label);
        call()
    }

    /// Runs the optional fused `method`: `call` forwards it, `decline` is the
    /// trait's default (the caller then composes the op from primitives),
    /// and `taken` tells from a result whether the op ran fused.
    fn fused<T>(
        &self,
        method: &'static str,
        label: impl FnOnce() -> String,
        taken: impl FnOnce(&T) -> bool,
        call: impl FnOnce() -> Result<T>,
        decline: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _ = (method, label, taken, decline);
        call()
    }
}

/// `family.snake_case_variant` from an op enum's `Debug` form, dropping any
/// parameters: `UnaryOp::LeakyRelu(0.1)` → `unary.leaky_relu`. Derived
/// rather than listed so a new op variant is named without touching this file.
pub(crate) fn op_name(family: &str, op: &dyn fmt::Debug) -> String {
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

/// The profile's name of a product of `lhs` `[.., M, K]` and `rhs`
/// `[.., K, N]`: `name`, followed by `BxMxNxK` when the profiler records
/// shapes ([`crate::profile::records_shapes`]).
pub(crate) fn product_name(name: &str, lhs: &crate::Layout, rhs: &crate::Layout) -> String {
    if !crate::profile::records_shapes() {
        return name.to_string();
    }
    let (a, b) = (&lhs.shape, &rhs.shape);
    let (r, q) = (a.len(), b.len());
    if r < 2 || q < 2 {
        return format!("{name} {a:?}x{b:?}");
    }
    let batch: usize = a[..r - 2].iter().product();
    format!("{name} {batch}x{}x{}x{}", a[r - 2], b[q - 1], a[r - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BinaryOp, ReduceOp, UnaryOp};

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
