//! [`CpuStorage`]: the CPU's buffer, a lock around an `f32`, `i32` or `f16`
//! vector.
//!
//! Buffers are shared through `Arc`s and written in place by `copy` and
//! `fused_adam`, so the data sits behind an `RwLock`. Ops take read locks
//! through [`ReadLocks`], which locks each distinct buffer once: taking a
//! second read lock on a buffer this thread already holds can deadlock behind
//! a waiting writer. Every view is bounds-checked against its buffer before
//! an op indexes it, so a bad layout is an error rather than a panic (and
//! the unsafe `gemm` call in `matmul` never reads outside a buffer).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lam_core::backend::{BackendStorage, DeviceStats};
use lam_core::{DType, Error, Layout, Result, Storage};

use crate::pool;

/// A CPU buffer. Only `lam-cpu` looks inside.
pub struct CpuStorage {
    data: RwLock<Data>,
    len: usize,
    dtype: DType,
    counters: Arc<Counters>,
}

/// The elements of a buffer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    F32(Vec<f32>),
    I32(Vec<i32>),
    /// IEEE half precision: stored, copied and cast; ops compute on `F32`.
    F16(Vec<half::f16>),
}

/// The counters behind [`lam_core::Backend::stats`], shared by a backend and
/// its buffers (a buffer subtracts its bytes when dropped).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub dispatches: AtomicU64,
    pub buffers_allocated: AtomicU64,
    pub bytes_live: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> DeviceStats {
        DeviceStats {
            dispatches: self.dispatches.load(Ordering::Relaxed),
            buffers_allocated: self.buffers_allocated.load(Ordering::Relaxed),
            bytes_live: self.bytes_live.load(Ordering::Relaxed),
            ..DeviceStats::default()
        }
    }
}

impl CpuStorage {
    pub(crate) fn new(data: Data, counters: &Arc<Counters>) -> CpuStorage {
        let (len, dtype) = match &data {
            Data::F32(v) => (v.len(), DType::F32),
            Data::I32(v) => (v.len(), DType::I32),
            Data::F16(v) => (v.len(), DType::F16),
        };
        counters.buffers_allocated.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_live
            .fetch_add((len * dtype.size()) as u64, Ordering::Relaxed);
        CpuStorage {
            data: RwLock::new(data),
            len,
            dtype,
            counters: counters.clone(),
        }
    }

    // A panic while a lock was held cannot leave a buffer half-typed (ops
    // only write elements), so a poisoned lock is still safe to use.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl BackendStorage for CpuStorage {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn len(&self) -> usize {
        self.len
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

impl fmt::Debug for CpuStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuStorage({} x {})", self.len, self.dtype)
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        let bytes = (self.len * self.dtype.size()) as u64;
        self.counters.bytes_live.fetch_sub(bytes, Ordering::Relaxed);
        let data = self.data.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Data::F32(v) = data {
            pool::give(std::mem::take(v));
        }
    }
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::I32(_) => DType::I32,
            Data::F16(_) => DType::F16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::F16(v) => v.len(),
        }
    }
}

/// The CPU buffer behind a storage handle, or an error if another backend made it.
pub(crate) fn cpu(storage: &Storage) -> Result<&CpuStorage> {
    storage
        .as_any()
        .downcast_ref::<CpuStorage>()
        .ok_or_else(|| {
            Error::Device(format!(
                "the cpu backend was given a foreign buffer {storage:?}"
            ))
        })
}

/// Read locks on the buffers of one op's inputs, each distinct buffer locked once.
pub(crate) struct ReadLocks<'a> {
    guards: Vec<RwLockReadGuard<'a, Data>>,
    /// `slot[i]` is the guard of input `i`.
    slot: Vec<usize>,
    op: &'static str,
}

impl<'a> ReadLocks<'a> {
    pub fn new(op: &'static str, inputs: &[&'a Storage]) -> Result<ReadLocks<'a>> {
        let mut guards = Vec::new();
        let mut owners: Vec<&Storage> = Vec::new();
        let mut slot = Vec::with_capacity(inputs.len());
        for &input in inputs {
            match owners.iter().position(|o| same_buffer(o, input)) {
                Some(i) => slot.push(i),
                None => {
                    slot.push(guards.len());
                    guards.push(cpu(input)?.read());
                    owners.push(input);
                }
            }
        }
        Ok(ReadLocks { guards, slot, op })
    }

    /// Input `i`, after checking that `layout` stays inside it.
    pub fn data(&self, i: usize, layout: &Layout) -> Result<&Data> {
        let data = &*self.guards[self.slot[i]];
        check_bounds(self.op, layout, data.len())?;
        Ok(data)
    }

    /// Input `i` as `f32`s (see [`ReadLocks::data`]).
    pub fn f32(&self, i: usize, layout: &Layout) -> Result<&[f32]> {
        match self.data(i, layout)? {
            Data::F32(v) => Ok(v),
            other => Err(dtype_error(self.op, DType::F32, other.dtype())),
        }
    }

    /// Input `i` as `i32`s (see [`ReadLocks::data`]).
    pub fn i32(&self, i: usize, layout: &Layout) -> Result<&[i32]> {
        match self.data(i, layout)? {
            Data::I32(v) => Ok(v),
            other => Err(dtype_error(self.op, DType::I32, other.dtype())),
        }
    }
}

/// True when two handles share one buffer.
pub(crate) fn same_buffer(a: &Storage, b: &Storage) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

pub(crate) fn dtype_error(op: &'static str, expected: DType, found: DType) -> Error {
    Error::DTypeMismatch {
        op,
        expected,
        found,
    }
}

/// An error unless every element of `layout` lies inside a buffer of `len`.
pub(crate) fn check_bounds(op: &'static str, layout: &Layout, len: usize) -> Result<()> {
    if layout.strides.len() != layout.shape.len() {
        return Err(Error::invalid(
            op,
            format!(
                "layout has {} strides for shape {:?}",
                layout.strides.len(),
                layout.shape
            ),
        ));
    }
    if layout.numel() == 0 {
        return Ok(());
    }
    let last = layout
        .shape
        .iter()
        .zip(&layout.strides)
        .try_fold(layout.offset, |acc, (&dim, &stride)| {
            (dim - 1).checked_mul(stride)?.checked_add(acc)
        });
    match last {
        Some(last) if last < len => Ok(()),
        _ => Err(Error::invalid(
            op,
            format!("view {layout:?} reaches past the end of a buffer of {len} elements"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    /// A buffer some other backend made.
    #[derive(Debug)]
    struct Foreign;

    impl lam_core::BackendStorage for Foreign {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn len(&self) -> usize {
            1
        }
        fn dtype(&self) -> lam_core::DType {
            lam_core::DType::F32
        }
    }

    #[test]
    fn foreign_buffers_are_errors() {
        let foreign: lam_core::Storage = std::sync::Arc::new(Foreign);
        let l = Layout::contiguous(&[1]);
        let err = backend().read_f32((&foreign, &l)).unwrap_err();
        assert!(matches!(err, lam_core::Error::Device(_)), "{err}");
    }
}
