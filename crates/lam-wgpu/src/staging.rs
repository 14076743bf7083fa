//! Staging: the host-visible buffers through which data enters and leaves a
//! device, and the uniform buffers that carry kernel parameters. All of
//! them are reused, so a training loop's steady state — a new batch
//! uploaded every step, the loss read back every step — creates no buffer.
//!
//! - **Uploads** write their data into a *write* staging buffer
//!   (`MAP_WRITE | COPY_SRC`, free ones are kept mapped), unmap it, and
//!   record a copy into the tensor's buffer (a pooled one) on the pending
//!   encoder. After the batch is submitted the staging buffer is mapped
//!   again, which completes only once the GPU has finished that batch; then
//!   it is free for the next upload of its size class.
//! - **Kernel parameters** are written into write staging buffers too, the
//!   batch's arenas, and copied into uniform buffers by a command buffer of
//!   their own at the head of the batch's submit. The uniform buffers are
//!   free again as soon as that submit is made.
//! - **Readbacks** copy into a *read* staging buffer (`MAP_READ |
//!   COPY_DST`), free again once the readback has read it (it waits).
//!
//! Why this is safe with the lazy queue, where a buffer handed back may
//! still be used by recorded work:
//!
//! - An upload's destination is written by a copy recorded on the pending
//!   encoder, after every use of that buffer already recorded — by a kernel
//!   of a tensor since dropped, say — and before every later one; queue
//!   order is execution order (wgpu puts the barriers between). Nothing is
//!   written with `queue.write_buffer`, which would run at the start of the
//!   next submit, before the recorded work that still reads the old data.
//! - A write staging buffer is written only while mapped, and it is mapped
//!   only while no recorded or running command uses it: it is unmapped
//!   before the submit that reads it, and mapped again only by `map_async`,
//!   which waits for that submit to finish.
//! - A uniform buffer is written only by the copy at the head of a submit;
//!   every earlier reader is in an earlier submit.
//! - A read staging buffer is reused only after its readback has waited for
//!   the copy into it and read it.
//!
//! Memory stays bounded when a program uploads far ahead of the GPU: write
//! staging buffers — free, in the pending batch, or on their way back — add
//! up to at most [`WRITE_STAGING_BYTES`] (`GpuOptions::max_upload_staging`
//! sets another budget). An upload that would need more
//! submits the pending batch, waits for the GPU to hand its buffers back,
//! and lets free buffers of other sizes go; only an upload larger than the
//! whole budget gets a buffer beyond it, released after its one use. Free
//! read staging buffers are kept up to the tensor pool's cap.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};

use lam_core::{Error, Result};

use crate::context::{Gpu, State};
use crate::pool::{size_class, BufferPool};

/// Bytes of write staging a device keeps at most unless told otherwise
/// (see the module docs).
pub(crate) const WRITE_STAGING_BYTES: u64 = 64 << 20;

/// Bytes of each kernel-parameter arena.
pub(crate) const ARENA_BYTES: u64 = 64 << 10;

const WRITE_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_WRITE.union(wgpu::BufferUsages::COPY_SRC);
const READ_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);
const UNIFORM_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);

/// The staging buffers of one device (inside its lock).
pub(crate) struct Staging {
    /// Bytes of write staging kept at most.
    budget: u64,
    /// Write staging buffers that are mapped and free, by size class.
    writable: BufferPool,
    /// Bytes of all write staging buffers: free, in the pending batch, or
    /// submitted and not yet mapped again.
    write_bytes: u64,
    /// Bytes of write staging submitted and not yet mapped again.
    returning: u64,
    /// Where `map_async` callbacks send write staging buffers back.
    back_tx: Sender<Returned>,
    back_rx: Receiver<Returned>,
    /// Read staging buffers, idle and unmapped, by size class.
    readable: BufferPool,
    /// Uniform buffers for kernel-parameter arenas, idle.
    uniforms: Vec<wgpu::Buffer>,
}

/// A write staging buffer whose mapping has completed (or failed).
struct Returned {
    class: u64,
    buffer: wgpu::Buffer,
    mapped: bool,
}

