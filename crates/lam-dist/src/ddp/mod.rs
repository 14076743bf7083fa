//! [`DistributedDataParallel`]: PyTorch's DDP for lam. Wrap the model on
//! every replica; train as usual (`forward`, loss, `backward`, optimizer
//! step): when `backward` returns, every parameter's gradient is the
//! average over the replicas, bitwise the same everywhere, so identical
//! optimizer steps keep the replicas identical.
//!
//! - **Start:** the replicas' models are checked to have the same names,
//!   shapes and dtypes, then rank 0's parameters and buffers are copied to
//!   every replica.
//! - **Each backward pass:** gradients travel in buckets (`buckets.rs`)
//!   that are summed on the communication thread while backward computes
//!   the rest (`reducer.rs`); see ARCHITECTURE.md for a step's flow.
//! - **Buffers (BatchNorm's running statistics):** as PyTorch's default
//!   `broadcast_buffers=True`, rank 0's buffers are copied to every replica
//!   at the start of each forward pass that records gradients (training),
//!   so rank 0's statistics are the model's. For statistics over the whole
//!   global batch instead, build the model with [`crate::SyncBatchNorm`].
//! - **Names:** the wrapper reports the module's own parameter names (no
//!   `module.` prefix, unlike PyTorch), so checkpoints are interchangeable
//!   with single-process training.
//! - **Unused parameters:** need no flag (PyTorch's
//!   `find_unused_parameters`): the end of backward sends zeros for them,
//!   and a parameter no replica used keeps no gradient.

mod buckets;
mod reducer;
pub(crate) mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lam_core::autograd::HookHandle;
use lam_core::backend::LinearActivation;
use lam_core::nn::{Entry, Module, Visit};
use lam_core::{is_grad_enabled, Error, Result, Tensor};

use crate::comm::Communicator;
use buckets::Buckets;
use reducer::Reducer;
use state::{broadcast_tensors, check_same_model, DEFAULT_PIECE};

/// How [`DistributedDataParallel`] packs and syncs (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdpConfig {
    /// The size of a gradient bucket, in MiB (DDP's `bucket_cap_mb`, 25).
    pub bucket_cap_mb: f64,
    /// The size of the first bucket, in MiB (1, as DDP's
    /// `first_bucket_bytes_cap`): small, so communication starts early.
    pub first_bucket_mb: f64,
    /// Copy rank 0's buffers to every replica at each training forward.
    pub broadcast_buffers: bool,
}

impl Default for DdpConfig {
    fn default() -> Self {
        DdpConfig {
            bucket_cap_mb: 25.0,
            first_bucket_mb: 1.0,
            broadcast_buffers: true,
        }
    }
}

impl DdpConfig {
    /// With buckets of `mb` MiB (the first one too, when smaller).
    pub fn bucket_cap_mb(mut self, mb: f64) -> Self {
        self.bucket_cap_mb = mb;
        self.first_bucket_mb = self.first_bucket_mb.min(mb);
        self
    }

    /// With or without copying rank 0's buffers at each training forward.
    pub fn broadcast_buffers(mut self, on: bool) -> Self {
        self.broadcast_buffers = on;
        self
    }
}

/// What the gradient reduction has cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DdpStats {
    /// Backward passes whose gradients were averaged.
    pub steps: u64,
    /// Buckets per pass.
    pub buckets: usize,
    /// Bytes one replica sends into the sums per pass (gradients and flags).
    pub bytes_per_step: u64,
    /// Buckets queued while backward was still running (from gradient
    /// hooks), over all passes; the rest were queued as backward ended.
    pub buckets_during_backward: u64,
    /// Time the communication thread spent summing buckets (including
    /// waiting for slower replicas to send theirs).
    pub comm: Duration,
    /// Time backward's end waited for buckets: the communication that
    /// computation did not hide.
    pub exposed: Duration,
    /// Time forward passes spent copying rank 0's buffers.
    pub buffer_sync: Duration,
}

impl DdpStats {
    /// The share of the summing time hidden behind backward, in `[0, 1]`
    /// (1 when nothing was summed).
    pub fn hidden_fraction(&self) -> f64 {
        let comm = self.comm.as_secs_f64();
        if comm <= 0.0 {
            return 1.0;
        }
        (1.0 - self.exposed.as_secs_f64() / comm).clamp(0.0, 1.0)
    }
}

/// A model replicated over a group (see the module docs).
pub struct DistributedDataParallel<M: Module> {
    module: M,
    comm: Communicator,
    config: DdpConfig,
    reducer: Arc<Reducer>,
    buffers: Vec<Tensor>,
    _hooks: Hooks,
}

