//! Which threads run lam-cpu's parallel loops.
//!
//! rayon runs a parallel loop started outside its pool by injecting it: the
//! calling thread sleeps on a latch while a pool thread wakes, splits the
//! loop with the others and, when it is done, wakes the caller again. A
//! training step makes a few hundred such calls — products, elementwise
//! ops, reductions — and on few cores those two sleeps and wake-ups per op,
//! and the caller's core idling meanwhile, cost a tenth of the step. Started
//! on a pool thread, the same loop runs its first piece at once on that
//! thread while the others steal the rest.
//!
//! So the thread that first asks for the CPU [`device`](crate::device)
//! (usually the program's main thread) becomes thread 0 of a rayon pool of
//! its own (`use_current_thread`), with as many threads in all as rayon's
//! global pool would have (`RAYON_NUM_THREADS`, else one per logical CPU).
//! Every rayon loop that thread starts afterwards — lam-cpu's and `gemm`'s,
//! and the program's own — runs on that pool with the caller taking part,
//! as an OpenMP team's master thread does. Other threads keep using rayon's
//! global pool as before, so a program that computes from several threads
//! loses nothing; the cost is the pool's idle threads.
//!
//! Measured side by side on 2 cores (tokens or samples per second against
//! the global pool): `gpt` +8%, `mlp 32` +35%, `mlp 128` +12%, `resnet` +5%.
//!
//! Nothing changes when the thread already belongs to a rayon pool (a
//! program running lam inside its own pool), when only one thread is
//! configured, or when the pool cannot be built.

use std::sync::OnceLock;

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The pool whose thread 0 is the adopted thread, kept for the process's
/// life: dropping it would stop its threads under that thread.
static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();

/// Makes the calling thread thread 0 of lam-cpu's pool, once per process
/// (later calls, from any thread, do nothing). Returns whether this thread
/// is the adopted one.
pub(crate) fn adopt_current_thread() -> bool {
    POOL.get_or_init(build).is_some() && current_is_adopted()
}

/// The pool, when this thread is not already a rayon thread and more than
/// one thread is configured.
fn build() -> Option<ThreadPool> {
    if rayon::current_thread_index().is_some() {
        return None;
    }
    // Rayon's own default: RAYON_NUM_THREADS, else the logical CPUs. (Not
    // `rayon::current_num_threads()`, which would start the global pool and
    // so make a later `build_global` of the program's fail.)
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    if threads < 2 {
        return None;
    }
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .thread_name(|i| format!("lam-cpu-{i}"))
        .build()
        .ok()
}

/// Whether the calling thread is thread 0 of lam-cpu's pool.
fn current_is_adopted() -> bool {
    match POOL.get() {
        Some(Some(pool)) => pool.current_thread_index() == Some(0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adopting_thread_runs_loops_on_its_pool_and_others_do_not() {
        use rayon::prelude::*;
        // A fresh thread, so the test does not depend on which test thread
        // adopted the pool first.
        let adopted = std::thread::spawn(|| {
            let adopted = adopt_current_thread();
            let sum: u64 = (0..100_000u64).into_par_iter().sum();
            (adopted, sum, rayon::current_thread_index())
        })
        .join()
        .unwrap();
        let (was_adopted, sum, index) = adopted;
        assert_eq!(sum, 4_999_950_000);
        if was_adopted {
            assert_eq!(index, Some(0));
        }
        // Any other thread: not adopted, its loops still run.
        let other = std::thread::spawn(|| {
            let adopted = adopt_current_thread();
            let sum: u64 = (0..1_000u64).into_par_iter().sum();
            (adopted, sum)
        })
        .join()
        .unwrap();
        assert_eq!(other, (false, 499_500));
    }
}
