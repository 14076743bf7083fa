//! The background thread behind a [`super::Communicator`]: it owns the
//! transport and runs the queued collectives one at a time, in order.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lam_core::{Error, Result};

use super::{lock, Reduction};

/// The blocking collectives a transport provides; called on the
/// background thread only. Every replica calls them in the same order with
/// buffers of the same length.
pub(crate) trait Transport {
    /// `values[i] ← Σ over replicas of values[i]`, the same bits everywhere.
    fn sum_f32(&mut self, values: &mut [f32]) -> Result<()>;
    /// `values[i] ← op over replicas of values[i]`, the same bits everywhere.
    fn reduce_f64(&mut self, values: &mut [f64], op: Reduction) -> Result<()>;
    /// `bytes ← rank root's bytes`.
    fn broadcast(&mut self, bytes: &mut [u8], root: usize) -> Result<()>;
}

/// A queued collective.
pub(crate) enum Op {
    SumF32(Vec<f32>),
    ReduceF64(Vec<f64>, Reduction),
    Broadcast(Vec<u8>, usize),
}

/// A collective's data, in and out.
pub(crate) enum Payload {
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<u8>),
}

/// A completed collective.
pub(crate) struct Done {
    pub(crate) payload: Payload,
    /// Bytes this replica contributed.
    pub(crate) bytes: u64,
    /// Time the transport took.
    pub(crate) busy: Duration,
}

impl Op {
    /// The size of this replica's contribution.
    pub(crate) fn bytes(&self) -> u64 {
        let n = match self {
            Op::SumF32(v) => v.len() * 4,
            Op::ReduceF64(v, _) => v.len() * 8,
            Op::Broadcast(v, _) => v.len(),
        };
        n as u64
    }

    /// The data, as the result of a collective over one replica.
    pub(crate) fn into_payload(self) -> Payload {
        match self {
            Op::SumF32(v) => Payload::F32(v),
            Op::ReduceF64(v, _) => Payload::F64(v),
            Op::Broadcast(v, _) => Payload::Bytes(v),
        }
    }

    fn run(mut self, transport: &mut dyn Transport) -> Result<Payload> {
        match &mut self {
            Op::SumF32(v) => transport.sum_f32(v)?,
            Op::ReduceF64(v, op) => transport.reduce_f64(v, *op)?,
            Op::Broadcast(v, root) => transport.broadcast(v, *root)?,
        }
        Ok(self.into_payload())
    }
}

type Job = (Op, Sender<Result<Done>>);

/// The handle to a running background thread.
pub(crate) struct Worker {
    jobs: Mutex<Option<Sender<Job>>>,
    handle: Option<JoinHandle<()>>,
}

/// What starts a transport on the background thread: MPI must be
/// initialised on the thread that will call it. Returns the transport, this
/// replica's rank and the world size.
pub(crate) type MakeTransport =
    Box<dyn FnOnce() -> Result<(Box<dyn Transport>, usize, usize)> + Send>;

impl Worker {
    /// Starts the thread, builds the transport on it, and returns once it
    /// is ready, with the rank and world size it reports.
    pub(crate) fn spawn(make: MakeTransport) -> Result<(Worker, usize, usize)> {
        let (jobs, queue) = channel::<Job>();
        let (ready_tx, ready_rx) = channel::<Result<(usize, usize)>>();
        let handle = std::thread::Builder::new()
            .name("lam-dist-comm".into())
            .spawn(move || {
                let mut transport = match make() {
                    Ok((t, rank, size)) => {
                        let _ = ready_tx.send(Ok((rank, size)));
                        t
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                serve(&mut *transport, &queue);
            })
            .map_err(|e| {
                Error::Distributed(format!("cannot start the communication thread: {e}"))
            })?;
        let (rank, size) = ready_rx.recv().map_err(|_| {
            Error::Distributed("the communication thread stopped while starting".into())
        })??;
        let worker = Worker {
            jobs: Mutex::new(Some(jobs)),
            handle: Some(handle),
        };
        Ok((worker, rank, size))
    }

    /// Queues `op`; the receiver yields its result.
    pub(crate) fn send(&self, op: Op) -> std::result::Result<Receiver<Result<Done>>, String> {
        let (tx, rx) = channel();
        match lock(&self.jobs).as_ref() {
            Some(jobs) => jobs
                .send((op, tx))
                .map(|_| rx)
                .map_err(|_| "its queue is closed".to_string()),
            None => Err("it was closed".into()),
        }
    }

    /// Closes the queue and waits up to `patience` for the thread to end
    /// (it finishes the collectives already queued first).
    pub(crate) fn close(mut self, patience: Duration) {
        drop(lock(&self.jobs).take());
        let Some(handle) = self.handle.take() else {
            return;
        };
        let deadline = Instant::now() + patience;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }
}

/// Runs jobs until the queue closes.
fn serve(transport: &mut dyn Transport, queue: &Receiver<Job>) {
    while let Ok((op, reply)) = queue.recv() {
        let bytes = op.bytes();
        let started = Instant::now();
        let result = op.run(transport).map(|payload| Done {
            payload,
            bytes,
            busy: started.elapsed(),
        });
        let failed = result.is_err();
        let _ = reply.send(result);
        if failed {
            // A transport that failed once cannot be trusted with the next
            // collective: the replicas may no longer agree on the order.
            return;
        }
    }
}
