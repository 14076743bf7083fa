//! The buffer pool: freed tensor buffers wait here by size class and are
//! handed to the next request of that class — an op's output or an
//! upload's destination — so a training loop stops allocating after its
//! first steps.
//!
//! Size classes are powers of two up to 64 KiB (at least 16 bytes) and four
//! steps per power of two above, so a buffer wastes under a quarter of its
//! request. A request takes a free buffer of its own class only: after a
//! step the pool holds, per class, the most buffers that class had in use
//! at once. (Taking a free buffer of up to twice the class let
//! neighbouring classes share buffers and kept resnet's pool smaller, but
//! a long-lived tensor — an optimizer's moments, made in the first step
//! among the freed activations — could then hold twice its bytes for the
//! whole run: 72 MiB of `gpt 4 --amp`'s 386 MiB at the start of a step.)
//! Free buffers are kept up to a cap
//! (a quarter of the adapter's largest buffer, within 64 MiB and 1 GiB, or
//! `GpuOptions::max_pool`), raised to the bytes live whenever a buffer has
//! to be created, so a step larger than the cap does not let its buffers
//! go and create them again each time; beyond it, freed buffers are let go.
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

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use lam_core::{Error, Result};

use crate::context::{block_on, Gpu, State};

/// Usage of every tensor buffer: bound as storage, copied in and out.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Free buffers of one kind by size class, up to a cap of bytes. Tensor
/// buffers live in one; staging buffers in others (`staging.rs`).
/// (Generic over the buffer only so its bookkeeping is testable without a
/// device.)
#[derive(Debug)]
pub(crate) struct BufferPool<B = wgpu::Buffer> {
    free: BTreeMap<u64, Vec<B>>,
    free_bytes: u64,
    /// Free bytes kept at most; beyond this, freed buffers are released.
    cap: u64,
}

impl BufferPool {
    /// The cap for a device whose largest buffer is `max_buffer` bytes: a
    /// quarter of that, within 64 MiB and 1 GiB.
    pub(crate) fn cap_for(max_buffer: u64) -> u64 {
        (max_buffer / 4).clamp(64 << 20, 1 << 30)
    }
}

impl<B> BufferPool<B> {
    /// A pool that keeps at most `cap` bytes of idle buffers.
    pub(crate) fn new(cap: u64) -> BufferPool<B> {
        BufferPool {
            free: BTreeMap::new(),
            free_bytes: 0,
            cap,
        }
    }

    /// A free buffer of exactly `class` bytes, if there is one.
    pub(crate) fn take(&mut self, class: u64) -> Option<B> {
        self.take_within(class, class).map(|(_, buf)| buf)
    }

    /// The free buffer of the smallest class from `class` to `largest`
    /// bytes, if there is one, and its class.
    pub(crate) fn take_within(&mut self, class: u64, largest: u64) -> Option<(u64, B)> {
        // Classes leave the map with their last buffer, so the first one in
        // range has a buffer.
        let found = *self.free.range(class..=largest).next()?.0;
        let list = self.free.get_mut(&found)?;
        let buf = list.pop()?;
        if list.is_empty() {
            self.free.remove(&found);
        }
        self.free_bytes -= found;
        Some((found, buf))
    }

    /// Any free buffer and its class (to let it go).
    pub(crate) fn pop_any(&mut self) -> Option<(u64, B)> {
        self.take_within(0, u64::MAX)
    }

    /// Raises the cap to `bytes` if it is lower. The tensor pool's cap
    /// follows the bytes live when a buffer had to be created: a loop
    /// whose step needed that much will need it again, and a lower cap
    /// would let its buffers go at each step's end to create them again
    /// in the next.
    pub(crate) fn keep_at_least(&mut self, bytes: u64) {
        self.cap = self.cap.max(bytes);
    }

    /// Keeps a buffer of `class` bytes for reuse and returns true, or
    /// returns false when the pool is full (the caller lets it go: wgpu
    /// frees it once in-flight work is done).
    pub(crate) fn put(&mut self, class: u64, buf: B) -> bool {
        if self.free_bytes + class > self.cap {
            return false;
        }
        self.free_bytes += class;
        self.free.entry(class).or_default().push(buf);
        true
    }
}

