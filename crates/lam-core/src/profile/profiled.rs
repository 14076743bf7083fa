//! [`Profiled`]: a [`Backend`] that forwards every call to another backend
//! and, while profiling is on, times each op on the host.
//!
//! Every `Device` holds its backend inside one of these (see
//! `Device::new`), so profiling can be switched on at any time, for devices
//! opened before or after. It must forward **every** trait method,
//! including those with defaults: an optional `fused_*` method that fell
//! through to the trait's default would silently turn a fused path off.
//! A fused call the backend declines is recorded as `fused_* (declined)`,
//! so the table shows which path ran.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{
    AdamStep, Backend, BinaryOp, DeviceKind, DeviceStats, Distribution, LinearActivation, ReduceOp,
    Storage, UnaryOp, View, WindowGeometry,
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

    /// Runs `call`, timing it as `op` when profiling is on.
    #[inline]
    fn timed<T>(&self, op: &str, call: impl FnOnce() -> T) -> T {
        if !is_enabled() {
            return call();
        }
        let start = Instant::now();
        let out = call();
        record(&self.device, Clock::Host, op, start.elapsed());
        out
    }

    /// As [`Profiled::timed`] for op families whose name depends on a
    /// parameter (`unary.relu`); the name is built only when profiling.
    #[inline]
    fn timed_named<T>(&self, op: impl FnOnce() -> String, call: impl FnOnce() -> T) -> T {
        if !is_enabled() {
            return call();
        }
        let start = Instant::now();
        let out = call();
        let elapsed = start.elapsed();
        record(&self.device, Clock::Host, &op(), elapsed);
        out
    }

    /// As [`Profiled::timed_named`] for a fused op, named by whether the
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

impl Backend for Profiled {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn kind(&self) -> DeviceKind {
        self.inner.kind()
    }

    fn zeros(&self, len: usize, dtype: DType) -> Result<Storage> {
        self.timed("zeros", || self.inner.zeros(len, dtype))
    }

    fn from_f32(&self, data: &[f32]) -> Result<Storage> {
        self.timed("from_f32", || self.inner.from_f32(data))
    }

    fn from_i32(&self, data: &[i32]) -> Result<Storage> {
        self.timed("from_i32", || self.inner.from_i32(data))
    }

    fn read_f32(&self, src: View) -> Result<Vec<f32>> {
        self.timed("read_f32", || self.inner.read_f32(src))
    }

    fn read_i32(&self, src: View) -> Result<Vec<i32>> {
        self.timed("read_i32", || self.inner.read_i32(src))
    }

    fn copy(&self, src: View, dst: View) -> Result<()> {
        self.timed("copy", || self.inner.copy(src, dst))
    }

    fn cast(&self, src: View, to: DType) -> Result<Storage> {
        self.timed("cast", || self.inner.cast(src, to))
    }

    fn unary(&self, op: UnaryOp, src: View) -> Result<Storage> {
        self.timed_named(|| op_name("unary", &op), || self.inner.unary(op, src))
    }

    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Storage> {
        self.timed_named(
            || op_name("binary", &op),
            || self.inner.binary(op, lhs, rhs),
        )
    }

    fn select(&self, cond: View, a: View, b: View) -> Result<Storage> {
        self.timed("select", || self.inner.select(cond, a, b))
    }

    fn reduce(&self, op: ReduceOp, src: View, axes: &[usize]) -> Result<Storage> {
        self.timed_named(
            || op_name("reduce", &op),
            || self.inner.reduce(op, src, axes),
        )
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<Storage> {
        self.timed("matmul", || self.inner.matmul(lhs, rhs))
    }

    fn index_select(&self, src: View, dim: usize, index: View) -> Result<Storage> {
        self.timed("index_select", || self.inner.index_select(src, dim, index))
    }

    fn gather(&self, src: View, dim: usize, index: View) -> Result<Storage> {
        self.timed("gather", || self.inner.gather(src, dim, index))
    }

    fn scatter_add(&self, shape: &[usize], dim: usize, index: View, src: View) -> Result<Storage> {
        self.timed("scatter_add", || {
            self.inner.scatter_add(shape, dim, index, src)
        })
    }

    fn unfold(&self, src: View, geometry: &WindowGeometry, pad_value: f32) -> Result<Storage> {
        self.timed("unfold", || self.inner.unfold(src, geometry, pad_value))
    }

    fn fold(&self, cols: View, geometry: &WindowGeometry) -> Result<Storage> {
        self.timed("fold", || self.inner.fold(cols, geometry))
    }

    fn max_pool(&self, src: View, geometry: &WindowGeometry) -> Result<(Storage, Storage)> {
        self.timed("max_pool", || self.inner.max_pool(src, geometry))
    }

    fn max_pool_grad(&self, grad: View, taps: View, geometry: &WindowGeometry) -> Result<Storage> {
        self.timed("max_pool_grad", || {
            self.inner.max_pool_grad(grad, taps, geometry)
        })
    }

    fn fill_random(&self, len: usize, dist: Distribution, seed: u64) -> Result<Storage> {
        self.timed("fill_random", || self.inner.fill_random(len, dist, seed))
    }

    fn fused_softmax(&self, src: View, log: bool) -> Result<Option<Storage>> {
        let op = if log {
            "fused_log_softmax"
        } else {
            "fused_softmax"
        };
        self.timed_fused(
            || op.to_string(),
            Option::is_some,
            || self.inner.fused_softmax(src, log),
        )
    }

    fn fused_cross_entropy(
        &self,
        logits: View,
        targets: View,
    ) -> Result<Option<(Storage, Storage)>> {
        self.timed_fused(
            || "fused_cross_entropy".into(),
            Option::is_some,
            || self.inner.fused_cross_entropy(logits, targets),
        )
    }

    fn fused_linear(
        &self,
        input: View,
        weight: View,
        bias: Option<View>,
        act: LinearActivation,
    ) -> Result<Option<Storage>> {
        self.timed_fused(
            || op_name("fused_linear", &act),
            Option::is_some,
            || self.inner.fused_linear(input, weight, bias, act),
        )
    }

    fn fused_adam(
        &self,
        param: &Storage,
        grad: &Storage,
        m: &Storage,
        v: &Storage,
        step: &AdamStep,
    ) -> Result<bool> {
        self.timed_fused(
            || "fused_adam".into(),
            |&fused| fused,
            || self.inner.fused_adam(param, grad, m, v, step),
        )
    }

    fn stats(&self) -> DeviceStats {
        self.inner.stats()
    }

    fn synchronize(&self) -> Result<()> {
        self.timed("synchronize", || self.inner.synchronize())
    }
}

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
