//! How a convolution's images are split across threads ([`Plan`]), and the
//! sets of scratch buffers the running tasks borrow ([`Scratch`]).

use std::sync::{Mutex, OnceLock};

use gemm::Parallelism;
use lam_core::{Error, Result};
use rayon::prelude::*;

use super::Shapes;
use crate::pool;

/// Multiply-adds from which one image's product is worth gemm's threads
/// (when the batch is too small to give each thread images).
pub(super) const PAR_MIN_MACS: usize = 192 * 192 * 192;

/// How the images are split across threads.
pub(super) struct Plan {
    pub(super) n: usize,
    /// Tasks, and consecutive images per task.
    pub(super) tasks: usize,
    pub(super) per: usize,
    /// Threads that may run tasks at once.
    pub(super) threads: usize,
    /// gemm's parallelism inside a task.
    pub(super) gemm: Parallelism,
    /// What im2col and col2im pass to `for_chunks` (0: stay on this thread).
    pub(super) work: usize,
}

/// Tasks per thread when images are split across threads: more than one,
/// so a thread that other processes delay does not hold up the op.
const TASKS_PER_THREAD: usize = 4;

impl Plan {
    pub(super) fn new(s: &Shapes, n: usize) -> Plan {
        let threads = rayon::current_num_threads().max(1);
        if n >= threads && n > 1 {
            let per = (n / (threads * TASKS_PER_THREAD)).max(1);
            return Plan {
                n,
                tasks: n.div_ceil(per),
                per,
                threads,
                gemm: Parallelism::None,
                work: 0,
            };
        }
        let macs = s.og * s.k * s.l;
        Plan {
            n,
            tasks: 1,
            per: n,
            threads,
            gemm: if macs >= PAR_MIN_MACS {
                Parallelism::Rayon(0)
            } else {
                Parallelism::None
            },
            work: s.k * s.l * s.groups,
        }
    }

    /// Scratch sets to prepare: one per task that can run at once.
    pub(super) fn sets(&self) -> usize {
        self.tasks.min(self.threads)
    }

    /// Calls `f(first, count, out, state, scratch)` for each task: its
    /// first image, how many it has, its images' part of `out` (`image`
    /// elements each; empty when `image` is 0), its state and a set of
    /// scratch buffers no other running task holds.
    pub(super) fn for_tasks<S, F>(
        &self,
        out: &mut [f32],
        image: usize,
        states: &mut [S],
        scratch: &Scratch,
        f: F,
    ) where
        S: Send,
        F: Fn(usize, usize, &mut [f32], &mut S, &mut [Vec<f32>]) + Sync,
    {
        let mut parts: Vec<&mut [f32]> = if image == 0 {
            (0..self.tasks).map(|_| &mut [][..]).collect()
        } else {
            out.chunks_mut(self.per * image).collect()
        };
        let task = |(t, (dst, state)): (usize, (&mut &mut [f32], &mut S))| {
            let first = t * self.per;
            scratch.with(|bufs| f(first, self.per.min(self.n - first), dst, state, bufs));
        };
        if self.tasks > 1 {
            parts
                .par_iter_mut()
                .zip(states.par_iter_mut())
                .enumerate()
                .for_each(task);
        } else {
            parts
                .iter_mut()
                .zip(states.iter_mut())
                .enumerate()
                .for_each(task);
        }
    }
}

/// Sets of scratch buffers (one buffer per length of `lens`), each held by
/// one running task and handed to the next.
pub(super) struct Scratch {
    pub(super) lens: Vec<usize>,
    pub(super) free: Mutex<Vec<Vec<Vec<f32>>>>,
    /// An allocation that failed inside a task, returned by `finish`.
    pub(super) failure: OnceLock<Error>,
}

impl Scratch {
    pub(super) fn new(lens: &[usize], sets: usize) -> Result<Scratch> {
        let free = (0..sets)
            .map(|_| lens.iter().map(|&len| pool::take(len)).collect())
            .collect::<Result<_>>()?;
        Ok(Scratch {
            lens: lens.to_vec(),
            free: Mutex::new(free),
            failure: OnceLock::new(),
        })
    }

    /// Runs `f` with a free set (a new one if none is free).
    pub(super) fn with(&self, f: impl FnOnce(&mut [Vec<f32>])) {
        // A set is pushed and popped whole, so a lock poisoned by a panic
        // elsewhere still guards a consistent list.
        let lock = || self.free.lock().unwrap_or_else(|e| e.into_inner());
        let popped = lock().pop();
        let mut set = match popped {
            Some(set) => set,
            None => match self.lens.iter().map(|&len| pool::take(len)).collect() {
                Ok(set) => set,
                Err(e) => {
                    self.failure.get_or_init(|| e);
                    return;
                }
            },
        };
        f(&mut set);
        lock().push(set);
    }

    /// Returns the buffers to the pool, or the first allocation failure.
    pub(super) fn finish(self) -> Result<()> {
        let free = self.free.into_inner().unwrap_or_else(|e| e.into_inner());
        free.into_iter().flatten().for_each(pool::give);
        match self.failure.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
