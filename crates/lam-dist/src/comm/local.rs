//! Replicas on the threads of one process (one per device), combining
//! values through host memory: each collective is a rendezvous at a shared
//! [`Hub`], where the last replica to arrive computes the result once, in
//! rank order, for everyone — so every replica gets the same bits.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lam_core::{Error, Result};

use super::worker::{Transport, Worker};
use super::{lock, Communicator, Reduction};

/// `size` communicators, one per replica of a group living in this process
/// (rank `i` is element `i`), each with its own background thread.
pub fn local_group(size: usize, timeout: Duration) -> Result<Vec<Communicator>> {
    if size == 0 {
        return Err(Error::invalid(
            "local_group",
            "a group needs at least one replica",
        ));
    }
    if size == 1 {
        return Ok(vec![Communicator::single()]);
    }
    let hub = Arc::new(Hub {
        size,
        timeout,
        state: Mutex::new(Round::new(size)),
        changed: Condvar::new(),
    });
    (0..size)
        .map(|rank| {
            let transport = LocalTransport {
                rank,
                hub: hub.clone(),
            };
            let (worker, _, _) = Worker::spawn(Box::new(move || {
                Ok((Box::new(transport) as Box<dyn Transport>, rank, size))
            }))?;
            let abort_hub = hub.clone();
            Ok(Communicator::new(
                rank,
                size,
                "local",
                timeout,
                Some(worker),
                Some(Box::new(move |rank, why| abort_hub.fail(rank, why))),
            ))
        })
        .collect()
}

/// The meeting point of a group's collectives.
struct Hub {
    size: usize,
    timeout: Duration,
    state: Mutex<Round>,
    changed: Condvar,
}

/// One collective in progress: contributions arrive, the last arrival
/// computes the result, and the round resets once every replica took it.
struct Round {
    generation: u64,
    slots: Vec<Option<Contribution>>,
    result: Option<Arc<Result<Contribution>>>,
    taken: usize,
    failed: Option<String>,
}

/// What one replica brings to a collective.
#[derive(Clone)]
enum Contribution {
    F32(Vec<f32>),
    F64(Vec<f64>, Reduction),
    Bytes(Vec<u8>, usize),
}

struct LocalTransport {
    rank: usize,
    hub: Arc<Hub>,
}

impl Transport for LocalTransport {
    fn sum_f32(&mut self, values: &mut [f32]) -> Result<()> {
        match self
            .hub
            .meet(self.rank, Contribution::F32(values.to_vec()))?
        {
            Contribution::F32(r) => values.copy_from_slice(&r),
            _ => return Err(wrong_kind()),
        }
        Ok(())
    }

    fn reduce_f64(&mut self, values: &mut [f64], op: Reduction) -> Result<()> {
        match self
            .hub
            .meet(self.rank, Contribution::F64(values.to_vec(), op))?
        {
            Contribution::F64(r, _) => values.copy_from_slice(&r),
            _ => return Err(wrong_kind()),
        }
        Ok(())
    }

    fn broadcast(&mut self, bytes: &mut [u8], root: usize) -> Result<()> {
        match self
            .hub
            .meet(self.rank, Contribution::Bytes(bytes.to_vec(), root))?
        {
            Contribution::Bytes(r, _) => bytes.copy_from_slice(&r),
            _ => return Err(wrong_kind()),
        }
        Ok(())
    }
}

impl Round {
    fn new(size: usize) -> Round {
        Round {
            generation: 0,
            slots: vec![None; size],
            result: None,
            taken: 0,
            failed: None,
        }
    }
}

