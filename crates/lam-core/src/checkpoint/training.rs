//! Training checkpoints: model, optimizer and epoch in one safetensors file.
//!
//! Layout: the model's tensors under their own names (so PyTorch can read
//! them with `strict=False`); each optimizer buffer as `optim.<i>.<buffer>`
//! (`i` the parameter's index in the optimizer); and in the metadata
//! `lam.epoch`, `lam.optim.kind`, `lam.optim.params` (the parameter count),
//! `lam.optim.hyper.<name>` and `lam.optim.<i>.step`, and `lam.generator`:
//! the state of the generator the saving thread draws from
//! ([`rng::current`], in [`GeneratorState`]'s text form). Numbers are
//! written in Rust's shortest round-trip form, so they read back bit for bit.
//!
//! The checksum covers this metadata (`file`), and each value is checked
//! again as it is read, so that no file — an old one whose checksum covers
//! only the tensors, or one made by hand — can hand training a value that
//! breaks it: the epoch and step counts must be at most
//! [`MAX_STEP`](crate::optim::MAX_STEP) (steps at least 1), hyper-parameters
//! finite `f32` values the optimizer accepts (its `load_state_dict` checks
//! their ranges: `lr >= 0`, betas in `[0, 1)`, ...), every
//! `lam.optim.*` key one this module writes, and `lam.generator` a
//! generator state (every seed and offset is one). Each error names the key.
//!
//! Loading returns the generator state in [`TrainingState::generator`] and
//! changes no generator: the caller restores it into the generator its run
//! draws from (`generator.set_state(state)`), as PyTorch programs call
//! `set_rng_state` themselves.

use std::collections::BTreeMap;
use std::path::Path;

use crate::nn::Module;
use crate::optim::{Optimizer, OptimizerState, ParamState, MAX_STEP};
use crate::rng::{self, GeneratorState};
use crate::{DType, Error, Result};

use super::file::{self, Parsed, Raw};
use super::{apply, checked_updates, user_metadata};

const OPTIM_PREFIX: &str = "optim.";
const GENERATOR_KEY: &str = "lam.generator";

/// What [`load_training`] returns besides restoring the model and optimizer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainingState {
    /// The epoch passed to [`save_training`].
    pub epoch: u64,
    /// The caller's metadata strings.
    pub metadata: BTreeMap<String, String>,
    /// The saving thread's generator state ([`rng::current`] at save time);
    /// `None` for files written before lam saved it.
    pub generator: Option<GeneratorState>,
}

/// Saves `module`, `optimizer`'s full state, `epoch`, the state of this
/// thread's current generator ([`rng::current`]) and `metadata` (keys must
/// not start with `lam.`) to `path`, atomically.
pub fn save_training(
    path: impl AsRef<Path>,
    module: &(impl Module + ?Sized),
    optimizer: &dyn Optimizer,
    epoch: u64,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    const OP: &str = "save_training";
    if let Some(k) = metadata
        .keys()
        .find(|k| k.starts_with("lam.") || *k == "format")
    {
        return Err(Error::invalid(
            OP,
            format!("metadata key `{k}` is reserved"),
        ));
    }
    let mut raw = BTreeMap::new();
    for (name, t) in module.state_dict() {
        if name.starts_with(OPTIM_PREFIX) {
            return Err(Error::invalid(
                OP,
                format!("model tensor `{name}` collides with the optimizer's `optim.` prefix"),
            ));
        }
        if raw.contains_key(&name) {
            return Err(Error::invalid(
                OP,
                format!("tensor name `{name}` appears twice"),
            ));
        }
        raw.insert(name, Raw::from_tensor(&t)?);
    }
    let state = optimizer.state_dict()?;
    let mut meta = metadata.clone();
    meta.insert("format".into(), "pt".into());
    meta.insert("lam.epoch".into(), epoch.to_string());
    meta.insert(GENERATOR_KEY.into(), rng::current().state().to_string());
    meta.insert("lam.optim.kind".into(), state.kind.clone());
    meta.insert("lam.optim.params".into(), state.params.len().to_string());
    for (k, v) in &state.hyper {
        meta.insert(format!("{HYPER_KEYS}{k}"), v.to_string());
    }
    for (i, ps) in state.params.iter().enumerate() {
        let Some(ps) = ps else { continue };
        meta.insert(step_key(i), ps.step.to_string());
        for (buf, t) in &ps.buffers {
            raw.insert(format!("{OPTIM_PREFIX}{i}.{buf}"), Raw::from_tensor(t)?);
        }
    }
    file::write(path.as_ref(), &raw, meta)
}

/// Restores `module` and `optimizer` from a file written by
/// [`save_training`] and returns its epoch, generator state and metadata.
/// Everything is checked before anything changes: on any error both are
/// untouched.
pub fn load_training(
    path: impl AsRef<Path>,
    module: &(impl Module + ?Sized),
    optimizer: &mut dyn Optimizer,
) -> Result<TrainingState> {
    let parsed = Parsed::read(path.as_ref())?;
    let updates = checked_updates(&parsed, &module.state_dict(), |n| {
        !n.starts_with(OPTIM_PREFIX)
    })?;
    let epoch = count_of(&parsed, "lam.epoch", 0)?;
    let generator = generator_state(&parsed)?;
    let state = optimizer_state(&parsed, optimizer)?;
    optimizer.load_state_dict(&state).map_err(|e| {
        parsed.error(format!(
            "the optimizer state (`lam.optim.*`) does not fit this optimizer: {e}"
        ))
    })?;
    apply(&updates)?;
    Ok(TrainingState {
        epoch,
        metadata: user_metadata(&parsed.metadata),
        generator,
    })
}

