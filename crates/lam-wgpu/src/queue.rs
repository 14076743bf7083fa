//! The lazy queue: every op records its dispatch into one pending command
//! encoder (inside one open compute pass where possible) and returns at once.
//! Nothing is submitted until data is read back, `synchronize` is called, or
//! [`SUBMIT_THRESHOLD`] dispatches have piled up, so a training step costs
//! one submit and the GPU never waits for the host between kernels.
//!
//! Kernel parameters go into an "arena": a mapped staging buffer whose
//! slots are written as dispatches are recorded, copied into the uniform
//! buffer the dispatches bind by a command buffer submitted just ahead of
//! the batch's (`staging.rs`). This keeps parameter uploads in recording
//! order; `queue.write_buffer` would not (it runs before the whole submit).
//! Uploads of tensor data are copies recorded on the pending encoder, in
//! order with the dispatches around them.
//!
//! Every readback and `synchronize` also copies the device's index-fault
//! words in the same submit and reports a recorded fault (see `fault.rs`).
//!
//! While profiling is on, each dispatch is also bracketed by timestamp
//! writes where the device supports them (see `timing.rs`).

use std::num::NonZeroU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use lam_core::{Error, Result};

use crate::context::{block_on, Gpu, State};
use crate::fault::{self, FAULT_BYTES};
use crate::kernels::Kernel;
use crate::pool::size_class;
use crate::staging::{BatchStaging, ARENA_BYTES};

/// Dispatches recorded before the encoder is submitted without being asked.
pub(crate) const SUBMIT_THRESHOLD: usize = 512;

/// How long a readback waits for the GPU before declaring the device hung.
const WAIT_TIMEOUT: Duration = Duration::from_secs(600);

/// One wait of the loop that makes up [`WAIT_TIMEOUT`]. Short, because
/// wgpu's GL backend caps a single wait at about 4 s and holds its context
/// lock throughout it.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// Work recorded but not yet submitted.
#[derive(Default)]
pub(crate) struct Pending {
    /// The open compute pass; it borrows `encoder` logically (wgpu locks the
    /// encoder while a pass is open), so it is dropped before any encoder
    /// use, and declared first so that it is also dropped first.
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
    /// The staging buffers this batch writes: uploads and parameter arenas.
    pub staging: BatchStaging,
}

impl Gpu {
    /// Whether this device lets every one of `kernels` bind its storage
    /// buffers. The fused ops whose kernels it does not are declined, and
    /// lam-core composes them from kernels that bind at most four.
    pub(crate) fn binds(&self, kernels: &[Kernel]) -> bool {
        let most = self.limits.storage_buffers as usize;
        kernels.iter().all(|k| k.bindings.len() <= most)
    }