impl Hub {
    /// Contributes `mine` to the current collective and returns its result
    /// once every replica has contributed.
    fn meet(&self, rank: usize, mine: Contribution) -> Result<Contribution> {
        let deadline = Instant::now() + self.timeout;
        let mut round = lock(&self.state);
        // A replica fast enough to start the next collective waits for the
        // last one to take the previous result.
        while round.result.is_some() || round.slots[rank].is_some() {
            round = self.wait(round, deadline)?;
        }
        let generation = round.generation;
        round.slots[rank] = Some(mine);
        if round.slots.iter().all(Option::is_some) {
            let all: Vec<Contribution> = round.slots.iter_mut().filter_map(Option::take).collect();
            round.result = Some(Arc::new(combine(all)));
            self.changed.notify_all();
        }
        while round.generation == generation && round.result.is_none() {
            round = self.wait(round, deadline)?;
        }
        let result = round
            .result
            .clone()
            .ok_or_else(|| Error::Distributed("a local collective lost its result".into()))?;
        round.taken += 1;
        if round.taken == self.size {
            round.result = None;
            round.taken = 0;
            round.generation += 1;
            self.changed.notify_all();
        }
        drop(round);
        (*result).clone()
    }

    /// Waits for a change, failing on a stopped replica or the deadline.
    fn wait<'a>(
        &self,
        round: std::sync::MutexGuard<'a, Round>,
        deadline: Instant,
    ) -> Result<std::sync::MutexGuard<'a, Round>> {
        if let Some(why) = &round.failed {
            return Err(Error::Distributed(why.clone()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Distributed(format!(
                "a collective of the local group of {} replicas did not complete within {:.1} s: \
                 a replica stopped reaching collectives",
                self.size,
                self.timeout.as_secs_f64()
            )));
        }
        let (round, _) = self
            .changed
            .wait_timeout(round, left)
            .unwrap_or_else(|e| e.into_inner());
        match &round.failed {
            Some(why) => Err(Error::Distributed(why.clone())),
            None => Ok(round),
        }
    }

    /// Fails every collective of the group, now and later.
    fn fail(&self, rank: usize, why: &str) {
        let mut round = lock(&self.state);
        round
            .failed
            .get_or_insert_with(|| format!("replica {rank} of the local group stopped: {why}"));
        self.changed.notify_all();
    }
}

/// The result of one collective from every replica's contribution, in
/// rank order; an error when they are not the same collective.
fn combine(mut all: Vec<Contribution>) -> Result<Contribution> {
    let first = describe(&all[0]);
    if let Some((rank, other)) = all
        .iter()
        .enumerate()
        .map(|(r, c)| (r, describe(c)))
        .find(|(_, d)| *d != first)
    {
        return Err(Error::Distributed(format!(
            "replicas disagree on a collective: rank 0 called {first}, rank {rank} called {other}"
        )));
    }
    if let Contribution::Bytes(_, root) = all[0] {
        return Ok(all.swap_remove(root.min(all.len() - 1)));
    }
    let mut all = all.into_iter();
    let mut acc = all
        .next()
        .ok_or_else(|| Error::Distributed("an empty group".into()))?;
    for c in all {
        match (&mut acc, c) {
            (Contribution::F32(a), Contribution::F32(b)) => {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            }
            (Contribution::F64(a, op), Contribution::F64(b, _)) => {
                for (a, b) in a.iter_mut().zip(&b) {
                    *a = match op {
                        Reduction::Sum => *a + b,
                        Reduction::Max => a.max(*b),
                    };
                }
            }
            _ => {
                return Err(Error::Distributed(
                    "replicas disagree on a collective".into(),
                ))
            }
        }
    }
    Ok(acc)
}

/// A collective as words, to compare what replicas called.
fn describe(c: &Contribution) -> String {
    match c {
        Contribution::F32(v) => format!("a sum of {} f32", v.len()),
        Contribution::F64(v, op) => format!("a {op:?} of {} f64", v.len()),
        Contribution::Bytes(v, root) => {
            format!("a broadcast of {} bytes from rank {root}", v.len())
        }
    }
}

/// The error for a result of another kind than the contribution (a bug).
fn wrong_kind() -> Error {
    Error::Distributed("a local collective returned another kind of data".into())
}
