//! The profiler: where a program's time goes, op by op.
//!
//! Turn it on with `LAM_PROFILE=1` in the environment (read once, on the
//! first op) or with [`enable`]; read it with [`report`], whose `Display` is
//! a table of ops per device — count, total time, mean time and share of the
//! measured span — followed by the time no op accounts for (autograd
//! bookkeeping, allocation of tensor handles, the user's own code).
//!
//! How it measures:
//! - **Host time per op.** Every [`crate::Device`] wraps its backend in
//!   [`Profiled`], which forwards each [`crate::Backend`] call and, while
//!   profiling is on, times it on the calling thread. While it is off the
//!   wrapper costs one relaxed atomic load per call.
//! - **GPU time per kernel.** GPU backends record work lazily, so host time
//!   of a GPU op is only its encoding (and a readback's wait). A backend
//!   that can measure the device itself (lam-wgpu with timestamp queries)
//!   reports kernel times through [`record`] with [`Clock::Gpu`], and says
//!   through [`note_device`] whether it can, so the table states which
//!   clock each section uses.
//!
//! State is process-global, like the device it measures: [`reset`] clears
//! every section and restarts the span. Nothing is printed unless asked:
//! a library cannot print reliably at process exit in Rust (statics are not
//! dropped), so programs call [`print_if_enabled`] at the end, or hold the
//! guard from [`print_on_drop`] for the part of `main` they want measured.

mod profiled;
mod report;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use profiled::{Profiled, Timer};
pub use report::{ProfileReport, Row, Section};

/// Which clock measured a section of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Clock {
    /// Wall time on the host thread that called the backend.
    Host,
    /// Time on the device between a kernel's begin and end timestamps.
    Gpu,
}

/// Turns profiling on and starts a fresh span (as [`reset`]).
pub fn enable() {
    reset();
    ENABLED.store(ON, Ordering::Relaxed);
}

/// [`enable`], and backends that can also split a kernel's GPU time by the
/// shapes it ran on (lam-wgpu's matrix products: `matmul_large 16x512x1536x512
/// a2 b3`), as PyTorch's `record_shapes=True` does; `LAM_PROFILE=shapes`
/// does the same from the environment.
pub fn enable_with_shapes() {
    reset();
    ENABLED.store(SHAPES, Ordering::Relaxed);
}

/// Whether profiling is on with shapes ([`enable_with_shapes`]).
#[inline]
pub fn records_shapes() -> bool {
    is_enabled() && ENABLED.load(Ordering::Relaxed) == SHAPES
}

/// Turns profiling off; what was recorded stays until [`reset`].
pub fn disable() {
    ENABLED.store(OFF, Ordering::Relaxed);
}

/// Whether ops are being timed. The first call reads `LAM_PROFILE`
/// (`1`, `true` or `on` enable it, `shapes` with shapes) unless
/// [`enable`]/[`disable`] came first.
#[inline]
pub fn is_enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        ON | SHAPES => true,
        OFF => false,
        _ => init_from_env(),
    }
}

/// Clears every recorded time and starts the measured span now.
pub fn reset() {
    let mut state = state();
    state.sections.clear();
    state.started = Some(Instant::now());
}

/// What has been recorded since [`enable`] or the last [`reset`]; the span
/// ends now. Recording continues.
pub fn report() -> ProfileReport {
    let state = state();
    let span = state.started.map_or(Duration::ZERO, |t| t.elapsed());
    ProfileReport::new(span, &state.sections, &state.notes)
}

/// Prints [`report`] to stderr when profiling is on; does nothing otherwise.
/// Call it at the end of `main` (or after the part worth measuring).
pub fn print_if_enabled() {
    if is_enabled() {
        eprintln!("{}", report());
    }
}

/// A guard that calls [`print_if_enabled`] when dropped, e.g. as the first
/// line of `main`: `let _profile = lam::profile::print_on_drop();`.
#[must_use = "the report prints when the guard is dropped"]
pub fn print_on_drop() -> PrintOnDrop {
    PrintOnDrop(())
}

/// See [`print_on_drop`].
#[derive(Debug)]
pub struct PrintOnDrop(());

impl Drop for PrintOnDrop {
    fn drop(&mut self) {
        print_if_enabled();
    }
}

/// Adds one call of `op` on `device` that took `elapsed` by `clock`.
/// Backends call this for times they measure themselves (GPU kernels);
/// host times are recorded by [`Profiled`]. Ignored while profiling is off.
pub fn record(device: &str, clock: Clock, op: &str, elapsed: Duration) {
    if !is_enabled() {
        return;
    }
    let mut state = state();
    let index = match state
        .sections
        .iter()
        .position(|s| s.clock == clock && s.device == device)
    {
        Some(i) => i,
        None => {
            state.sections.push(Recorded {
                device: device.to_string(),
                clock,
                ops: Vec::new(),
            });
            state.sections.len() - 1
        }
    };
    let ops = &mut state.sections[index].ops;
    match ops.iter_mut().find(|(name, _)| name == op) {
        Some((_, stat)) => stat.add(elapsed),
        None => ops.push((op.to_string(), Stat::one(elapsed))),
    }
}

/// Says how `device` (its backend's name) measures its own time, e.g.
/// "GPU time per kernel from timestamp queries" or why it cannot; the
/// report prints it above that device's sections. Kept across resets.
pub fn note_device(device: &str, note: &str) {
    let mut state = state();
    match state.notes.iter_mut().find(|(d, _)| d == device) {
        Some((_, n)) => *n = note.to_string(),
        None => state.notes.push((device.to_string(), note.to_string())),
    }
}

const UNREAD: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;
const SHAPES: u8 = 3;

static ENABLED: AtomicU8 = AtomicU8::new(UNREAD);

/// Everything recorded; a `Vec` because a run has a handful of devices and a
/// few dozen op names, and a linear scan beats hashing at that size.
static STATE: Mutex<State> = Mutex::new(State {
    started: None,
    sections: Vec::new(),
    notes: Vec::new(),
});

struct State {
    started: Option<Instant>,
    sections: Vec<Recorded>,
    /// `(device, note)` from [`note_device`].
    notes: Vec<(String, String)>,
}

/// The ops of one device measured by one clock, in first-seen order.
struct Recorded {
    device: String,
    clock: Clock,
    ops: Vec<(String, Stat)>,
}

#[derive(Debug, Clone, Copy)]
struct Stat {
    count: u64,
    total: Duration,
}

impl Stat {
    fn one(elapsed: Duration) -> Stat {
        Stat {
            count: 1,
            total: elapsed,
        }
    }

    fn add(&mut self, elapsed: Duration) {
        self.count += 1;
        self.total += elapsed;
    }
}

fn state() -> MutexGuard<'static, State> {
    // Every critical section leaves the tables consistent; a panic elsewhere
    // must not turn profiling into a second panic.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

#[cold]
fn init_from_env() -> bool {
    let wanted = match std::env::var("LAM_PROFILE").as_deref() {
        Ok("1" | "true" | "on") => ON,
        Ok("shapes") => SHAPES,
        _ => OFF,
    };
    if wanted != OFF {
        reset();
    }
    // An `enable`/`disable` that raced with this read wins.
    match ENABLED.compare_exchange(UNREAD, wanted, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => wanted != OFF,
        Err(now) => now == ON || now == SHAPES,
    }
}