    /// Records one dispatch of `kernel` with `constants`, the uniform block
    /// `params` at binding 0 and `buffers` at the kernel's storage bindings.
    pub(crate) fn dispatch(
        &self,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        grid: [u32; 3],
    ) -> Result<()> {
        self.check_fault()?;
        debug_assert_eq!(buffers.len(), kernel.bindings.len());
        if !self.binds(&[kernel]) {
            return Err(Error::Device(format!(
                "{}: the kernel binds {} storage buffers, {} allows {}",
                kernel.entry,
                kernel.bindings.len(),
                self.describe(),
                self.limits.storage_buffers
            )));
        }
        if grid.contains(&0) {
            return Ok(());
        }
        let size = NonZeroU64::new(params.len() as u64)
            .ok_or_else(|| Error::Device(format!("{}: empty parameter block", kernel.entry)))?;
        let mut state = self.lock();
        let pipeline = self.pipelines.get(&self.device, kernel, constants)?;
        let (arena, offset) = self.param_slot(&mut state, params)?;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &arena,
                offset,
                size: Some(size),
            }),
        }];
        for (&(binding, _), buf) in kernel.bindings.iter().zip(buffers) {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: buf.as_entire_binding(),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.layout,
            entries: &entries,
        });
        let held = &mut *state;
        let pass = self.open_pass(&mut held.pending);
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        let timed = held
            .timer
            .as_mut()
            .and_then(|t| t.begin(&self.device, pass, kernel.entry));
        pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        if let (Some(timer), Some(slot)) = (&held.timer, timed) {
            timer.end(pass, slot);
        }
        drop(bind_group); // the pass keeps it alive; dropped here, under the lock
        state.pending.dispatches += 1;
        self.counters.dispatches.fetch_add(1, Ordering::Relaxed);
        if state.pending.dispatches >= SUBMIT_THRESHOLD {
            self.submit_locked(&mut state)?;
        }
        Ok(())
    }

    /// Submits all recorded work and waits until the device has finished it;
    /// an index fault recorded since the last readback is returned here.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.check_fault()?;
        self.fetch(None).map(drop)
    }

    /// Copies `bytes` bytes at `offset` of `src` back to the host, after all
    /// recorded work (one submit and one wait), or returns the index fault
    /// that work recorded.
    pub(crate) fn read_back(&self, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        self.fetch(Some((src, offset, bytes)))
    }

    /// Submits all recorded work plus copies of `src`'s range (if any) and
    /// of the index-fault words into read staging buffers, waits, and
    /// returns the copied data, or the recorded fault as an error (clearing
    /// it).
    fn fetch(&self, src: Option<(&wgpu::Buffer, u64, u64)>) -> Result<Vec<u8>> {
        let bytes = src.map_or(0, |(_, _, bytes)| bytes);
        let mut state = self.lock();
        let data_class = size_class(bytes, self.limits.max_buffer);
        let data = match src {
            Some(_) => Some(self.readable(&mut state, data_class)?),
            None => None,
        };
        let faults = match self.readable(&mut state, FAULT_BYTES) {
            Ok(buf) => buf,
            Err(e) => {
                if let Some(buf) = data {
                    self.give_readable(&mut state, data_class, buf);
                }
                return Err(e);
            }
        };
        let result = self.fetch_into(&mut state, src, data.as_ref(), &faults);
        // Buffers whose readback failed may still be mapped or mapping: they
        // are let go rather than reused.
        let reuse = !matches!(result, Err(Error::Device(_)));
        for (class, buf) in [(FAULT_BYTES, Some(faults)), (data_class, data)] {
            match buf {
                Some(buf) if reuse => self.give_readable(&mut state, class, buf),
                Some(_) => self.forget_read(class),
                None => {}
            }
        }
        result
    }

    /// [`Gpu::fetch`] with its staging buffers: `data` for `src`'s range,
    /// `faults` for the index-fault words. Both are unmapped on return
    /// unless a device error is returned.
    fn fetch_into(
        &self,
        state: &mut State,
        src: Option<(&wgpu::Buffer, u64, u64)>,
        data: Option<&wgpu::Buffer>,
        faults: &wgpu::Buffer,
    ) -> Result<Vec<u8>> {
        let copied = match (src, data) {
            (Some((src, offset, bytes)), Some(data)) => {
                self.record_copy(state, src, offset, data, 0, bytes);
                Some(data.slice(..bytes))
            }
            _ => None,
        };
        self.record_copy(state, &self.range_faults, 0, faults, 0, FAULT_BYTES);
        let index = self.submit_locked(state)?;
        let slices: Vec<wgpu::BufferSlice<'_>> =
            copied.into_iter().chain([faults.slice(..)]).collect();
        self.map_read(state, index, &slices)?;
        self.harvest_times(state);
        let read = |slice: &wgpu::BufferSlice<'_>| {
            slice.get_mapped_range().map(|v| v.to_vec()).map_err(|e| {
                Error::Device(format!(
                    "{}: reading a mapped buffer failed: {e}",
                    self.describe()
                ))
            })
        };
        let words = read(&faults.slice(..))?;
        let out = match copied {
            Some(slice) => read(&slice)?,
            None => Vec::new(),
        };
        if let Some(data) = data {
            data.unmap();
        }
        faults.unmap();
        let fault = fault::decode(&words);
        if fault.is_err() {
            // Still under the lock, with all recorded work done: the clear
            // runs before the next submit's commands, so a later fault of
            // later work is recorded afresh.
            self.queue
                .write_buffer(&self.range_faults, 0, &[0; FAULT_BYTES as usize]);
        }
        fault.map(|()| out)
    }

    /// Maps `slices` for reading once submission `index` is done, and waits
    /// for that.
    fn map_read(
        &self,
        state: &State,
        index: wgpu::SubmissionIndex,
        slices: &[wgpu::BufferSlice<'_>],
    ) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        for slice in slices {
            let tx = tx.clone();
            slice.map_async(wgpu::MapMode::Read, move |r| {
                // The receiver outlives the wait below; a failed send is moot.
                let _ = tx.send(r);
            });
        }
        drop(tx);
        self.wait(state, index)?;
        for _ in slices {
            // The callbacks normally ran inside that wait; poll again if not.
            let mapped = match rx.try_recv() {
                Ok(r) => Some(r),
                Err(_) => {
                    let _ = self.device.poll(wgpu::PollType::Wait {
                        submission_index: None,
                        timeout: Some(Duration::from_secs(5)),
                    });
                    rx.recv_timeout(Duration::from_secs(5)).ok()
                }
            };
            match mapped {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    return Err(Error::Device(format!(
                        "{}: mapping a readback failed: {e}",
                        self.describe()
                    )));
                }
                None => {
                    return Err(Error::Device(format!(
                        "{}: a readback mapping never completed",
                        self.describe()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Blocks until submission `index` is done, turning a timeout or a lost
    /// device into an error rather than a hang or a panic.
    pub(crate) fn wait(&self, _held: &State, index: wgpu::SubmissionIndex) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            let polled = self.device.poll(wgpu::PollType::Wait {
                submission_index: Some(index.clone()),
                timeout: Some(WAIT_SLICE),
            });
            match polled {
                Ok(_) => break,
                Err(wgpu::PollError::Timeout) if start.elapsed() < WAIT_TIMEOUT => {
                    self.check_fault()?;
                }
                Err(e) => {
                    let msg = format!(
                        "{}: waiting for the GPU failed after {:.0?}: {e}",
                        self.describe(),
                        start.elapsed()
                    );
                    self.set_fault(msg.clone());
                    return Err(Error::Device(msg));
                }
            }
        }
        self.check_fault()?;
        self.take_uncaptured()
    }

    /// Finishes and submits the pending encoder (possibly empty), preceded
    /// by its kernel parameters' copies, in a validation scope, so an
    /// invalid command buffer is an error here. The batch's staging then
    /// goes back to be reused.
    pub(crate) fn submit_locked(&self, state: &mut State) -> Result<wgpu::SubmissionIndex> {
        let pending = &mut state.pending;
        pending.pass = None;
        pending.dispatches = 0;
        let batch = std::mem::take(&mut pending.staging);
        let mut encoder = pending.encoder.take().unwrap_or_else(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("lam") })
        });
        if let Some(timer) = state.timer.as_mut() {
            timer.resolve(&self.device, &mut encoder);
        }
        let params = self.arena_copies(&batch.arenas);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let index = self
            .queue
            .submit(params.into_iter().chain([encoder.finish()]));
        self.counters.submits.fetch_add(1, Ordering::Relaxed);
        if let Some(timer) = state.timer.as_mut() {
            timer.submitted();
        }
        self.recycle(state, batch);
        state.last_submit = Some(index.clone());
        if let Some(e) = block_on(scope.pop()) {
            return Err(Error::Device(format!(
                "{}: submit failed: {e}",
                self.describe()
            )));
        }
        // Lets wgpu free buffers whose last use has completed, without blocking.
        let _ = self.device.poll(wgpu::PollType::Poll);
        self.harvest_times(state);
        Ok(index)
    }

    /// Hands kernel times whose readback has arrived to the profiler.
    fn harvest_times(&self, state: &mut State) {
        if let Some(timer) = state.timer.as_mut() {
            timer.harvest(&self.describe());
        }
    }

    /// Records a buffer copy on the pending encoder, in order with the
    /// dispatches around it (ending the open compute pass).
    pub(crate) fn record_copy(
        &self,
        state: &mut State,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    ) {
        let pending = &mut state.pending;
        pending.pass = None;
        self.encoder(pending)
            .copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
    }

    fn encoder<'p>(&self, pending: &'p mut Pending) -> &'p mut wgpu::CommandEncoder {
        pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("lam") })
        })
    }

    fn open_pass<'p>(&self, pending: &'p mut Pending) -> &'p mut wgpu::ComputePass<'static> {
        let pass = match pending.pass.take() {
            Some(pass) => pass,
            None => self
                .encoder(pending)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime(),
        };
        pending.pass.insert(pass)
    }

    /// Writes `params` (not empty) into the batch's arena; returns the
    /// uniform buffer to bind and the offset.
    fn param_slot(&self, state: &mut State, params: &[u8]) -> Result<(wgpu::Buffer, u64)> {
        let align = self.limits.uniform_align.max(16);
        let size = (params.len() as u64).next_multiple_of(align);
        let full = (state.pending.staging.arenas.last())
            .is_none_or(|arena| arena.used + size > ARENA_BYTES);
        if full {
            self.new_arena(state)?;
        }
        let arena = state
            .pending
            .staging
            .arenas
            .last_mut()
            .ok_or_else(|| Error::Device("params: no uniform arena".into()))?;
        let offset = arena.used;
        arena
            .staging
            .slice(offset..offset + params.len() as u64)
            .get_mapped_range_mut()
            .map_err(|e| Error::Device(format!("params: writing the uniform arena failed: {e}")))?
            .copy_from_slice(params);
        arena.used += size;
        Ok((arena.uniform.clone(), offset))
    }
}
