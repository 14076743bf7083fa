//! The buffer pool: freed tensor buffers wait here by size class (powers of
//! two, at least 16 bytes) and are handed to the next request of that class
//! — an op's output or an upload's destination — so a training loop stops
//! allocating after its first steps.
//!
//! Reuse is safe without waiting for the GPU: a buffer goes back to the pool
//! when its last tensor drops, and any later use — a kernel's write or an
//! upload's copy (`staging.rs`) — is recorded after every use already
//! recorded, and queue order is execution order. What must never happen is
//! `queue.write_buffer` on a pooled buffer (it runs at the start of the next
//! submit, before recorded work); lam never calls it on one.
//!
//! Allocation checks the device limits first, so an oversized tensor is a
//! [`Error::TooLarge`] naming the sizes, and wraps buffer creation in an
//! out-of-memory error scope, so a failed allocation is an [`Error::Device`].
//! Every buffer lam creates counts in `buffers_allocated`, and every byte a
//! device keeps besides live tensors (this pool's free buffers, staging and
//! parameter buffers) in `bytes_pooled`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use lam_core::{Error, Result};

use crate::context::{block_on, Gpu, State};

/// Usage of every tensor buffer: bound as storage, copied in and out.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Free buffers of one kind by size class, up to a cap of bytes. Tensor
/// buffers live in one; staging buffers in others (`staging.rs`).
#[derive(Debug)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    free_bytes: u64,
    /// Free bytes kept at most; beyond this, freed buffers are released.
    cap: u64,
}

impl BufferPool {
    /// A pool that keeps at most `cap` bytes of idle buffers.
    pub(crate) fn new(cap: u64) -> BufferPool {
        BufferPool {
            free: HashMap::new(),
            free_bytes: 0,
            cap,
        }
    }

    /// The cap for a device whose largest buffer is `max_buffer` bytes: a
    /// quarter of that, within 64 MiB and 1 GiB.
    pub(crate) fn cap_for(max_buffer: u64) -> u64 {
        (max_buffer / 4).clamp(64 << 20, 1 << 30)
    }

    /// A free buffer of `class` bytes, if there is one.
    pub(crate) fn take(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let buf = self.free.get_mut(&class)?.pop()?;
        self.free_bytes -= class;
        Some(buf)
    }

    /// Any free buffer and its class (to let it go).
    pub(crate) fn pop_any(&mut self) -> Option<(u64, wgpu::Buffer)> {
        let (&class, list) = self.free.iter_mut().find(|(_, list)| !list.is_empty())?;
        let buf = list.pop()?;
        self.free_bytes -= class;
        Some((class, buf))
    }

    /// Keeps a buffer of `class` bytes for reuse and returns true, or
    /// returns false when the pool is full (the caller lets it go: wgpu
    /// frees it once in-flight work is done).
    pub(crate) fn put(&mut self, class: u64, buf: wgpu::Buffer) -> bool {
        if self.free_bytes + class > self.cap {
            return false;
        }
        self.free_bytes += class;
        self.free.entry(class).or_default().push(buf);
        true
    }
}

/// The bytes a buffer of `bytes` is allocated with: the power-of-two class
/// (at least 16, so any buffer binds as `array<vec4<f32>>`), or just
/// `bytes` rounded up to 16 when the class would break a limit it fits.
pub(crate) fn size_class(bytes: u64, limit: u64) -> u64 {
    let exact = bytes.max(16).next_multiple_of(16);
    let class = exact.next_power_of_two();
    if class <= limit {
        class
    } else {
        exact
    }
}

impl Gpu {
    /// A tensor buffer of at least `bytes` (pooled contents are stale).
    /// Returns the buffer and its capacity.
    pub(crate) fn acquire(&self, op: &'static str, bytes: u64) -> Result<(wgpu::Buffer, u64)> {
        self.check_fault()?;
        let class = self.check_size(op, bytes)?;
        let mut state = self.lock();
        if let Some(buf) = state.pool.take(class) {
            self.counters.reused(class);
            self.counters.lives(class);
            return Ok((buf, class));
        }
        let buf = self.create_buffer(&state, op, class, TENSOR_USAGE, false)?;
        self.counters.lives(class);
        Ok((buf, class))
    }

    /// Hands a tensor buffer back when its storage drops.
    pub(crate) fn release(&self, buf: wgpu::Buffer, class: u64) {
        self.counters.bytes_live.fetch_sub(class, Ordering::Relaxed);
        if self.lock().pool.put(class, buf) {
            self.counters
                .bytes_pooled
                .fetch_add(class, Ordering::Relaxed);
        }
    }

    /// The allocation size for `bytes`, or `TooLarge` naming the limit.
    fn check_size(&self, op: &'static str, bytes: u64) -> Result<u64> {
        let limit = self.limits.max_binding.min(self.limits.max_buffer);
        let class = size_class(bytes, limit);
        // The 16-byte rounding can only matter within 15 bytes of the limit.
        if bytes > limit || class > limit {
            return Err(Error::TooLarge { op, bytes, limit });
        }
        Ok(class)
    }

    /// Creates a buffer inside an out-of-memory scope, with the device lock
    /// held (`_held`), and counts it in `buffers_allocated`.
    pub(crate) fn create_buffer(
        &self,
        _held: &State,
        op: &'static str,
        size: u64,
        usage: wgpu::BufferUsages,
        mapped_at_creation: bool,
    ) -> Result<wgpu::Buffer> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(op),
            size,
            usage,
            mapped_at_creation,
        });
        if let Some(e) = block_on(scope.pop()) {
            return Err(Error::Device(format!(
                "{op}: allocating {size} bytes on {} failed: {e}",
                self.describe()
            )));
        }
        self.counters
            .buffers_allocated
            .fetch_add(1, Ordering::Relaxed);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_powers_of_two_unless_a_limit_forbids() {
        assert_eq!(size_class(0, 1 << 30), 16);
        assert_eq!(size_class(4, 1 << 30), 16);
        assert_eq!(size_class(17, 1 << 30), 32);
        assert_eq!(size_class(1000, 1 << 30), 1024);
        // 600 bytes fit a 1000-byte limit, but their class (1024) would not.
        assert_eq!(size_class(600, 1000), 608);
    }
}
