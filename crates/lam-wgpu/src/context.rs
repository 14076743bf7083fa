//! [`Gpu`]: everything one wgpu device owns — the device and queue, the
//! effective limits, the buffer pool and staging buffers, the pending
//! command encoder, the
//! kernel timer (timestamp queries, for the profiler), the pipeline cache,
//! counters, the index-fault words kernels write (`fault.rs`), and the
//! sticky fault that a lost device leaves.
//!
//! Tensors' storages hold an `Arc<Gpu>`, so a device stays alive while any of
//! its tensors does.
//!
//! Every call into wgpu for a device happens under its one `state` lock.
//! wgpu is thread-safe, but its GL backend makes one EGL context current per
//! call with a lock that panics after a few seconds of contention (and a
//! readback wait holds it); serialising in lam makes concurrent use of one
//! device from many threads (e.g. parallel tests) safe on every backend, and
//! costs nothing since a device has one queue anyway. Code holding the lock
//! must not drop a [`crate::GpuStorage`] (its drop takes the lock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lam_core::{DeviceStats, Error, Result};

use crate::pipeline::PipelineCache;
use crate::pool::BufferPool;
use crate::queue::Pending;
use crate::staging::Staging;
use crate::timing::KernelTimer;

/// Limits lam enforces, from the adapter's own limits (and test overrides).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GpuLimits {
    /// Largest buffer a kernel may bind as storage, in bytes.
    pub max_binding: u64,
    /// Largest buffer the device can create, in bytes.
    pub max_buffer: u64,
    /// Alignment of uniform-buffer binding offsets.
    pub uniform_align: u64,
    /// Bytes of upload staging buffers kept at most (see `staging.rs`).
    pub upload_staging: u64,
    /// Storage buffers one kernel may bind.
    pub storage_buffers: u32,
    /// Bytes of free tensor buffers (and of free read staging buffers)
    /// kept at most (see `pool.rs`).
    pub pool: u64,
}

/// Counters behind [`DeviceStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub submits: AtomicU64,
    pub dispatches: AtomicU64,
    pub buffers_allocated: AtomicU64,
    pub pool_hits: AtomicU64,
    pub bytes_live: AtomicU64,
    /// The most `bytes_live` has been since the device was made or since
    /// the last [`Gpu::reset_peak`].
    pub bytes_live_peak: AtomicU64,
    pub bytes_pooled: AtomicU64,
}

impl Counters {
    /// A buffer request was served by a free buffer.
    pub fn hit(&self) {
        self.pool_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// A free tensor buffer of `class` bytes left the pool for a tensor.
    pub fn reused(&self, class: u64) {
        self.hit();
        self.bytes_pooled.fetch_sub(class, Ordering::Relaxed);
    }

    /// A tensor took a buffer of `class` bytes.
    /// Returns the bytes live now.
    pub fn lives(&self, class: u64) -> u64 {
        let live = self.bytes_live.fetch_add(class, Ordering::Relaxed) + class;
        self.bytes_live_peak.fetch_max(live, Ordering::Relaxed);
        live
    }
}

/// One wgpu device and the state lam keeps beside it.
pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: GpuLimits,
    /// The device lock: recorded work and the buffer pool.
    pub state: Mutex<State>,
    pub pipelines: PipelineCache,
    pub counters: Counters,
    /// Set once the device is lost; every later call fails with it.
    fault: Arc<Mutex<Option<String>>>,
    /// Errors wgpu reported outside any error scope, drained at each sync.
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// What the matmul kernels may use and what autotuning chose.
    pub matmul: crate::ops::matmul::MatmulState,
    /// Which calls the fused attention kernels take.
    pub attention: crate::AttentionKernel,
    /// A 16-byte buffer for kernel bindings a variant never touches.
    pub scratch: wgpu::Buffer,
    /// Where index kernels record an out-of-range index (see `fault.rs`).
    pub range_faults: wgpu::Buffer,
    /// The instance the device came from, kept alive with it (each device
    /// has its own; see `device.rs`).
    _instance: wgpu::Instance,
}