/// Write staging the pending batch holds: upload sources and arenas.
#[derive(Default)]
pub(crate) struct BatchStaging {
    /// Upload sources, unmapped, with their classes.
    uploads: Vec<(u64, wgpu::Buffer)>,
    /// Kernel-parameter arenas; the last one is being filled.
    pub arenas: Vec<Arena>,
}

/// Kernel parameters of one batch: written into `staging` (mapped) while
/// dispatches are recorded, copied into `uniform` (which the dispatches
/// bind) at the head of the batch's submit.
pub(crate) struct Arena {
    pub staging: wgpu::Buffer,
    pub uniform: wgpu::Buffer,
    /// Bytes written so far.
    pub used: u64,
}

impl Staging {
    /// Empty staging that keeps at most `budget` bytes of write staging,
    /// for a device whose tensor pool keeps `pool_cap` bytes.
    pub(crate) fn new(budget: u64, pool_cap: u64) -> Staging {
        let (back_tx, back_rx) = channel();
        Staging {
            budget,
            writable: BufferPool::new(budget),
            write_bytes: 0,
            returning: 0,
            back_tx,
            back_rx,
            readable: BufferPool::new(pool_cap),
            uniforms: Vec::new(),
        }
    }
}

impl Gpu {
    /// Copies `data` into the start of `dst` after all recorded work and
    /// before all later work, through a write staging buffer (see the
    /// module docs).
    pub(crate) fn write(&self, op: &'static str, dst: &wgpu::Buffer, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_fault()?;
        let len = data.len() as u64;
        let class = size_class(len, self.limits.max_buffer);
        let mut state = self.lock();
        let staging = self.writable(&mut state, op, class)?;
        let written = staging
            .slice(..len)
            .get_mapped_range_mut()
            .map(|mut view| view.copy_from_slice(data));
        if let Err(e) = written {
            self.forget_write(&mut state, class);
            return Err(Error::Device(format!(
                "{op}: writing a staging buffer failed: {e}"
            )));
        }
        staging.unmap();
        self.record_copy(&mut state, &staging, 0, dst, 0, len);
        state.pending.staging.uploads.push((class, staging));
        Ok(())
    }

    /// A mapped write staging buffer of `class` bytes for the pending batch
    /// (the caller adds it to `state.pending.staging`): a free one, or a
    /// new one within the budget — submitting the batch,
    /// waiting for the GPU and letting free buffers of other sizes go to
    /// stay within it.
    fn writable(&self, state: &mut State, op: &'static str, class: u64) -> Result<wgpu::Buffer> {
        self.receive(state);
        if let Some(buf) = state.staging.writable.take(class) {
            self.counters.hit();
            return Ok(buf);
        }
        if state.staging.write_bytes + class > state.staging.budget {
            let batch = &state.pending.staging;
            if !batch.uploads.is_empty() || !batch.arenas.is_empty() {
                self.submit_locked(state)?;
            }
            if state.staging.returning > 0 {
                if let Some(index) = state.last_submit.clone() {
                    self.wait(state, index)?;
                }
                self.receive(state);
                if let Some(buf) = state.staging.writable.take(class) {
                    self.counters.hit();
                    return Ok(buf);
                }
            }
            while state.staging.write_bytes + class > state.staging.budget {
                let Some((other, buf)) = state.staging.writable.pop_any() else {
                    break; // larger than the whole budget: a one-off buffer
                };
                drop(buf);
                self.forget_write(state, other);
            }
        }
        let buf = self.create_buffer(state, op, class, WRITE_USAGE, true)?;
        state.staging.write_bytes += class;
        self.counters
            .bytes_pooled
            .fetch_add(class, Ordering::Relaxed);
        Ok(buf)
    }