impl<M: Module> DistributedDataParallel<M> {
    /// Wraps `module` on this replica: checks that every replica's model
    /// has the same shape, copies rank 0's state to all, and hooks the
    /// parameters. Every replica calls this at the same point.
    pub fn new(module: M, comm: &Communicator, config: DdpConfig) -> Result<Self> {
        let mb = |v: f64, what: &str| -> Result<usize> {
            if v.is_finite() && v > 0.0 {
                Ok(((v * (1 << 20) as f64) as usize).max(4))
            } else {
                Err(Error::invalid(
                    "DistributedDataParallel",
                    format!("{what} must be a positive number of MiB, found {v}"),
                ))
            }
        };
        let cap = mb(config.bucket_cap_mb, "bucket_cap_mb")?;
        let first_cap = mb(config.first_bucket_mb, "first_bucket_mb")?;
        check_same_model(&module, comm)?;
        let mut params = Vec::new();
        let mut buffers = Vec::new();
        let mut state = Vec::new();
        module.visit("", &mut |_, e| match e {
            Entry::Parameter(t) => {
                params.push(t.clone());
                state.push(t.clone());
            }
            Entry::Buffer(t) => {
                buffers.push(t.clone());
                state.push(t.clone());
            }
            Entry::Mode(_) => {}
        });
        if let Some((i, _)) = params.iter().enumerate().find(|(_, p)| !p.is_leaf()) {
            return Err(Error::invalid(
                "DistributedDataParallel",
                format!("parameter {i} is not a leaf tensor"),
            ));
        }
        broadcast_tensors(&state, comm, 0, DEFAULT_PIECE)?;
        let numels: Vec<usize> = params.iter().map(Tensor::numel).collect();
        let buckets = Buckets::assign(&numels, first_cap, cap);
        let reducer = Arc::new(Reducer::new(comm, params.clone(), buckets));
        let hooks = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let r = Arc::downgrade(&reducer);
                p.register_post_accumulate_grad_hook(move |_| match r.upgrade() {
                    Some(r) => r.on_grad(i),
                    None => Ok(()),
                })
            })
            .collect();
        Ok(DistributedDataParallel {
            module,
            comm: comm.clone(),
            config,
            reducer,
            buffers,
            _hooks: Hooks(hooks),
        })
    }

    /// The wrapped model.
    pub fn module(&self) -> &M {
        &self.module
    }

    /// The wrapped model, its hooks removed (single-replica use again).
    pub fn into_inner(self) -> M {
        // `hooks` drops here, which removes them.
        self.module
    }

    /// The group.
    pub fn communicator(&self) -> &Communicator {
        &self.comm
    }

    /// The configuration.
    pub fn config(&self) -> DdpConfig {
        self.config
    }

    /// Runs `f` without averaging gradients: backward passes inside only
    /// accumulate them locally (PyTorch's `no_sync`, for gradient
    /// accumulation); the next backward outside averages the total.
    pub fn no_sync<T>(&self, f: impl FnOnce() -> T) -> T {
        let before = self.reducer.set_syncing(false);
        let out = f();
        self.reducer.set_syncing(before);
        out
    }

    /// Waits for the gradients of the last backward pass to be averaged.
    /// Backward does this itself as it ends; this is for code that must be
    /// sure, and a no-op otherwise.
    pub fn finish_gradient_sync(&self) -> Result<()> {
        self.reducer.finish()
    }

    /// Copies rank 0's buffers to every replica now.
    pub fn sync_buffers(&self) -> Result<()> {
        let started = Instant::now();
        broadcast_tensors(&self.buffers, &self.comm, 0, DEFAULT_PIECE)?;
        self.reducer.record_buffer_sync(started.elapsed());
        Ok(())
    }

    /// What the reduction has cost so far.
    pub fn stats(&self) -> DdpStats {
        let mut s = self.reducer.stats();
        s.buckets = self.reducer.bucket_count();
        s
    }
}

impl<M: Module> Module for DistributedDataParallel<M> {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.reducer.check_idle()?;
        if self.config.broadcast_buffers && is_grad_enabled() && self.comm.world_size() > 1 {
            self.sync_buffers()?;
        }
        self.module.forward(input)
    }

    fn as_activation(&self) -> Option<LinearActivation> {
        self.module.as_activation()
    }

    fn forward_then(&self, input: &Tensor, act: LinearActivation) -> Option<Result<Tensor>> {
        self.module.forward_then(input, act)
    }
}

impl<M: Module> Visit for DistributedDataParallel<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.module.visit(prefix, f)
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        self.module.children(f)
    }
}

/// The parameters' hooks, removed when the wrapper goes.
struct Hooks(Vec<HookHandle>);

impl Drop for Hooks {
    fn drop(&mut self) {
        for h in self.0.drain(..) {
            h.remove();
        }
    }
}
