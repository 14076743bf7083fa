//! [`Communicator`]: how the replicas of one training job combine values.
//!
//! Every collective (a sum of `f32` gradients, a sum or maximum of `f64`
//! metrics, a broadcast of bytes) is queued to a background thread that
//! owns the transport and runs collectives one at a time, in the order
//! they were queued — Horovod's design. The caller gets a [`Pending`] at
//! once and keeps computing (the backward pass goes on producing the next
//! gradients) until it waits for the result. Every replica must queue the
//! same collectives in the same order; lam-dist's own callers (the bucket
//! reducer, SyncBatchNorm, the trainer) do so by construction.
//!
//! Transports: MPI across processes (`mpi.rs`, the `mpi` feature), host
//! memory across the threads of one process ([`local_group`], `local.rs`),
//! and nothing at all for a world of one ([`Communicator::single`]).
//!
//! **Results are bitwise identical on every replica.** The local transport
//! sums in rank order once, for everyone; the MPI transport reduces each
//! element on exactly one rank (reduce-scatter) and copies it to the others
//! (all-gather) — ring all-reduce's two halves — so no rank sums in a
//! different order.
//!
//! **No hangs.** A wait gives up after the communicator's timeout
//! ([`DEFAULT_TIMEOUT`], `LAM_DIST_TIMEOUT` seconds) with an
//! [`Error::Distributed`] saying which collective did not complete; from
//! then on the communicator is failed and every call returns that error at
//! once. A replica of a local group that stops ([`Communicator::abort`])
//! fails the others' collectives immediately, naming it.

pub(crate) mod local;
#[cfg(feature = "mpi")]
pub(crate) mod mpi;
mod worker;

pub use local::local_group;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lam_core::{Error, Result};

use worker::{Done, Op, Payload, Worker};

/// How long a collective may take before the replicas give up on it when
/// nothing else is said (`LAM_DIST_TIMEOUT`, in seconds, overrides it):
/// long enough for rank 0 to write a checkpoint while the others wait,
/// short enough that a lost replica is noticed within minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How `f64` values from every replica are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Element-wise sum.
    Sum,
    /// Element-wise maximum.
    Max,
}

/// What a communicator has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommStats {
    /// Collectives completed.
    pub collectives: u64,
    /// Bytes this replica contributed to them.
    pub bytes: u64,
    /// Time the background thread spent in them, including waiting for
    /// the other replicas to reach each one.
    pub busy: Duration,
}

/// What a transport does when a replica aborts: tell the others.
pub(crate) type OnAbort = Box<dyn Fn(usize, &str) + Send + Sync>;

/// One replica's handle to its group (see the module docs). Cloning is
/// cheap and shares the group.
#[derive(Clone)]
pub struct Communicator {
    shared: Arc<Shared>,
}

struct Shared {
    rank: usize,
    size: usize,
    kind: &'static str,
    timeout: Duration,
    // None for a world of one: every collective is the identity.
    worker: Option<Worker>,
    // Called by `abort` so the transport can tell the other replicas.
    on_abort: Option<OnAbort>,
    failed: Mutex<Option<String>>,
    seq: AtomicU64,
    stats: Mutex<CommStats>,
}

/// A collective queued on the background thread; [`Pending::wait`] for its result.
#[must_use = "a collective's result must be waited for"]
pub struct Pending<T> {
    comm: Communicator,
    what: &'static str,
    seq: u64,
    state: State<T>,
}

enum State<T> {
    Ready(Result<T>),
    Queued(
        std::sync::mpsc::Receiver<Result<Done>>,
        fn(Payload) -> Option<T>,
    ),
}

impl Communicator {
    /// A world of one: every collective returns its input.
    pub fn single() -> Communicator {
        Communicator::new(0, 1, "single", DEFAULT_TIMEOUT, None, None)
    }

    /// The communicator of a process started by `mpirun`/`srun` (MPI is
    /// initialised on the background thread, which alone calls it). An
    /// error when the process was not started by an MPI launcher, or when
    /// MPI was already initialised in this process.
    #[cfg(feature = "mpi")]
    pub fn mpi(timeout: Duration) -> Result<Communicator> {
        mpi::communicator(timeout)
    }

    pub(crate) fn new(
        rank: usize,
        size: usize,
        kind: &'static str,
        timeout: Duration,
        worker: Option<Worker>,
        on_abort: Option<OnAbort>,
    ) -> Communicator {
        Communicator {
            shared: Arc::new(Shared {
                rank,
                size,
                kind,
                timeout,
                worker,
                on_abort,
                failed: Mutex::new(None),
                seq: AtomicU64::new(0),
                stats: Mutex::new(CommStats::default()),
            }),
        }
    }

    /// This replica's index, `0..world_size()`; rank 0 is the one that
    /// writes files and whose state the others copy.
    pub fn rank(&self) -> usize {
        self.shared.rank
    }

    /// The number of replicas.
    pub fn world_size(&self) -> usize {
        self.shared.size
    }

    /// True on rank 0.
    pub fn is_main(&self) -> bool {
        self.shared.rank == 0
    }

