//! The gradient reducer: a post-accumulate-grad hook on every parameter
//! marks its gradient ready; a bucket whose members are all ready, and
//! every bucket before it, is packed and queued for summing at once, while
//! backward goes on; the end-of-backward callback queues what is left
//! (gradients a replica did not produce travel as zeros) and waits for
//! every bucket, then stores `sum / world_size` as each parameter's
//! gradient. Buckets are queued strictly in order, so every replica queues
//! the same collectives in the same order whatever order its gradients
//! arrive in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lam_core::autograd::queue_callback;
use lam_core::{Error, Result, Tensor};

use super::buckets::Buckets;
use super::DdpStats;
use crate::comm::{lock, Communicator, Pending};

pub(crate) struct Reducer {
    comm: Communicator,
    /// The model's parameters, in model order.
    params: Vec<Tensor>,
    buckets: Buckets,
    /// False inside `no_sync`: gradients accumulate locally.
    syncing: AtomicBool,
    step: Mutex<Step>,
    stats: Mutex<DdpStats>,
}

/// The reduction of one backward pass.
#[derive(Default)]
struct Step {
    active: bool,
    /// Per parameter, its gradient once ready.
    grads: Vec<Option<Tensor>>,
    /// Per bucket, members not ready yet.
    waiting: Vec<usize>,
    /// The next bucket to queue.
    next: usize,
    sent: Vec<(usize, Pending<Vec<f32>>)>,
    /// Buckets queued by hooks, before backward ended.
    early: u64,
}

impl Reducer {
    pub(crate) fn new(comm: &Communicator, params: Vec<Tensor>, buckets: Buckets) -> Reducer {
        Reducer {
            comm: comm.clone(),
            params,
            buckets,
            syncing: AtomicBool::new(true),
            step: Mutex::new(Step::default()),
            stats: Mutex::new(DdpStats::default()),
        }
    }

    /// The hook of parameter `i`: its gradient is final for this pass.
    pub(crate) fn on_grad(self: &Arc<Self>, i: usize) -> Result<()> {
        if !self.syncing.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut step = lock(&self.step);
        if !step.active {
            self.begin(&mut step);
            let me = Arc::downgrade(self);
            queue_callback(move || match me.upgrade() {
                Some(reducer) => reducer.finish(),
                None => Ok(()),
            })?;
        }
        if step.grads[i].is_some() {
            return Err(Error::Distributed(format!(
                "parameter {i} got two gradients in one backward pass"
            )));
        }
        step.grads[i] = self.params[i].grad();
        let (b, _) = self.buckets.place[i];
        step.waiting[b] -= 1;
        let sent = self.send_ready(&mut step, false);
        if sent.is_err() {
            *step = Step::default();
        }
        sent
    }

    /// Waits for every bucket of the current pass and stores the averaged
    /// gradients; nothing to do when no pass is in flight.
    pub(crate) fn finish(&self) -> Result<()> {
        let mut step = lock(&self.step);
        if !step.active {
            return Ok(());
        }
        let done = self.finish_step(&mut step);
        *step = Step::default();
        done
    }

    /// An error when the last backward pass ended without averaging its
    /// gradients (it failed midway): the replicas may differ now.
    pub(crate) fn check_idle(&self) -> Result<()> {
        let mut step = lock(&self.step);
        if !step.active {
            return Ok(());
        }
        *step = Step::default();
        Err(Error::Distributed(format!(
            "rank {}: the previous backward pass ended before its gradients were averaged \
             (it failed midway), so the replicas may differ: stop, or restart from a checkpoint",
            self.comm.rank()
        )))
    }

