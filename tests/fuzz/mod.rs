//! Seeded mutation fuzzing of file loaders, shared by the workspace's
//! checkpoint fuzz test (`tests/loader_fuzz.rs`) and lam-train's CSV/IDX
//! one (`crates/lam-train/tests/loader_fuzz.rs`):
//!
//! - [`Rng`]: splitmix64, so a seed gives the same cases everywhere.
//! - [`mutate_bytes`]: format-blind mutations (bit flips, byte inserts and
//!   deletes, truncation, integers at their limits written over the bytes).
//! - [`Fuzz`]: runs each mutated input through a loader under
//!   `catch_unwind`, counts `Ok`s and `Err`s, records every panic with the
//!   mutation that caused it, and measures the heap each load takes.
//! - A counting global allocator: live bytes, the peak since a mark, and a
//!   refusal of any single request above [`REFUSE_ABOVE`], so that a loader
//!   trusting a header that claims terabytes fails at once ("memory
//!   allocation of N bytes failed") instead of swapping.
//!
//! A test binary that includes this module must run one `#[test]` only:
//! the allocator's counters are process-wide. `LAM_FUZZ_VERBOSE=1` writes
//! each case's label to stderr before it runs (uncaptured), to find the
//! case behind an abort.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Display;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// No single allocation may ask for more than this (1 GiB).
pub const REFUSE_ABOVE: usize = 1 << 30;

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Integers at the edges: sizes that overflow, wrap or exceed memory.
pub const INTERESTING: [u64; 14] = [
    0,
    1,
    7,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

/// Applies one to four format-blind mutations to `data`; returns what was done.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>) -> String {
    let rounds = 1 + rng.below(4);
    (0..rounds)
        .map(|_| mutate_once(rng, data))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>) -> String {
    let len = data.len();
    let at = |rng: &mut Rng| if len == 0 { 0 } else { rng.below(len) };
    match rng.below(9) {
        0 if len > 0 => {
            let i = at(rng);
            let bit = rng.below(8);
            data[i] ^= 1 << bit;
            format!("flip bit {bit} of byte {i}")
        }
        1 if len > 0 => {
            let i = at(rng);
            let v = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'"', b',', b'\n', b'{', b'-']);
            data[i] = v;
            format!("byte {i} = {v:#x}")
        }
        2 => {
            let i = if len == 0 { 0 } else { rng.below(len + 1) };
            let n = 1 + rng.below(16);
            let b = rng.bytes(n);
            data.splice(i..i, b);
            format!("insert {n} bytes at {i}")
        }
        3 if len > 0 => {
            let i = at(rng);
            let n = (1 + rng.below(16)).min(len - i);
            data.drain(i..i + n);
            format!("delete {n} bytes at {i}")
        }
        4 => {
            let keep = if len == 0 { 0 } else { rng.below(len) };
            data.truncate(keep);
            format!("truncate to {keep} bytes")
        }
        5 => {
            let n = 1 + rng.below(64);
            data.extend(rng.bytes(n));
            format!("append {n} bytes")
        }
        6 if len > 1 => {
            let i = at(rng);
            let n = (1 + rng.below(32)).min(len - i);
            let chunk = data[i..i + n].to_vec();
            let j = rng.below(len + 1);
            data.splice(j..j, chunk);
            format!("copy {n} bytes from {i} to {j}")
        }
        7 | 8 if len >= 8 => {
            let v = *rng.pick(&INTERESTING);
            let wide = rng.chance(0.5);
            let big_endian = rng.chance(0.5);
            let bytes: Vec<u8> = match (wide, big_endian) {
                (true, false) => v.to_le_bytes().to_vec(),
                (true, true) => v.to_be_bytes().to_vec(),
                (false, false) => (v as u32).to_le_bytes().to_vec(),
                (false, true) => (v as u32).to_be_bytes().to_vec(),
            };
            let i = rng.below(len - bytes.len() + 1);
            data[i..i + bytes.len()].copy_from_slice(&bytes);
            format!(
                "write {v:#x} as {} {} at {i}",
                if wide { "u64" } else { "u32" },
                if big_endian { "BE" } else { "LE" }
            )
        }
        _ => {
            let i = at(rng);
            data.truncate(i);
            format!("truncate to {i} bytes")
        }
    }
}

/// A scratch directory for one fuzz run, removed on drop (also when a
/// failed check unwinds).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A mutated input written to a file of its own, removed on drop. A new
/// name per case, not one file rewritten: truncating a file that has just
/// been written makes ext4 flush it, which costs milliseconds per case.
pub struct CaseFile(pub PathBuf);

