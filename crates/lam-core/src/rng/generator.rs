//! [`Generator`]: a seedable, savable source of per-call seeds, and its
//! state [`GeneratorState`].
//!
//! The generator is itself counter-based: the `k`-th seed a generator
//! seeded with `s` hands out is [`nth_seed`]`(s, k)`, splitmix64's output
//! for the state `s + k·γ`. Its whole state is therefore `(seed, offset)`,
//! two integers, which is what [`Generator::state`] returns and what
//! checkpoints store — as PyTorch stores `torch.Generator.get_state()` —
//! in the text form `splitmix64:<seed>:<offset>`.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use crate::{Error, Result};

/// A seedable, savable random generator (PyTorch's `torch.Generator`).
///
/// A handle: clones share one stream, so a generator can be handed to a
/// `Dropout`, a `DataLoader` and a trainer and advance for all of them.
/// Every method takes `&self` (the state sits behind a mutex); the type is
/// `Send + Sync`. For an independent copy, make a new generator and
/// [`set_state`](Generator::set_state) it to this one's state.
#[derive(Clone)]
pub struct Generator(Arc<Mutex<GeneratorState>>);

/// The complete state of a [`Generator`]: its seed and how many seeds it
/// has handed out since it was seeded. Every value is a valid state.
///
/// Its text form (`Display` / `FromStr`) is `splitmix64:<seed>:<offset>`,
/// in decimal; it is what training checkpoints store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneratorState {
    /// The seed given to [`Generator::new`] or [`Generator::manual_seed`].
    pub seed: u64,
    /// How many seeds the generator has handed out since.
    pub offset: u64,
}

/// The seed of the process's default generator before any `manual_seed`.
const DEFAULT_SEED: u64 = 0x5eed;

/// Splitmix64's increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The process's default generator (see [`Generator::default_generator`]).
static DEFAULT: LazyLock<Generator> = LazyLock::new(|| Generator::new(DEFAULT_SEED));

impl Generator {
    /// A new generator whose whole sequence is fixed by `seed`
    /// (`torch.Generator().manual_seed(seed)`).
    pub fn new(seed: u64) -> Generator {
        Generator(Arc::new(Mutex::new(GeneratorState::new(seed))))
    }

    /// The process's default generator: the one [`crate::manual_seed`]
    /// reseeds, and the one random ops draw from on a thread where
    /// [`crate::rng::with_generator`] installed none
    /// (`torch.default_generator`). Every call returns the same generator.
    pub fn default_generator() -> Generator {
        DEFAULT.clone()
    }

    /// Restarts the sequence from `seed` (`Generator.manual_seed`).
    pub fn manual_seed(&self, seed: u64) {
        *self.lock() = GeneratorState::new(seed);
    }

    /// Reseeds from a non-deterministic source and returns the new seed
    /// (`Generator.seed()`): for runs that should differ, yet can be
    /// repeated from the seed they report.
    pub fn seed(&self) -> u64 {
        let seed = entropy();
        self.manual_seed(seed);
        seed
    }

    /// The seed the sequence started from (`Generator.initial_seed()`).
    pub fn initial_seed(&self) -> u64 {
        self.lock().seed
    }

    /// The complete state, to save (`Generator.get_state()`).
    pub fn state(&self) -> GeneratorState {
        *self.lock()
    }

    /// Restores a state from [`Generator::state`] (`Generator.set_state`):
    /// the generator then hands out exactly what it did after that call.
    pub fn set_state(&self, state: GeneratorState) {
        *self.lock() = state;
    }

    /// The next seed of the sequence (what each random op takes).
    pub fn next_seed(&self) -> u64 {
        self.lock().next_seed()
    }

    /// A uniform integer in `0..n` (host-side shuffles and sampling); 0 when `n` is 0.
    pub fn below(&self, n: usize) -> usize {
        self.lock().below(n)
    }

    /// A uniform float in `[0, 1)`.
    pub fn uniform(&self) -> f64 {
        self.lock().uniform()
    }

