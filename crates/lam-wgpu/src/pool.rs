//! The buffer pool: freed tensor buffers wait here by size class (powers of
//! two, at least 16 bytes) and are handed to the next request of that class,
//! so a training loop stops allocating after its first step.
//!
//! Reuse is safe without waiting for the GPU: a buffer goes back to the pool
//! when its last tensor drops, and any later use is recorded after every use
//! already recorded, and queue order is execution order. What must never
//! happen is `queue.write_buffer` on a pooled buffer (it runs at the start of
//! the next submit, before recorded work); lam never calls it.
//!
//! Allocation checks the device limits first, so an oversized tensor is a
//! [`Error::TooLarge`] naming the sizes, and wraps buffer creation in an
//! out-of-memory error scope, so a failed allocation is an [`Error::Device`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use lam_core::{Error, Result};

use crate::context::{block_on, Gpu, State};

/// Usage of every tensor buffer: bound as storage, copied in and out.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Free buffers by size class.
#[derive(Debug)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    free_bytes: u64,
    /// Free bytes kept at most; beyond this, freed buffers are released.
    cap: u64,
}

impl BufferPool {
    /// A pool that keeps at most a quarter of the largest buffer size, and
    /// at most 1 GiB, of idle memory.
    pub(crate) fn new(max_buffer: u64) -> BufferPool {
        BufferPool {
            free: HashMap::new(),
            free_bytes: 0,
            cap: (max_buffer / 4).clamp(64 << 20, 1 << 30),
        }
    }

    fn take(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let buf = self.free.get_mut(&class)?.pop()?;
        self.free_bytes -= class;
        Some(buf)
    }

    /// Returns a buffer of `class` bytes to the pool (or lets it go).
    pub(crate) fn put(&mut self, class: u64, buf: wgpu::Buffer) {
        if self.free_bytes + class > self.cap {
            return; // dropped: wgpu frees it once in-flight work is done
        }
        self.free_bytes += class;
        self.free.entry(class).or_default().push(buf);
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
            self.counters.pool_hits.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_live.fetch_add(class, Ordering::Relaxed);
            return Ok((buf, class));
        }
        let buf = self.create_buffer(&state, op, class, TENSOR_USAGE, false)?;
        self.counters
            .buffers_allocated
            .fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_live.fetch_add(class, Ordering::Relaxed);
        Ok((buf, class))
    }

    /// A fresh tensor buffer holding `data` (then zeros up to its capacity),
    /// written through a mapping at creation: unlike `queue.write_buffer`,
    /// this cannot be reordered against recorded work.
    pub(crate) fn upload(&self, op: &'static str, data: &[u8]) -> Result<(wgpu::Buffer, u64)> {
        self.check_fault()?;
        let class = self.check_size(op, data.len() as u64)?;
        let state = self.lock();
        let buf = self.create_buffer(&state, op, class, TENSOR_USAGE, true)?;
        if !data.is_empty() {
            let mut view = buf
                .slice(..data.len() as u64)
                .get_mapped_range_mut()
                .map_err(|e| {
                    Error::Device(format!("{op}: mapping an upload buffer failed: {e}"))
                })?;
            view.copy_from_slice(data);
        }
        buf.unmap();
        self.counters
            .buffers_allocated
            .fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_live.fetch_add(class, Ordering::Relaxed);
        Ok((buf, class))
    }

    /// Hands a tensor buffer back when its storage drops.
    pub(crate) fn release(&self, buf: wgpu::Buffer, class: u64) {
        self.counters.bytes_live.fetch_sub(class, Ordering::Relaxed);
        self.lock().pool.put(class, buf);
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
    /// held (`_held`). Only tensor buffers count as `buffers_allocated`, so
    /// that stat measures the pool.
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
