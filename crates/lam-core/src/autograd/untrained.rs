//! The check that a tensor which gets a gradient is trained: a parameter
//! left out of a hand-written `Visit::visit` is not in `model.parameters()`,
//! so no optimizer holds it, and it silently keeps its initial value.
//!
//! Optimizers register their parameters when built. The first `backward`
//! that reaches an optimizer's parameters looks at every leaf that got a
//! gradient: one that no optimizer holds, beside others that one does, is
//! reported — on stderr (the default), as an error of that `backward`, or
//! not at all ([`set_untrained_check`]). Each optimizer is checked once, so
//! later steps pay one atomic load per `backward`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{Error, Result, Tensor};

/// What `backward` does about a tensor that got a gradient but is in no
/// optimizer, while other tensors of the same graph are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntrainedCheck {
    /// Print a warning on stderr (the default).
    Warn,
    /// Make that `backward` return [`Error::Autograd`] (for tests).
    Error,
    /// Do not check (a tensor that needs a gradient but no update, such as
    /// an input being optimized by hand).
    Off,
}

/// Sets what `backward` does about untrained tensors, for the whole process.
pub fn set_untrained_check(check: UntrainedCheck) {
    POLICY.store(check as u8, Ordering::Relaxed);
}

/// Records that an optimizer updates `params` (called by every optimizer's
/// constructor), and arms the check for its first `backward`.
pub(crate) fn register_optimized(params: &[Tensor]) {
    let mut reg = registry();
    let group = reg.next_group;
    reg.next_group += 1;
    for p in params {
        reg.owner.insert(p.id(), group);
    }
    reg.unchecked.insert(group);
    PENDING.fetch_add(1, Ordering::Relaxed);
}

/// True when a `backward` should collect its leaves for [`check`]: some
/// optimizer has not been checked yet and the check is on.
pub(crate) fn armed() -> bool {
    PENDING.load(Ordering::Relaxed) > 0 && policy() != UntrainedCheck::Off
}

/// Checks the leaves that got a gradient in one `backward` against the
/// optimizers' parameters; see the module doc.
pub(crate) fn check(leaves: &[Tensor]) -> Result<()> {
    let mut reg = registry();
    let groups: HashSet<usize> = leaves
        .iter()
        .filter_map(|t| reg.owner.get(&t.id()).copied())
        .collect();
    if groups.is_empty() {
        // No optimizer is involved in this graph (a hand-written update).
        return Ok(());
    }
    let newly_checked: Vec<usize> = groups
        .iter()
        .copied()
        .filter(|g| reg.unchecked.contains(g))
        .collect();
    if newly_checked.is_empty() {
        return Ok(());
    }
    for g in &newly_checked {
        reg.unchecked.remove(g);
    }
    PENDING.fetch_sub(newly_checked.len(), Ordering::Relaxed);
    let missing: Vec<Vec<usize>> = leaves
        .iter()
        .filter(|t| !reg.owner.contains_key(&t.id()))
        .map(Tensor::shape)
        .collect();
    drop(reg);
    if missing.is_empty() {
        return Ok(());
    }
    let n = missing.len();
    let msg = format!(
        "backward gave gradients to {n} tensor{s} that no optimizer updates (shape{s} \
         {missing:?}), beside {} that one does. A parameter left out of a hand-written \
         `Visit::visit` is never trained nor saved; #[derive(Module)] visits every field. \
         (A tensor meant to stay fixed: `detach()` it; \
         `lam::autograd::set_untrained_check(UntrainedCheck::Off)` turns this check off.)",
        leaves.len() - n,
        s = if n == 1 { "" } else { "s" },
    );
    match policy() {
        UntrainedCheck::Error => Err(Error::Autograd(msg)),
        UntrainedCheck::Warn => {
            eprintln!("lam: warning: {msg}");
            Ok(())
        }
        UntrainedCheck::Off => Ok(()),
    }
}

static POLICY: AtomicU8 = AtomicU8::new(UntrainedCheck::Warn as u8);
/// Optimizers not checked yet: the only cost of a `backward` after each
/// optimizer's first is loading this.
static PENDING: AtomicUsize = AtomicUsize::new(0);

fn policy() -> UntrainedCheck {
    match POLICY.load(Ordering::Relaxed) {
        0 => UntrainedCheck::Warn,
        1 => UntrainedCheck::Error,
        _ => UntrainedCheck::Off,
    }
}

/// Which optimizer (by construction order) holds each tensor id. Ids are
/// never reused, so entries of dropped optimizers are only a few bytes.
#[derive(Default)]
struct Registry {
    owner: HashMap<u64, usize>,
    unchecked: HashSet<usize>,
    next_group: usize,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}