/// The generator state stored in `parsed`, if the file has one.
fn generator_state(parsed: &Parsed) -> Result<Option<GeneratorState>> {
    let Some(text) = parsed.metadata.get(GENERATOR_KEY) else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|e| parsed.error(format!("metadata `{GENERATOR_KEY}`: {e}")))
}

/// The optimizer state stored in `parsed`, its buffers on the devices of
/// `optimizer`'s parameters.
fn optimizer_state(parsed: &Parsed, optimizer: &dyn Optimizer) -> Result<OptimizerState> {
    let kind = parsed
        .metadata
        .get("lam.optim.kind")
        .cloned()
        .ok_or_else(|| {
            parsed.error("metadata `lam.optim.kind` is missing: not a training checkpoint")
        })?;
    let count = number::<usize>(parsed, "lam.optim.params")?;
    let params = optimizer.params();
    if count != params.len() {
        return Err(parsed.error(format!(
            "optimizer state for {count} parameters, but the optimizer has {}",
            params.len()
        )));
    }
    if let Some(key) = parsed
        .metadata
        .keys()
        .find(|k| k.starts_with(OPTIM_KEYS) && !is_optim_key(k, count))
    {
        return Err(parsed.error(format!(
            "metadata `{key}` is not an optimizer entry lam writes (for {count} parameters)"
        )));
    }
    let mut hyper = BTreeMap::new();
    for k in parsed.metadata.keys().filter(|k| k.starts_with(HYPER_KEYS)) {
        hyper.insert(k[HYPER_KEYS.len()..].to_string(), hyper_value(parsed, k)?);
    }
    let mut states: Vec<Option<ParamState>> = vec![None; count];
    for (i, slot) in states.iter_mut().enumerate() {
        let key = step_key(i);
        if parsed.metadata.contains_key(&key) {
            *slot = Some(ParamState {
                step: count_of(parsed, &key, 1)?,
                buffers: BTreeMap::new(),
            });
        }
    }
    let mut problems = Vec::new();
    for name in parsed.names().filter(|n| n.starts_with(OPTIM_PREFIX)) {
        let rest = &name[OPTIM_PREFIX.len()..];
        let parts = rest
            .split_once('.')
            .and_then(|(i, buf)| Some((i.parse::<usize>().ok()?, buf)));
        let Some((i, buf)) = parts else {
            problems.push(format!(
                "tensor `{name}` is not of the form optim.<index>.<buffer>"
            ));
            continue;
        };
        let Some(Some(ps)) = states.get_mut(i) else {
            problems.push(format!(
                "tensor `{name}` belongs to no parameter with optimizer state"
            ));
            continue;
        };
        let Some((_, shape)) = parsed.info(name) else {
            continue;
        };
        match parsed.values(name, shape, DType::F32) {
            Ok(host) => {
                ps.buffers
                    .insert(buf.to_string(), host.to_tensor(shape, &params[i].device())?);
            }
            Err(why) => problems.push(why),
        }
    }
    if !problems.is_empty() {
        return Err(parsed.error(problems.join("; ")));
    }
    Ok(OptimizerState {
        kind,
        hyper,
        params: states,
    })
}

const OPTIM_KEYS: &str = "lam.optim.";
const HYPER_KEYS: &str = "lam.optim.hyper.";

/// The metadata key of parameter `i`'s step count.
fn step_key(i: usize) -> String {
    format!("{OPTIM_KEYS}{i}.step")
}

/// Whether `key` is one `save_training` writes for `count` parameters.
fn is_optim_key(key: &str, count: usize) -> bool {
    let rest = &key[OPTIM_KEYS.len()..];
    let step_of = |i: &str| i.parse::<usize>().ok().filter(|&i| i < count);
    matches!(rest, "kind" | "params")
        || key.starts_with(HYPER_KEYS)
        || rest
            .strip_suffix(".step")
            .and_then(step_of)
            .is_some_and(|i| step_key(i) == key)
}

/// Metadata `key` as a count from `min` to [`MAX_STEP`], or an error naming it.
fn count_of(parsed: &Parsed, key: &str, min: u64) -> Result<u64> {
    let n = number::<u64>(parsed, key)?;
    if !(min..=MAX_STEP).contains(&n) {
        return Err(parsed.error(format!(
            "metadata `{key}` = {n} is out of range: a count from {min} to {MAX_STEP} (2^53)"
        )));
    }
    Ok(n)
}

/// Metadata `key` as a hyper-parameter: a finite value that fits in `f32`
/// (it was written from one), or an error naming it.
fn hyper_value(parsed: &Parsed, key: &str) -> Result<f64> {
    let v = number::<f64>(parsed, key)?;
    if !(v.is_finite() && v.abs() <= f32::MAX as f64) {
        return Err(parsed.error(format!(
            "metadata `{key}` = {v} is not a finite float32 value"
        )));
    }
    Ok(v)
}

/// Metadata `key` parsed as a number, or a `Format` error naming it.
fn number<T: std::str::FromStr>(parsed: &Parsed, key: &str) -> Result<T> {
    let text = parsed.metadata.get(key).ok_or_else(|| {
        parsed.error(format!(
            "metadata `{key}` is missing: not a training checkpoint"
        ))
    })?;
    text.parse()
        .map_err(|_| parsed.error(format!("metadata `{key}` = {text:?} is not a valid number")))
}