    pub(crate) fn set_syncing(&self, on: bool) -> bool {
        self.syncing.swap(on, Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> DdpStats {
        *lock(&self.stats)
    }

    pub(crate) fn record_buffer_sync(&self, took: Duration) {
        lock(&self.stats).buffer_sync += took;
    }

    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn begin(&self, step: &mut Step) {
        *step = Step {
            active: true,
            grads: vec![None; self.params.len()],
            waiting: self.buckets.members.iter().map(Vec::len).collect(),
            next: 0,
            sent: Vec::new(),
            early: 0,
        };
    }

    /// Queues every bucket, in order, that is complete (all of them with
    /// `flush`, taking whatever gradient each parameter holds).
    fn send_ready(&self, step: &mut Step, flush: bool) -> Result<()> {
        while step.next < self.buckets.len() && (flush || step.waiting[step.next] == 0) {
            let b = step.next;
            if flush {
                for &i in &self.buckets.members[b] {
                    if step.grads[i].is_none() {
                        // Not produced by this pass; a gradient accumulated
                        // under `no_sync` still counts.
                        step.grads[i] = self.params[i].grad();
                    }
                }
            }
            let buffer = self.pack(b, &step.grads)?;
            step.sent.push((b, self.comm.sum_f32(buffer)));
            step.next += 1;
            step.early += u64::from(!flush);
        }
        Ok(())
    }

    /// Bucket `b`'s buffer: gradients (zeros where absent), then the flags.
    fn pack(&self, b: usize, grads: &[Option<Tensor>]) -> Result<Vec<f32>> {
        let members = &self.buckets.members[b];
        let present = members
            .iter()
            .filter_map(|&i| grads[i].as_ref().map(|g| g.reshape(&[-1])))
            .collect::<Result<Vec<_>>>()?;
        // One readback per bucket (on a GPU, one wait), not one per gradient.
        let host = match present.len() {
            0 => Vec::new(),
            _ => Tensor::cat(&present, 0)?.to_vec()?,
        };
        let mut buffer = Vec::with_capacity(self.buckets.buffer_len(b));
        let mut at = 0;
        for &i in members {
            let n = self.params[i].numel();
            match &grads[i] {
                Some(_) => {
                    buffer.extend_from_slice(&host[at..at + n]);
                    at += n;
                }
                None => buffer.resize(buffer.len() + n, 0.0),
            }
        }
        buffer.extend(
            members
                .iter()
                .map(|&i| f32::from(u8::from(grads[i].is_some()))),
        );
        Ok(buffer)
    }

    fn finish_step(&self, step: &mut Step) -> Result<()> {
        self.send_ready(step, true)?;
        let world = self.comm.world_size() as f32;
        let mut exposed = Duration::ZERO;
        let mut busy = Duration::ZERO;
        let mut bytes = 0u64;
        for (b, pending) in std::mem::take(&mut step.sent) {
            let waited = Instant::now();
            let (sum, took) = pending.wait_timed()?;
            exposed += waited.elapsed();
            busy += took;
            bytes += sum.len() as u64 * 4;
            self.unpack(b, &sum, world)?;
        }
        let mut stats = lock(&self.stats);
        stats.steps += 1;
        stats.buckets = self.buckets.len();
        stats.bytes_per_step = bytes;
        stats.comm += busy;
        stats.exposed += exposed;
        stats.buckets_during_backward += step.early;
        Ok(())
    }

    /// Stores the averages of bucket `b`'s sums as its members' gradients;
    /// a parameter no replica produced a gradient for keeps none.
    fn unpack(&self, b: usize, sum: &[f32], world: f32) -> Result<()> {
        let members = &self.buckets.members[b];
        let flags = &sum[self.buckets.values[b]..];
        for (k, &i) in members.iter().enumerate() {
            if flags[k] == 0.0 {
                continue;
            }
            let p = &self.params[i];
            let at = self.buckets.place[i].1;
            let average: Vec<f32> = sum[at..at + p.numel()].iter().map(|v| v / world).collect();
            p.set_grad(Some(Tensor::from_vec(average, p.dims(), &p.device())?))?;
        }
        Ok(())
    }
}