    /// A seeded Fisher–Yates permutation of `0..n` (one lock for all `n` draws).
    pub fn permutation(&self, n: usize) -> Vec<usize> {
        let mut state = self.lock();
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, state.below(i + 1));
        }
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GeneratorState> {
        // No code panics while holding the lock (it only does integer
        // arithmetic), so a poisoned lock still holds a valid state.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("Generator")
            .field("seed", &s.seed)
            .field("offset", &s.offset)
            .finish()
    }
}

/// The `k`-th seed (from 1) that a generator seeded with `seed` hands out:
/// splitmix64's output for the state `seed + k·γ`. A pure function, for
/// seeds derived from positions rather than drawn in turn.
pub fn nth_seed(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl GeneratorState {
    /// The state of a generator just seeded with `seed`.
    pub fn new(seed: u64) -> GeneratorState {
        GeneratorState { seed, offset: 0 }
    }

    fn next_seed(&mut self) -> u64 {
        self.offset = self.offset.wrapping_add(1);
        nth_seed(self.seed, self.offset)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_seed() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
}

const STATE_TAG: &str = "splitmix64";

impl fmt::Display for GeneratorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STATE_TAG}:{}:{}", self.seed, self.offset)
    }
}

impl FromStr for GeneratorState {
    type Err = Error;

    /// Parses `splitmix64:<seed>:<offset>` (decimal `u64`s), the `Display` form.
    fn from_str(text: &str) -> Result<GeneratorState> {
        let mut parts = text.split(':');
        let parsed = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(STATE_TAG), Some(seed), Some(offset), None) => {
                seed.parse().ok().zip(offset.parse().ok())
            }
            _ => None,
        };
        let (seed, offset) = parsed.ok_or_else(|| {
            Error::invalid(
                "GeneratorState",
                format!(
                    "expected `{STATE_TAG}:<seed>:<offset>` with decimal u64 values, found {text:?}"
                ),
            )
        })?;
        Ok(GeneratorState { seed, offset })
    }
}

/// 64 bits no run can predict: the standard library's per-process random
/// hash keys, mixed with the time.
fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_splitmix64_from_the_seed() {
        // Splitmix64's reference outputs for state 0 (Vigna's splitmix64.c).
        let g = Generator::new(0);
        assert_eq!(g.next_seed(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(g.next_seed(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(g.state(), GeneratorState { seed: 0, offset: 2 });
        assert_eq!(nth_seed(0, 3), g.next_seed());
    }

    #[test]
    fn clones_share_one_stream_and_states_restore_it() {
        let g = Generator::new(9);
        let h = g.clone();
        let first = g.next_seed();
        let saved = h.state();
        let next: Vec<u64> = (0..5).map(|_| h.next_seed()).collect();
        assert_eq!(g.state().offset, 6);
        let other = Generator::new(1);
        other.set_state(saved);
        assert_eq!((0..5).map(|_| other.next_seed()).collect::<Vec<_>>(), next);
        g.manual_seed(9);
        assert_eq!(h.next_seed(), first);
        assert_eq!(h.initial_seed(), 9);
    }

    #[test]
    fn state_text_round_trips_and_rejects_garbage() {
        let s = GeneratorState {
            seed: u64::MAX,
            offset: 12,
        };
        assert_eq!(s.to_string(), format!("splitmix64:{}:12", u64::MAX));
        assert_eq!(s.to_string().parse::<GeneratorState>().ok(), Some(s));
        for bad in [
            "",
            "splitmix64:1",
            "splitmix64:1:2:3",
            "philox:1:2",
            "splitmix64:-1:2",
            "splitmix64:1:18446744073709551616",
            "splitmix64: 1:2",
        ] {
            let e = bad.parse::<GeneratorState>().expect_err(bad).to_string();
            assert!(e.contains("splitmix64:<seed>:<offset>"), "{bad}: {e}");
        }
    }

    #[test]
    fn permutations_are_permutations() {
        let g = Generator::new(1);
        let p = g.permutation(10);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(g.state().offset, 9);
        assert!(g.permutation(0).is_empty());
        assert_eq!(g.below(0), 0);
    }

    #[test]
    fn seed_reseeds_and_reports_the_seed() {
        let g = Generator::new(1);
        let s = g.seed();
        assert_eq!(g.state(), GeneratorState::new(s));
    }
}
