//! Checkpoints as safetensors files, interchangeable with PyTorch.
//!
//! - [`save_model`] / [`load_model`]: a [`Module`]'s `state_dict()` under
//!   PyTorch's names and shapes (`fc1.weight` `[out, in]`), `F32` as "F32"
//!   and `I32` as "I32", so that in Python
//!   `model.load_state_dict(safetensors.torch.load_file(path))` works, and a
//!   file saved by PyTorch loads here (its `I64` tensors, such as
//!   BatchNorm's `num_batches_tracked`, are converted, erroring on overflow).
//! - [`save_training`] / [`load_training`]: model, optimizer state and epoch
//!   (plus the caller's metadata strings) in one file, to resume a run
//!   exactly: optimizer buffers as tensors `optim.<param index>.<buffer>`,
//!   hyper-parameters and step counts in the metadata (`lam.optim.*`).
//! - [`save_tensors`] / [`load_tensors`]: any named tensors.
//!
//! Loading is strict and all-or-nothing: every name, shape and dtype is
//! checked first (missing and unexpected tensors, wrong shapes, unsupported
//! dtypes, a truncated file, a corrupt header or data), and any problem is
//! an [`Error::Format`] naming the file, each tensor concerned and what is
//! wrong, before a single parameter changes. No number in a header is
//! trusted: sizes, shapes and offsets are checked against the file's
//! length before anything is sliced or allocated (`header`). Writing is atomic (a temporary
//! file in the same directory, fsynced, then renamed over the target): a
//! crash or error mid-write leaves any existing file intact.

mod file;
mod header;
mod training;

pub use training::{load_training, save_training, TrainingState};

use std::collections::BTreeMap;
use std::path::Path;

use crate::nn::Module;
use crate::{Device, Error, Result, Tensor};

use file::{Parsed, Raw};

/// Saves `module.state_dict()` to `path` (atomically).
pub fn save_model(module: &(impl Module + ?Sized), path: impl AsRef<Path>) -> Result<()> {
    save_tensors(&module.state_dict(), &BTreeMap::new(), path)
}

/// Loads `path` into `module`'s parameters and buffers, in place. Every
/// tensor of the module must be in the file with its shape, and the file
/// must hold nothing else; otherwise nothing is changed.
pub fn load_model(module: &(impl Module + ?Sized), path: impl AsRef<Path>) -> Result<()> {
    let parsed = Parsed::read(path.as_ref())?;
    let updates = checked_updates(&parsed, &module.state_dict(), |_| true)?;
    apply(&updates)
}

/// Saves named tensors and metadata strings to `path` (atomically). Names
/// must be unique; metadata keys starting with `lam.` are reserved.
pub fn save_tensors(
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let mut raw = BTreeMap::new();
    for (name, t) in tensors {
        if raw.insert(name.clone(), Raw::from_tensor(t)?).is_some() {
            return Err(Error::invalid(
                "save_tensors",
                format!("tensor name `{name}` appears twice"),
            ));
        }
    }
    if let Some(k) = metadata
        .keys()
        .find(|k| k.starts_with("lam.") || *k == "format")
    {
        return Err(Error::invalid(
            "save_tensors",
            format!("metadata key `{k}` is reserved"),
        ));
    }
    let mut meta = metadata.clone();
    // What Hugging Face tools look for to know the names follow PyTorch.
    meta.insert("format".into(), "pt".into());
    file::write(path, &raw, meta)
}

/// The contents of a safetensors file, as [`load_tensors`] reads it.
#[derive(Debug, Clone)]
pub struct TensorFile {
    /// Every tensor, by name (sorted).
    pub tensors: Vec<(String, Tensor)>,
    /// The metadata strings, less lam's own `lam.*` keys and `format`.
    pub metadata: BTreeMap<String, String>,
}

/// Every tensor in `path`, by name (sorted), on `device`, and the metadata
/// strings (lam's own `lam.*` keys and `format` left out). Floats load as
/// `F32`, integers as `I32` (an `I64` value that does not fit is an error).
pub fn load_tensors(path: impl AsRef<Path>, device: &Device) -> Result<TensorFile> {
    let parsed = Parsed::read(path.as_ref())?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for name in parsed.names() {
        let Some((dtype, shape)) = parsed.info(name) else {
            continue;
        };
        let want = match dtype {
            safetensors::Dtype::I32 | safetensors::Dtype::I64 => crate::DType::I32,
            _ => crate::DType::F32,
        };
        match parsed.values(name, shape, want) {
            Ok(host) => out.push((name.to_string(), host, shape.to_vec())),
            Err(why) => problems.push(why),
        }
    }
    if !problems.is_empty() {
        return Err(parsed.error(problems.join("; ")));
    }
    let tensors = out
        .into_iter()
        .map(|(name, host, shape)| Ok((name, host.to_tensor(&shape, device)?)))
        .collect::<Result<_>>()?;
    Ok(TensorFile {
        tensors,
        metadata: user_metadata(&parsed.metadata),
    })
}

/// The caller's metadata: everything but lam's own keys and `format`.
fn user_metadata(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter()
        .filter(|(k, _)| !k.starts_with("lam.") && *k != "format")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// For each `(name, target)`, a new tensor holding the file's values on the
/// target's device — after checking every target against the file, and that
/// the file holds no other tensor for which `owned(name)` is true. All
/// problems are reported together.
fn checked_updates(
    parsed: &Parsed,
    targets: &[(String, Tensor)],
    owned: impl Fn(&str) -> bool,
) -> Result<Vec<(Tensor, Tensor)>> {
    let mut problems = Vec::new();
    let mut values = Vec::new();
    for (name, target) in targets {
        if !target.layout().is_contiguous() || target.layout().offset != 0 {
            problems.push(format!(
                "tensor `{name}` of the model is a non-contiguous view and cannot be loaded into"
            ));
            continue;
        }
        match parsed.values(name, target.dims(), target.dtype()) {
            Ok(host) => values.push((target, host)),
            Err(why) => problems.push(why),
        }
    }
    let known: std::collections::HashSet<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
    let unexpected: Vec<&str> = parsed
        .names()
        .filter(|n| owned(n) && !known.contains(n))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!(
            "unexpected tensors not in the model: {unexpected:?}"
        ));
    }
    if !problems.is_empty() {
        return Err(parsed.error(problems.join("; ")));
    }
    // Allocate everything before changing anything.
    values
        .into_iter()
        .map(|(target, host)| {
            Ok((
                target.clone(),
                host.to_tensor(target.dims(), &target.device())?,
            ))
        })
        .collect()
}

/// Swaps the checked values in (cannot fail on a shape, dtype or device:
/// `checked_updates` matched them).
fn apply(updates: &[(Tensor, Tensor)]) -> Result<()> {
    for (target, value) in updates {
        target.set_data(value)?;
    }
    Ok(())
}