    /// Starts a new kernel-parameter arena for the pending batch.
    pub(crate) fn new_arena(&self, state: &mut State) -> Result<()> {
        // May submit the batch first (see `Gpu::writable`), so the arena is
        // pushed only after it.
        let staging = self.writable(state, "params", ARENA_BYTES)?;
        let uniform = match self.uniform(state) {
            Ok(uniform) => uniform,
            Err(e) => {
                self.forget_write(state, ARENA_BYTES);
                return Err(e);
            }
        };
        state.pending.staging.arenas.push(Arena {
            staging,
            uniform,
            used: 0,
        });
        Ok(())
    }

    /// A uniform buffer of [`ARENA_BYTES`] for a kernel-parameter arena.
    fn uniform(&self, state: &mut State) -> Result<wgpu::Buffer> {
        if let Some(buf) = state.staging.uniforms.pop() {
            self.counters.hit();
            return Ok(buf);
        }
        let buf = self.create_buffer(state, "params", ARENA_BYTES, UNIFORM_USAGE, false)?;
        self.counters
            .bytes_pooled
            .fetch_add(ARENA_BYTES, Ordering::Relaxed);
        Ok(buf)
    }

    /// Records, on a command buffer of its own, the copies of `arenas`'
    /// parameters into their uniform buffers, unmapping the staging: the
    /// command buffer to submit ahead of the batch's.
    pub(crate) fn arena_copies(&self, arenas: &[Arena]) -> Option<wgpu::CommandBuffer> {
        if arenas.is_empty() {
            return None;
        }
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("lam params"),
            });
        for arena in arenas {
            arena.staging.unmap();
            encoder.copy_buffer_to_buffer(&arena.staging, 0, &arena.uniform, 0, arena.used);
        }
        Some(encoder.finish())
    }

    /// After a submit: maps the batch's write staging again (each comes
    /// back once the GPU has finished the submit) and frees its uniforms.
    pub(crate) fn recycle(&self, state: &mut State, batch: BatchStaging) {
        let mut sources = batch.uploads;
        for arena in batch.arenas {
            state.staging.uniforms.push(arena.uniform);
            sources.push((ARENA_BYTES, arena.staging));
        }
        for (class, buffer) in sources {
            state.staging.returning += class;
            let tx = state.staging.back_tx.clone();
            let back = buffer.clone();
            buffer.map_async(wgpu::MapMode::Write, .., move |r| {
                // The receiver lives as long as the device; once it is gone
                // the buffer is not wanted.
                let _ = tx.send(Returned {
                    class,
                    buffer: back,
                    mapped: r.is_ok(),
                });
            });
        }
    }

    /// A read staging buffer of `class` bytes, idle: a free one or a new one.
    pub(crate) fn readable(&self, state: &mut State, class: u64) -> Result<wgpu::Buffer> {
        if let Some(buf) = state.staging.readable.take(class) {
            self.counters.hit();
            return Ok(buf);
        }
        let buf = self.create_buffer(state, "read", class, READ_USAGE, false)?;
        self.counters
            .bytes_pooled
            .fetch_add(class, Ordering::Relaxed);
        Ok(buf)
    }

    /// Hands back a read staging buffer once its readback is done with it.
    pub(crate) fn give_readable(&self, state: &mut State, class: u64, buf: wgpu::Buffer) {
        if !state.staging.readable.put(class, buf) {
            self.forget_read(class);
        }
    }

    /// Moves write staging buffers whose mapping completed to the free ones.
    fn receive(&self, state: &mut State) {
        while let Ok(back) = state.staging.back_rx.try_recv() {
            state.staging.returning -= back.class;
            if !back.mapped || !state.staging.writable.put(back.class, back.buffer) {
                self.forget_write(state, back.class);
            }
        }
    }

    /// Stops counting a read staging buffer of `class` bytes that is let go.
    pub(crate) fn forget_read(&self, class: u64) {
        self.counters
            .bytes_pooled
            .fetch_sub(class, Ordering::Relaxed);
    }

    /// Stops counting a write staging buffer of `class` bytes that is let go.
    fn forget_write(&self, state: &mut State, class: u64) {
        state.staging.write_bytes -= class;
        self.counters
            .bytes_pooled
            .fetch_sub(class, Ordering::Relaxed);
    }
}