/// Sizes up to this many bytes are rounded to a power of two.
const FINE_FROM: u64 = 64 << 10;

/// Steps per power of two above [`FINE_FROM`].
const STEPS: u64 = 4;

/// The bytes a buffer of `bytes` is allocated with: its size class (see
/// the module docs; at least 16 bytes, so any buffer binds as
/// `array<vec4<f32>>`), or just `bytes` rounded up to 16 when the class
/// would break a limit it fits.
pub(crate) fn size_class(bytes: u64, limit: u64) -> u64 {
    let exact = bytes.max(16).next_multiple_of(16);
    let class = match exact.checked_next_power_of_two() {
        Some(power) if exact > FINE_FROM => exact.next_multiple_of(power / 2 / STEPS),
        Some(power) => power,
        None => exact,
    };
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
        let live = self.counters.lives(class);
        state.pool.keep_at_least(live);
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

    const GIB: u64 = 1 << 30;

    #[test]
    fn small_classes_are_powers_of_two_unless_a_limit_forbids() {
        assert_eq!(size_class(0, GIB), 16);
        assert_eq!(size_class(4, GIB), 16);
        assert_eq!(size_class(17, GIB), 32);
        assert_eq!(size_class(1000, GIB), 1024);
        assert_eq!(size_class(FINE_FROM, GIB), FINE_FROM);
        // 600 bytes fit a 1000-byte limit, but their class (1024) would not.
        assert_eq!(size_class(600, 1000), 608);
    }

    #[test]
    fn large_classes_step_a_quarter_of_the_power_below() {
        let mib = 1 << 20;
        assert_eq!(
            size_class(FINE_FROM + 1, GIB),
            FINE_FROM + FINE_FROM / STEPS
        );
        assert_eq!(size_class(8 * mib, GIB), 8 * mib);
        assert_eq!(size_class(8 * mib + 1, GIB), 10 * mib);
        assert_eq!(size_class(10 * mib, GIB), 10 * mib);
        assert_eq!(size_class(14 * mib + 1, GIB), 16 * mib);
        // resnet's largest unfold: 75.5 MB, 80 MiB instead of 128.
        assert_eq!(size_class(75_497_472, GIB), 80 * mib);
        // A class over the limit falls back to the exact size.
        assert_eq!(size_class(9 * mib, 9 * mib + 16), 9 * mib);
        for bytes in (FINE_FROM..64 * mib).step_by(999_983) {
            let class = size_class(bytes, GIB);
            assert!(
                class >= bytes && class.is_multiple_of(256),
                "{bytes} -> {class}"
            );
            assert!(
                class - bytes <= bytes / STEPS,
                "{bytes} -> {class} wastes too much"
            );
        }
    }

    #[test]
    fn take_within_finds_the_smallest_class_in_bounds() {
        let mut pool = BufferPool::new(GIB);
        for (class, name) in [(4096, "a"), (8192, "b"), (20_480, "c")] {
            assert!(pool.put(class, name));
        }
        assert_eq!(pool.take(2048), None, "a smaller class is not exact");
        assert_eq!(pool.take_within(5120, 10_240), Some((8192, "b")));
        assert_eq!(
            pool.take_within(5120, 10_240),
            None,
            "c is beyond the bound"
        );
        assert_eq!(pool.take_within(4096, 10_240), Some((4096, "a")));
        assert_eq!(pool.free_bytes, 20_480);
    }

    #[test]
    fn the_cap_bounds_the_free_bytes() {
        let mut pool = BufferPool::new(10_000);
        assert!(pool.put(8192, 1));
        assert!(!pool.put(4096, 2), "over the cap: the caller lets it go");
        assert!(pool.put(1024, 3));
        assert_eq!(pool.pop_any().map(|(class, _)| class), Some(1024));
        assert_eq!(pool.pop_any(), Some((8192, 1)));
        assert_eq!((pool.pop_any(), pool.free_bytes), (None, 0));
        pool.keep_at_least(5000);
        assert_eq!(pool.cap, 10_000, "a lower bound leaves the cap");
        pool.keep_at_least(20_000);
        assert!(pool.put(8192, 1) && pool.put(8192, 2));
        assert!(!pool.put(8192, 3));
    }
}
