//! The lazy queue: every op records its dispatch into one pending command
//! encoder (inside one open compute pass where possible) and returns at once.
//! Nothing is submitted until data is read back, `synchronize` is called, or
//! [`SUBMIT_THRESHOLD`] dispatches have piled up, so a training step costs
//! one submit and the GPU never waits for the host between kernels.
//!
//! Kernel parameters go into a uniform "arena": a buffer mapped at creation
//! whose slots are written as dispatches are recorded and which is unmapped
//! just before the submit. This keeps parameter uploads in recording order;
//! `queue.write_buffer` would not (it runs before the whole submit).
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

/// Dispatches recorded before the encoder is submitted without being asked.
pub(crate) const SUBMIT_THRESHOLD: usize = 512;

/// Bytes of each uniform arena buffer.
const ARENA_BYTES: u64 = 64 << 10;

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
    /// Mapped uniform buffers of this batch: the last one is being filled.
    arenas: Vec<wgpu::Buffer>,
    arena_used: u64,
}

impl Gpu {
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
        if grid.contains(&0) {
            return Ok(());
        }
        let mut state = self.lock();
        let pipeline = self.pipelines.get(&self.device, kernel, constants)?;
        let (arena, offset) = self.param_slot(&mut state, params)?;
        let size = NonZeroU64::new(params.len() as u64)
            .ok_or_else(|| Error::Device(format!("{}: empty parameter block", kernel.entry)))?;
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
    /// of the index-fault words into one staging buffer, waits, and returns
    /// the copied data, or the recorded fault as an error (clearing it).
    fn fetch(&self, src: Option<(&wgpu::Buffer, u64, u64)>) -> Result<Vec<u8>> {
        let bytes = src.map_or(0, |(_, _, bytes)| bytes);
        let mut state = self.lock();
        let staging = self.create_buffer(
            &state,
            "read",
            bytes + FAULT_BYTES,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        state.pending.pass = None;
        let encoder = self.encoder(&mut state.pending);
        if let Some((src, offset, bytes)) = src {
            encoder.copy_buffer_to_buffer(src, offset, &staging, 0, bytes);
        }
        encoder.copy_buffer_to_buffer(&self.range_faults, 0, &staging, bytes, FAULT_BYTES);
        let index = self.submit_locked(&mut state)?;
        let (tx, rx) = mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            // The receiver outlives the wait below; a failed send is moot.
            let _ = tx.send(r);
        });
        self.wait(&state, index)?;
        self.harvest_times(&mut state);
        // The callback normally ran inside that wait; poll again if not.
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
        let mut data = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| {
                Error::Device(format!(
                    "{}: reading a mapped buffer failed: {e}",
                    self.describe()
                ))
            })?
            .to_vec();
        staging.unmap();
        let faults = data.split_off(bytes as usize);
        let fault = fault::decode(&faults);
        if fault.is_err() {
            // Still under the lock, with all recorded work done: the clear
            // runs before the next submit's commands, so a later fault of
            // later work is recorded afresh.
            self.queue
                .write_buffer(&self.range_faults, 0, &[0; FAULT_BYTES as usize]);
        }
        fault.map(|()| data)
    }

    /// Blocks until submission `index` is done, turning a timeout or a lost
    /// device into an error rather than a hang or a panic.
    fn wait(&self, _held: &State, index: wgpu::SubmissionIndex) -> Result<()> {
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

    /// Finishes and submits the pending encoder (possibly empty) in a
    /// validation scope, so an invalid command buffer is an error here.
    fn submit_locked(&self, state: &mut State) -> Result<wgpu::SubmissionIndex> {
        let pending = &mut state.pending;
        pending.pass = None;
        for arena in pending.arenas.drain(..) {
            arena.unmap();
        }
        pending.arena_used = 0;
        pending.dispatches = 0;
        let mut encoder = pending.encoder.take().unwrap_or_else(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("lam") })
        });
        if let Some(timer) = state.timer.as_mut() {
            timer.resolve(&self.device, &mut encoder);
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let index = self.queue.submit([encoder.finish()]);
        self.counters.submits.fetch_add(1, Ordering::Relaxed);
        if let Some(timer) = state.timer.as_mut() {
            timer.submitted();
        }
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

    /// Writes `params` into the arena; returns its buffer and offset.
    fn param_slot(&self, state: &mut State, params: &[u8]) -> Result<(wgpu::Buffer, u64)> {
        let align = self.limits.uniform_align.max(16);
        let size = (params.len() as u64).next_multiple_of(align);
        if state.pending.arenas.is_empty() || state.pending.arena_used + size > ARENA_BYTES {
            let arena = self.create_buffer(
                state,
                "params",
                ARENA_BYTES,
                wgpu::BufferUsages::UNIFORM,
                true,
            )?;
            state.pending.arenas.push(arena);
            state.pending.arena_used = 0;
        }
        let pending = &mut state.pending;
        let offset = pending.arena_used;
        let arena = pending
            .arenas
            .last()
            .ok_or_else(|| Error::Device("params: no uniform arena".into()))?
            .clone();
        arena
            .slice(offset..offset + params.len() as u64)
            .get_mapped_range_mut()
            .map_err(|e| Error::Device(format!("params: writing the uniform arena failed: {e}")))?
            .copy_from_slice(params);
        pending.arena_used += size;
        Ok((arena, offset))
    }
}