/// What the device lock guards.
pub(crate) struct State {
    pub pending: Pending,
    pub pool: BufferPool,
    pub staging: Staging,
    /// The latest submit, which an upload waits for when too much staging
    /// is on its way back.
    pub last_submit: Option<wgpu::SubmissionIndex>,
    /// GPU time per kernel; `None` where the device lacks timestamp queries.
    pub timer: Option<KernelTimer>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Gpu {
    /// Wraps a freshly created device. wgpu's default for errors outside a
    /// scope is to panic; lam records them instead and returns them from
    /// the next call that waits on the device. `timestamps` says whether the
    /// device was opened with [`crate::timing::FEATURES`].
    /// The device with `attention` as its choice of attention kernels.
    pub(crate) fn with_attention(mut self, attention: crate::AttentionKernel) -> Gpu {
        self.attention = attention;
        self
    }

    /// The device compiling its kernels with `checks`.
    pub(crate) fn with_shader_checks(mut self, checks: crate::ShaderChecks) -> Gpu {
        self.pipelines.checks = checks;
        self
    }

    pub(crate) fn new(
        instance: wgpu::Instance,
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        limits: GpuLimits,
        timestamps: bool,
        matmul: crate::ops::matmul::MatmulState,
    ) -> Gpu {
        let timer = if timestamps {
            KernelTimer::new(&queue)
        } else {
            None
        };
        let fault = Arc::new(Mutex::new(None));
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        {
            let uncaptured = Arc::clone(&uncaptured);
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                lock(&uncaptured).push(e.to_string());
            }));
        }
        {
            let fault = Arc::clone(&fault);
            device.set_device_lost_callback(move |reason, msg| {
                lock(&fault).get_or_insert_with(|| format!("GPU device lost ({reason:?}): {msg}"));
            });
        }
        let scratch = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lam scratch"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let range_faults = crate::fault::fault_buffer(&device);
        Gpu {
            device,
            queue,
            info,
            limits,
            matmul,
            attention: crate::AttentionKernel::default(),
            state: Mutex::new(State {
                pending: Pending::default(),
                pool: BufferPool::new(limits.pool),
                staging: Staging::new(limits.upload_staging, limits.pool),
                last_submit: None,
                timer,
            }),
            pipelines: PipelineCache::default(),
            counters: Counters::default(),
            fault,
            uncaptured,
            scratch,
            range_faults,
            _instance: instance,
        }
    }

    /// Takes the device lock (see the module docs).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// `Err` once the device has been lost: a lost device never comes back.
    pub(crate) fn check_fault(&self) -> Result<()> {
        match lock(&self.fault).as_ref() {
            Some(msg) => Err(Error::Device(msg.clone())),
            None => Ok(()),
        }
    }

    /// Errors wgpu reported outside a scope since the last call, as one error.
    pub(crate) fn take_uncaptured(&self) -> Result<()> {
        let errors = std::mem::take(&mut *lock(&self.uncaptured));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Device(format!(
                "{} reported: {}",
                self.describe(),
                errors.join("; ")
            )))
        }
    }

    /// Records a fatal condition (a poll that failed or timed out).
    pub(crate) fn set_fault(&self, msg: String) {
        lock(&self.fault).get_or_insert(msg);
    }

    /// "vulkan: llvmpipe (...)": the backend and adapter, for names and errors.
    pub(crate) fn describe(&self) -> String {
        format!("{}: {}", self.info.backend.to_str(), self.info.name)
    }

    pub(crate) fn stats(&self) -> DeviceStats {
        let c = &self.counters;
        DeviceStats {
            submits: c.submits.load(Ordering::Relaxed),
            dispatches: c.dispatches.load(Ordering::Relaxed),
            buffers_allocated: c.buffers_allocated.load(Ordering::Relaxed),
            pool_hits: c.pool_hits.load(Ordering::Relaxed),
            bytes_live: c.bytes_live.load(Ordering::Relaxed),
            bytes_live_peak: c.bytes_live_peak.load(Ordering::Relaxed),
            bytes_pooled: c.bytes_pooled.load(Ordering::Relaxed),
        }
    }

    /// Restarts the peak of live bytes from the bytes live now.
    pub(crate) fn reset_peak(&self) {
        let c = &self.counters;
        c.bytes_live_peak
            .store(c.bytes_live.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves
/// its data consistent, and a panic elsewhere must not wedge the device.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Blocks on a wgpu future (they resolve immediately or after a poll on native).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
