//! [`CpuStorage`]: the CPU's buffer, a lock around an `f32` or `i32` vector.
//!
//! Buffers are shared through `Arc`s and written in place by `copy` and
//! `fused_adam`, so the data sits behind an `RwLock`. Ops take read locks
//! through [`ReadLocks`], which locks each distinct buffer once: taking a
//! second read lock on a buffer this thread already holds can deadlock behind
//! a waiting writer. Every view is bounds-checked against its buffer before
//! an op indexes it, so a bad layout is an error rather than a panic (and
//! the unsafe `gemm` call in `matmul` never reads outside a buffer).
//!
//! This file also holds the ops that only move data: `read_*`, `copy`, `cast`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lam_core::backend::{BackendStorage, DeviceStats, View};
use lam_core::{DType, Error, Layout, Result, Storage};

use crate::pool;
use crate::strided::{gather, gather_into};

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
    fn read(&self) -> RwLockReadGuard<'_, Data> {
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
        }
    }

    fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I32(v) => v.len(),
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
            Data::I32(_) => Err(dtype_error(self.op, DType::F32, DType::I32)),
        }
    }

    /// Input `i` as `i32`s (see [`ReadLocks::data`]).
    pub fn i32(&self, i: usize, layout: &Layout) -> Result<&[i32]> {
        match self.data(i, layout)? {
            Data::I32(v) => Ok(v),
            Data::F32(_) => Err(dtype_error(self.op, DType::I32, DType::F32)),
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

/// The elements of an `F32` view, row-major.
pub(crate) fn read_f32(src: View) -> Result<Vec<f32>> {
    let locks = ReadLocks::new("read_f32", &[src.0])?;
    Ok(gather(locks.f32(0, src.1)?, src.1)?.into_owned())
}

/// The elements of an `I32` view, row-major.
pub(crate) fn read_i32(src: View) -> Result<Vec<i32>> {
    let locks = ReadLocks::new("read_i32", &[src.0])?;
    Ok(gather(locks.i32(0, src.1)?, src.1)?.into_owned())
}

/// Writes the elements of `src` into the view `dst` (same shape and dtype).
pub(crate) fn copy(src: View, dst: View) -> Result<()> {
    const OP: &str = "copy";
    if src.1.shape != dst.1.shape {
        return Err(Error::shape(OP, format!("{:?}", src.1.shape), &dst.1.shape));
    }
    // Gather first and release the source, so copying within one buffer
    // (or two copies in opposite directions) never holds two locks.
    let values = {
        let locks = ReadLocks::new(OP, &[src.0])?;
        match locks.data(0, src.1)? {
            Data::F32(v) => {
                let mut values = pool::take(src.1.numel())?;
                gather_into(v, src.1, &mut values);
                Data::F32(values)
            }
            Data::I32(v) => Data::I32(gather(v, src.1)?.into_owned()),
        }
    };
    let mut guard = cpu(dst.0)?.write();
    check_bounds(OP, dst.1, guard.len())?;
    match (&mut *guard, values) {
        (Data::F32(out), Data::F32(values)) => {
            scatter(out, dst.1, &values);
            pool::give(values);
        }
        (Data::I32(out), Data::I32(values)) => scatter(out, dst.1, &values),
        (out, values) => return Err(dtype_error(OP, out.dtype(), values.dtype())),
    }
    Ok(())
}

/// Converts a view to `to` (float to int truncates toward zero, saturating; NaN gives 0).
pub(crate) fn cast(src: View, to: DType) -> Result<Data> {
    let locks = ReadLocks::new("cast", &[src.0])?;
    Ok(match (locks.data(0, src.1)?, to) {
        (Data::F32(v), DType::F32) => {
            let mut out = pool::take(src.1.numel())?;
            gather_into(v, src.1, &mut out);
            Data::F32(out)
        }
        (Data::I32(v), DType::I32) => Data::I32(gather(v, src.1)?.into_owned()),
        (Data::F32(v), DType::I32) => {
            Data::I32(gather(v, src.1)?.iter().map(|&x| x as i32).collect())
        }
        (Data::I32(v), DType::F32) => {
            Data::F32(gather(v, src.1)?.iter().map(|&x| x as f32).collect())
        }
    })
}

/// `out[layout offsets] = values`, row-major.
fn scatter<T: Copy>(out: &mut [T], layout: &Layout, values: &[T]) {
    if layout.is_contiguous() {
        out[layout.offset..layout.offset + values.len()].copy_from_slice(values);
    } else {
        for (offset, &value) in layout.offsets().zip(values) {
            out[offset] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    #[test]
    fn copy_writes_a_transposed_view_into_a_strided_destination() {
        let b = backend();
        // src [2, 3] read transposed as [3, 2]; dst is the even columns of a [3, 4].
        let (src, l) = f32s(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let src_t = l.permute(&[1, 0]).unwrap();
        let dst = b.zeros(12, lam_core::DType::F32).unwrap();
        let dst_l = Layout {
            shape: vec![3, 2],
            strides: vec![4, 2],
            offset: 0,
        };
        b.copy((&src, &src_t), (&dst, &dst_l)).unwrap();
        assert_eq!(
            read(&dst, &[12]),
            vec![1., 0., 4., 0., 2., 0., 5., 0., 3., 0., 6., 0.]
        );
    }

    #[test]
    fn copy_within_one_buffer_does_not_deadlock() {
        let b = backend();
        let (s, _) = f32s(&[1., 2., 3., 4.], &[4]);
        let first = Layout::contiguous(&[2]);
        let second = first.narrow(0, 0, 2).map(|mut l| {
            l.offset = 2;
            l
        });
        b.copy((&s, &first), (&s, &second.unwrap())).unwrap();
        assert_eq!(read(&s, &[4]), vec![1., 2., 1., 2.]);
    }

    #[test]
    fn copy_rejects_mismatched_dtypes_and_out_of_bounds_views() {
        let b = backend();
        let (f, l) = f32s(&[1., 2.], &[2]);
        let i = b.from_i32(&[0, 0]).unwrap();
        assert!(b.copy((&f, &l), (&i, &l)).is_err());
        let long = Layout::contiguous(&[3]);
        assert!(b.copy((&f, &long), (&f, &long)).is_err());
        assert!(b.read_f32((&f, &Layout::contiguous(&[5]))).is_err());
        assert!(b.read_i32((&f, &l)).is_err());
    }

    #[test]
    fn cast_truncates_toward_zero() {
        let b = backend();
        let (s, l) = f32s(&[1.9, -1.9, 0.5, -0.0, 7.0], &[5]);
        let i = b.cast((&s, &l), lam_core::DType::I32).unwrap();
        assert_eq!(b.read_i32((&i, &l)).unwrap(), vec![1, -1, 0, 0, 7]);
        let f = b.cast((&i, &l), lam_core::DType::F32).unwrap();
        assert_eq!(read(&f, &[5]), vec![1., -1., 0., 0., 7.]);
    }

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

    #[test]
    fn read_follows_broadcast_strides() {
        let (s, l) = f32s(&[1., 2.], &[2, 1]);
        let wide = l.broadcast_to(&[2, 3]).unwrap();
        assert_eq!(
            backend().read_f32((&s, &wide)).unwrap(),
            vec![1., 1., 1., 2., 2., 2.]
        );
    }
}