    /// `"mpi"`, `"local"` (threads of one process) or `"single"`.
    pub fn kind(&self) -> &'static str {
        self.shared.kind
    }

    /// How long a wait lasts before it fails.
    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// What this communicator has done so far.
    pub fn stats(&self) -> CommStats {
        *lock(&self.shared.stats)
    }

    /// Starts summing `values` element-wise across replicas (every replica
    /// passes the same length).
    pub fn sum_f32(&self, values: Vec<f32>) -> Pending<Vec<f32>> {
        self.submit("sum of f32", Op::SumF32(values), |p| match p {
            Payload::F32(v) => Some(v),
            _ => None,
        })
    }

    /// Combines `values` element-wise across replicas and waits.
    pub fn reduce_f64(&self, values: Vec<f64>, op: Reduction) -> Result<Vec<f64>> {
        self.submit("reduction of f64", Op::ReduceF64(values, op), |p| match p {
            Payload::F64(v) => Some(v),
            _ => None,
        })
        .wait()
    }

    /// Starts copying rank `root`'s `bytes` to every replica (every
    /// replica passes a buffer of the same length).
    pub fn broadcast(&self, bytes: Vec<u8>, root: usize) -> Pending<Vec<u8>> {
        if root >= self.world_size() {
            let e = Error::invalid(
                "Communicator::broadcast",
                format!(
                    "root {root} is not a rank of a world of {}",
                    self.world_size()
                ),
            );
            return self.ready("broadcast", Err(e));
        }
        self.submit("broadcast", Op::Broadcast(bytes, root), |p| match p {
            Payload::Bytes(v) => Some(v),
            _ => None,
        })
    }

    /// Waits until every replica has reached this call.
    pub fn barrier(&self) -> Result<()> {
        self.reduce_f64(vec![0.0], Reduction::Sum).map(|_| ())
    }

    /// Declares this replica stopped because of `reason`: its later calls
    /// fail, and the replicas of a local group fail at once (over MPI the
    /// others notice through their timeout, or the launcher ends them).
    pub fn abort(&self, reason: &str) {
        self.fail(format!("rank {} stopped: {reason}", self.rank()));
        if let Some(f) = &self.shared.on_abort {
            f(self.rank(), reason);
        }
    }

    /// The error every call returns once the group has failed.
    fn failure(&self) -> Option<Error> {
        lock(&self.shared.failed)
            .as_ref()
            .map(|m| Error::Distributed(m.clone()))
    }

    fn fail(&self, message: String) -> Error {
        let mut failed = lock(&self.shared.failed);
        let message = failed.get_or_insert(message).clone();
        Error::Distributed(message)
    }

    fn submit<T>(&self, what: &'static str, op: Op, take: fn(Payload) -> Option<T>) -> Pending<T> {
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.failure() {
            return self.ready(what, Err(e));
        }
        // A world of one (alone, or `mpirun -np 1`): the result is the
        // input, with no copy and no trip through the transport.
        let Some(worker) = self.shared.worker.as_ref().filter(|_| self.shared.size > 1) else {
            let bytes = op.bytes();
            let value = take(op.into_payload()).ok_or_else(|| mismatch(what));
            self.record(bytes, Duration::ZERO);
            return Pending {
                comm: self.clone(),
                what,
                seq,
                state: State::Ready(value),
            };
        };
        let state = match worker.send(op) {
            Ok(rx) => State::Queued(rx, take),
            Err(why) => State::Ready(Err(self.fail(format!(
                "rank {}: the communication thread has stopped ({why})",
                self.rank()
            )))),
        };
        Pending {
            comm: self.clone(),
            what,
            seq,
            state,
        }
    }

    fn ready<T>(&self, what: &'static str, value: Result<T>) -> Pending<T> {
        Pending {
            comm: self.clone(),
            what,
            seq: self.shared.seq.load(Ordering::Relaxed),
            state: State::Ready(value),
        }
    }

    fn record(&self, bytes: u64, busy: Duration) {
        let mut s = lock(&self.shared.stats);
        s.collectives += 1;
        s.bytes += bytes;
        s.busy += busy;
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            // A failed group's thread may be stuck in a collective that will
            // never complete: leave it. Otherwise let it finish (over MPI,
            // finalising) for up to the timeout.
            let failed = lock(&self.failed).is_some();
            worker.close(if failed { Duration::ZERO } else { self.timeout });
        }
    }
}

impl<T> Pending<T> {
    /// The result, once every replica has contributed; an
    /// [`Error::Distributed`] after the communicator's timeout.
    pub fn wait(self) -> Result<T> {
        self.wait_timed().map(|(v, _)| v)
    }

    /// The result and the time the background thread spent on it.
    pub fn wait_timed(self) -> Result<(T, Duration)> {
        let comm = self.comm;
        let (rx, take) = match self.state {
            State::Ready(v) => return v.map(|v| (v, Duration::ZERO)),
            State::Queued(rx, take) => (rx, take),
        };
        let timeout = comm.timeout();
        let started = Instant::now();
        match rx.recv_timeout(timeout) {
            Ok(Ok(done)) => {
                comm.record(done.bytes, done.busy);
                let value = take(done.payload).ok_or_else(|| mismatch(self.what))?;
                Ok((value, done.busy))
            }
            Ok(Err(e)) => Err(comm.fail(e.to_string())),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(comm.fail(format!(
                "rank {} of {}: the {} (collective #{}) did not complete within {:.1} s: \
                 another replica has stopped, crashed or is stuck (its own output says why); \
                 this process group cannot be used any more",
                comm.rank(),
                comm.world_size(),
                self.what,
                self.seq,
                started.elapsed().as_secs_f64()
            ))),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(comm.fail(format!(
                "rank {}: the communication thread stopped during the {} (collective #{})",
                comm.rank(),
                self.what,
                self.seq
            ))),
        }
    }
}

/// `LAM_DIST_TIMEOUT` (seconds) if set, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Result<Duration> {
    match std::env::var("LAM_DIST_TIMEOUT") {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(Error::invalid(
                "LAM_DIST_TIMEOUT",
                format!("expected a positive number of seconds, found {text:?}"),
            )),
        },
    }
}

fn mismatch(what: &str) -> Error {
    Error::Distributed(format!("the {what} came back as another kind of data"))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
