//! GPU time per kernel for `lam_core::profile`, from timestamp queries.
//!
//! Ops run lazily, so host time around an op measures only its encoding.
//! When the adapter has `TIMESTAMP_QUERY` and `TIMESTAMP_QUERY_INSIDE_PASSES`
//! and profiling is on, each dispatch is bracketed by two timestamp writes
//! inside lam's one open compute pass. At submit the batch's timestamps are
//! resolved into a buffer and copied to a mappable one; the copy is mapped
//! without waiting, and its times are handed to the profiler the next time
//! the device is polled or waited on (a readback, `synchronize`, the next
//! submit). Nothing here runs while profiling is off.
//!
//! Copies recorded on the encoder itself (uploads, readbacks) are not
//! kernels and are not timed.
//!
//! When the profiler records shapes (`LAM_PROFILE=shapes`), an op can name
//! what its dispatches ran on ([`with_detail`]), and their times are kept
//! apart per name: `matmul_large 16x512x1536x512 a2 b3`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::mpsc;
use std::time::Duration;

use lam_core::profile::{self, Clock};

use crate::queue::SUBMIT_THRESHOLD;

/// Two timestamps per dispatch, for the most dispatches one submit holds.
const QUERIES: u32 = 2 * SUBMIT_THRESHOLD as u32;

/// Bytes of one resolved timestamp.
const QUERY_BYTES: u64 = wgpu::QUERY_SIZE as u64;

/// The features kernel timing needs; requested only where the adapter has them.
pub(crate) const FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

thread_local! {
    // What the dispatches recorded on this thread ran on, while an op's
    // `with_detail` runs; `None` otherwise.
    static DETAIL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, whose dispatches are profiled as `kernel detail` when the
/// profiler records shapes; `detail` is only called then.
pub(crate) fn with_detail<T>(detail: impl FnOnce() -> String, f: impl FnOnce() -> T) -> T {
    if !profile::records_shapes() {
        return f();
    }
    let previous = DETAIL.with(|d| d.replace(Some(detail())));
    let out = f();
    DETAIL.with(|d| *d.borrow_mut() = previous);
    out
}

/// The timestamp state of one device (inside its lock).
pub(crate) struct KernelTimer {
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
    /// Created on first use, reused by every batch: a batch's resolve is
    /// recorded before the next batch's writes, and the queue keeps order.
    queries: Option<wgpu::QuerySet>,
    /// The kernel of each timed dispatch of the open batch, in order:
    /// dispatch `i` wrote queries `2i` and `2i + 1`.
    batch: Vec<Cow<'static, str>>,
    /// Submitted batches whose timestamps are on their way back.
    in_flight: Vec<InFlight>,
}

/// A batch resolved into `readback`, waiting for its mapping.
struct InFlight {
    readback: wgpu::Buffer,
    kernels: Vec<Cow<'static, str>>,
    mapped: Option<mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>>,
}

impl KernelTimer {
    /// A timer for a device opened with [`FEATURES`], or `None` when the
    /// queue reports no timestamp period.
    pub(crate) fn new(queue: &wgpu::Queue) -> Option<KernelTimer> {
        let period = queue.get_timestamp_period();
        (period > 0.0).then(|| KernelTimer {
            period_ns: f64::from(period),
            queries: None,
            batch: Vec::new(),
            in_flight: Vec::new(),
        })
    }

    /// Writes the begin timestamp of a dispatch of `kernel` into `pass`, if
    /// profiling is on; returns the dispatch's slot for [`KernelTimer::end`].
    pub(crate) fn begin(
        &mut self,
        device: &wgpu::Device,
        pass: &mut wgpu::ComputePass<'static>,
        kernel: &'static str,
    ) -> Option<u32> {
        if !profile::is_enabled() {
            return None;
        }
        let slot = u32::try_from(self.batch.len()).ok()?;
        if 2 * slot + 2 > QUERIES {
            return None;
        }
        let queries = self.queries.get_or_insert_with(|| {
            device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("lam kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES,
            })
        });
        pass.write_timestamp(queries, 2 * slot);
        let label = match DETAIL.with(|d| d.borrow().clone()) {
            Some(detail) => Cow::Owned(format!("{kernel} {detail}")),
            None => Cow::Borrowed(kernel),
        };
        self.batch.push(label);
        Some(slot)
    }

    /// Writes the end timestamp of the dispatch in `slot`.
    pub(crate) fn end(&self, pass: &mut wgpu::ComputePass<'static>, slot: u32) {
        if let Some(queries) = &self.queries {
            pass.write_timestamp(queries, 2 * slot + 1);
        }
    }

    /// Records, on `encoder` (whose pass has ended), the resolve and copy of
    /// the open batch's timestamps; call [`KernelTimer::submitted`] after
    /// submitting it.
    pub(crate) fn resolve(&mut self, device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder) {
        let Some(queries) = &self.queries else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        let count = 2 * self.batch.len() as u32;
        let bytes = u64::from(count) * QUERY_BYTES;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lam timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lam timestamps read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.resolve_query_set(queries, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
        self.in_flight.push(InFlight {
            readback,
            kernels: std::mem::take(&mut self.batch),
            mapped: None,
        });
    }

    /// Starts mapping the batches resolved into the submit just made.
    pub(crate) fn submitted(&mut self) {
        for batch in self.in_flight.iter_mut().filter(|b| b.mapped.is_none()) {
            let (tx, rx) = mpsc::channel();
            batch
                .readback
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |r| {
                    // The receiver lives in `in_flight`; if it is gone the
                    // times are no longer wanted.
                    let _ = tx.send(r);
                });
            batch.mapped = Some(rx);
        }
    }

    /// Hands every batch whose mapping has completed to the profiler as
    /// time per kernel on `device`; keeps the rest for a later poll.
    pub(crate) fn harvest(&mut self, device: &str) {
        self.in_flight.retain(|batch| {
            let Some(mapped) = &batch.mapped else {
                return true;
            };
            match mapped.try_recv() {
                Err(mpsc::TryRecvError::Empty) => true,
                Ok(Ok(())) => {
                    record(device, batch, self.period_ns);
                    false
                }
                // A failed mapping (lost device) loses only these times.
                Ok(Err(_)) | Err(mpsc::TryRecvError::Disconnected) => false,
            }
        });
    }
}

/// Reads a mapped batch and records each dispatch's `end - begin`.
fn record(device: &str, batch: &InFlight, period_ns: f64) {
    if let Ok(view) = batch.readback.slice(..).get_mapped_range() {
        let ticks: Vec<u64> = view
            .chunks_exact(QUERY_BYTES as usize)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        drop(view);
        for (kernel, pair) in batch.kernels.iter().zip(ticks.chunks_exact(2)) {
            // Some drivers' counters are not monotonic across a barrier; a
            // negative span counts as zero rather than as a wrapped u64.
            let ns = pair[1].saturating_sub(pair[0]) as f64 * period_ns;
            profile::record(device, Clock::Gpu, kernel, Duration::from_nanos(ns as u64));
        }
    }
    batch.readback.unmap();
}