impl CaseFile {
    pub fn new(dir: &Path, name: &str, bytes: &[u8]) -> CaseFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, bytes).expect("write a fuzz case");
        CaseFile(path)
    }
}

impl Drop for CaseFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The results of a fuzz run (see the module docs).
pub struct Fuzz {
    name: String,
    /// Loads that returned `Ok`.
    pub ok: usize,
    /// Loads that returned a clean `Err`.
    pub errors: usize,
    panics: Vec<String>,
    oversized: Vec<String>,
    /// Errors by kind (message without paths and digits), to see which checks the cases reach.
    kinds: std::collections::BTreeMap<String, usize>,
    /// The largest heap growth of one load, in bytes, and its case.
    pub peak: (usize, String),
    verbose: bool,
    hook: Option<PanicHook>,
}

impl Fuzz {
    /// Starts a run; panics inside loads are caught and recorded, not printed.
    pub fn new(name: &str) -> Fuzz {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        Fuzz {
            name: name.to_string(),
            ok: 0,
            errors: 0,
            panics: Vec::new(),
            oversized: Vec::new(),
            kinds: Default::default(),
            peak: (0, String::new()),
            verbose: std::env::var("LAM_FUZZ_VERBOSE").as_deref() == Ok("1"),
            hook: Some(hook),
        }
    }

    /// Cases run so far.
    pub fn cases(&self) -> usize {
        self.ok + self.errors + self.panics.len()
    }

    /// Runs `load` on an input of `input_len` bytes: it must return `Ok` or
    /// `Err` without panicking, and its heap growth must stay under
    /// `32 × input_len + 1 MiB`.
    pub fn run<E: Display>(
        &mut self,
        label: &str,
        input_len: usize,
        load: impl FnOnce() -> Result<(), E>,
    ) {
        if self.verbose {
            let _ = writeln!(std::io::stderr(), "{}: {label}", self.name);
        }
        let base = mark();
        let outcome = catch_unwind(AssertUnwindSafe(load));
        let grew = peak_since(base);
        match outcome {
            Ok(Ok(())) => self.ok += 1,
            Ok(Err(e)) => {
                self.errors += 1;
                *self.kinds.entry(kind_of(&e.to_string())).or_default() += 1;
            }
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.panics.push(format!("{label}: panicked: {msg}"));
            }
        }
        if grew > self.peak.0 {
            self.peak = (grew, label.to_string());
        }
        if grew > 32 * input_len + (1 << 20) {
            self.oversized.push(format!(
                "{label}: {grew} bytes of heap for a {input_len}-byte input"
            ));
        }
    }

    /// Restores the panic hook, prints the counts, and fails on any panic or
    /// oversized load.
    pub fn finish(mut self) {
        if let Some(hook) = self.hook.take() {
            std::panic::set_hook(hook);
        }
        eprintln!(
            "{}: {} cases: {} Ok, {} Err, {} panics, {} oversized; largest heap growth {} bytes ({})",
            self.name,
            self.cases(),
            self.ok,
            self.errors,
            self.panics.len(),
            self.oversized.len(),
            self.peak.0,
            self.peak.1
        );
        let mut kinds: Vec<(&String, &usize)> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        for (kind, n) in kinds.iter().take(12) {
            eprintln!("  {n:>6}  {kind}");
        }
        eprintln!("  ({} kinds of error in all)", kinds.len());
        let shown: Vec<&String> = self.panics.iter().chain(&self.oversized).take(20).collect();
        assert!(
            self.panics.is_empty() && self.oversized.is_empty(),
            "{}: {} panics and {} oversized loads, first ones:\n{}",
            self.name,
            self.panics.len(),
            self.oversized.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// An error message without its file path and numbers, cut short.
fn kind_of(msg: &str) -> String {
    let text: String = msg
        .split(": ")
        .filter(|part| !part.contains('/'))
        .collect::<Vec<_>>()
        .join(": ")
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect();
    text.replace(
        "not a valid safetensors file (truncated or corrupt header?): ",
        "header: ",
    )
    .chars()
    .take(90)
    .collect()
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), in
/// bytes, where the platform reports it: a check that does not rely on
/// the allocator's own counting.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Live heap bytes now; also restarts the peak from here.
pub fn mark() -> usize {
    let now = LIVE.load(Ordering::SeqCst);
    PEAK.store(now, Ordering::SeqCst);
    now
}

/// How far the heap rose above `base` since [`mark`].
pub fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::SeqCst).saturating_sub(base)
}

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counted (see the module docs).
struct Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is the system's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            grow(new_size);
        }
        p
    }
}

fn grow(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(now, Ordering::SeqCst);
}
