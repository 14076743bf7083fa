//! Recycled `f32` buffers, so a training loop's steady state allocates
//! nothing.
//!
//! Every op returns a fresh output vector, and a training step frees about
//! as many as it makes. Uploads (`from_f32`) take their vector from here
//! too: a DataLoader's batch arrives as a new host vector every step, and
//! its copy must reuse the one freed by the step before — otherwise each
//! freed batch would be parked here unused until the pool is full. Large vectors come from `mmap` in the system
//! allocator, so each new one costs a page fault per 4 KiB and the kernel's
//! zeroing — measured at about 8% of an MLP training step. Instead, a
//! dropped [`crate::storage::CpuStorage`] hands its vector to this pool, and
//! the next op asking for the same length takes it back.
//!
//! Buffers are matched by exact length (a training step asks for the same
//! shapes every time), small ones bypass the pool (the allocator serves them
//! from its own free lists), and the pool holds at most [`MAX_POOLED_BYTES`]:
//! beyond that a freed buffer goes back to the allocator. Only `f32`
//! vectors are pooled; `i32` ones (labels, indices) and `f16` ones always
//! come from and go back to the allocator, so none is ever parked here unused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use lam_core::{Error, Result};

/// Vectors shorter than this go straight to the allocator.
const MIN_POOLED_LEN: usize = 4096;

/// Most bytes the pool keeps for reuse.
const MAX_POOLED_BYTES: usize = 256 << 20;

/// Free vectors by length.
struct Pool {
    free: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Requests of pooled size served by a recycled vector, and those that had
/// to allocate: see [`PoolStats`].
static REUSED: AtomicU64 = AtomicU64::new(0);
static FRESH: AtomicU64 = AtomicU64::new(0);

/// Counters of the process-wide CPU buffer pool, shared by every CPU device.
/// Buffers below 4096 elements bypass the pool and are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Output buffers that reused a freed one.
    pub reused: u64,
    /// Output buffers that had to be allocated. In the steady state of a
    /// training loop this stops growing.
    pub fresh: u64,
    /// Bytes of freed buffers the pool holds now (at most 256 MiB).
    pub bytes_pooled: u64,
}

/// The pool's counters so far.
pub fn pool_stats() -> PoolStats {
    PoolStats {
        reused: REUSED.load(Ordering::Relaxed),
        fresh: FRESH.load(Ordering::Relaxed),
        bytes_pooled: with_pool(|p| p.bytes) as u64,
    }
}

fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    // A panic elsewhere cannot leave the pool inconsistent (each operation
    // is a push or a pop), so a poisoned lock is still usable.
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = guard.get_or_insert_with(|| Pool {
        free: HashMap::new(),
        bytes: 0,
    });
    f(pool)
}

/// A vector of `len` elements whose values are unspecified (left over from
/// an earlier op): for outputs that are overwritten entirely. An error when
/// the memory cannot be had.
pub(crate) fn take(len: usize) -> Result<Vec<f32>> {
    Ok(match reuse(len) {
        Some(v) => v,
        None => fresh_zeroed(len)?,
    })
}

/// A vector of `len` zeros (see [`take`]).
pub(crate) fn zeroed(len: usize) -> Result<Vec<f32>> {
    Ok(match reuse(len) {
        Some(mut v) => {
            v.fill(0.0);
            v
        }
        None => fresh_zeroed(len)?,
    })
}

/// A copy of `data`, in a recycled vector when the pool has one of its
/// length (see [`take`]).
pub(crate) fn copy_f32(data: &[f32]) -> Result<Vec<f32>> {
    match reuse(data.len()) {
        Some(mut v) => {
            v.copy_from_slice(data);
            Ok(v)
        }
        None => copy_of(data),
    }
}

/// A freed vector of exactly `len` elements, if the pool has one.
fn reuse(len: usize) -> Option<Vec<f32>> {
    if len < MIN_POOLED_LEN {
        return None;
    }
    let reused = with_pool(|p| {
        let v = p.free.get_mut(&len)?.pop()?;
        p.bytes -= len * 4;
        Some(v)
    });
    let counter = if reused.is_some() { &REUSED } else { &FRESH };
    counter.fetch_add(1, Ordering::Relaxed);
    reused
}

/// Element types whose all-zero bit pattern is the value zero, and where
/// their scratch vectors come from and go back to: `f32` ones through the
/// pool, the others straight from and to the allocator.
pub(crate) trait ZeroBits: Copy {
    /// A vector of `len` elements to be overwritten entirely.
    fn scratch(len: usize) -> Result<Vec<Self>> {
        fresh_zeroed(len)
    }

    /// Hands a scratch vector back.
    fn recycle(v: Vec<Self>) {
        drop(v);
    }
}
impl ZeroBits for f32 {
    fn scratch(len: usize) -> Result<Vec<f32>> {
        take(len)
    }

    fn recycle(v: Vec<f32>) {
        give(v);
    }
}
impl ZeroBits for i32 {}
impl ZeroBits for f64 {}
impl ZeroBits for u32 {}
impl ZeroBits for half::f16 {}

/// `len` zeros straight from the allocator, or [`Error::OutOfMemory`] naming
/// the bytes when it refuses — where `vec![0; len]` would abort the whole
/// process. The allocator's zeroed pages are touched only when written, so
/// a large buffer costs nothing until used.
pub(crate) fn fresh_zeroed<T: ZeroBits>(len: usize) -> Result<Vec<T>> {
    let bytes = (len as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    let refused = || Error::OutOfMemory {
        op: "cpu buffer",
        bytes,
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(len).map_err(|_| refused())?;
    // SAFETY: `layout` has a non-zero size (len > 0, and no ZeroBits type is
    // zero-sized). The memory comes from the global allocator with the
    // layout of `[T; len]`, as `Vec::from_raw_parts` requires, and all-zero
    // bits are a valid `T` (the `ZeroBits` contract), so all `len` elements
    // are initialised.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<T>();
        if ptr.is_null() {
            return Err(refused());
        }
        Ok(Vec::from_raw_parts(ptr, len, len))
    }
}

/// A copy of `data`, or [`Error::OutOfMemory`] when it cannot be had.
pub(crate) fn copy_of<T: Copy>(data: &[T]) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(data.len())
        .map_err(|_| Error::OutOfMemory {
            op: "cpu buffer",
            bytes: std::mem::size_of_val(data) as u64,
        })?;
    v.extend_from_slice(data);
    Ok(v)
}

/// Returns a vector for reuse (or frees it, when small or the pool is full).
pub(crate) fn give(v: Vec<f32>) {
    let len = v.len();
    if len < MIN_POOLED_LEN || v.capacity() != len {
        return;
    }
    with_pool(|p| {
        if p.bytes + len * 4 <= MAX_POOLED_BYTES {
            p.bytes += len * 4;
            p.free.entry(len).or_default().push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_back_and_zeroed_on_request() {
        // A length no other test uses, so parallel tests cannot take it.
        let len = MIN_POOLED_LEN + 7919;
        let mut v = take(len).unwrap();
        v.fill(3.0);
        let ptr = v.as_ptr();
        give(v);
        let again = take(len).unwrap();
        assert_eq!(again.as_ptr(), ptr, "the freed buffer is reused");
        assert_eq!(again.len(), len);
        give(again);
        let z = zeroed(len).unwrap();
        assert!(z.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn a_copy_reuses_a_freed_buffer_of_its_length() {
        let len = MIN_POOLED_LEN + 7883;
        let data: Vec<f32> = (0..len).map(|i| i as f32).collect();
        let first = copy_f32(&data).unwrap();
        let ptr = first.as_ptr();
        give(first);
        let again = copy_f32(&data).unwrap();
        assert_eq!(again.as_ptr(), ptr, "the freed copy is reused");
        assert_eq!(again, data);
    }

    #[test]
    fn small_buffers_bypass_the_pool() {
        give(vec![1.0; 16]);
        // Other tests may pool buffers concurrently, but never 16-element ones.
        assert!(with_pool(|p| !p.free.contains_key(&16)));
    }
}
