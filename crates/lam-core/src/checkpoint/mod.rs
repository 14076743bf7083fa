//! Checkpoints interchangeable with PyTorch: safetensors files, and the
//! `.pth` files of `torch.save`.
//!
//! - [`save_model`] / [`load_model`]: a [`Module`]'s `state_dict()` under
//!   PyTorch's names and shapes (`fc1.weight` `[out, in]`), `F32` as
//!   float32 and `I32` as int64 (PyTorch's dtype for integer buffers such
//!   as BatchNorm's `num_batches_tracked`). A path ending in `.pth` or
//!   `.pt` is written as `torch.save(model.state_dict(), path)` writes it,
//!   so `model.load_state_dict(torch.load(path, weights_only=True))` works
//!   in Python; any other as safetensors, for
//!   `model.load_state_dict(safetensors.torch.load_file(path))`.
//! - Loading reads either format, whatever the file's name: safetensors,
//!   or a `torch.save` file (zip or legacy layout) through a pickle reader
//!   that accepts what `torch.load(weights_only=True)` accepts and never
//!   runs code. Floats of any width load as `F32`, integers and booleans
//!   as `I32` (a value that does not fit is an error). Any other file is
//!   an error saying what it is and how to convert it.
//! - [`load_model_from`]: the tensors under a prefix — the `"model"` of a
//!   checkpoint dict `{"model": ..., "optimizer": ...}`, the `"module"` of
//!   a model saved inside `nn.DataParallel`. When a model's names and a
//!   file's differ only by such a prefix, loading says so (and names the
//!   call that loads it) rather than listing every tensor as missing.
//! - [`save_training`] / [`load_training`]: model, optimizer state, epoch
//!   and generator state (plus the caller's metadata strings) in one file,
//!   to resume a run exactly: optimizer buffers as tensors
//!   `optim.<param index>.<buffer>`, hyper-parameters and step counts in the
//!   metadata (`lam.optim.*`), the generator as `lam.generator`.
//! - [`save_tensors`] / [`load_tensors`]: any named tensors.
//!
//! Loading is strict and all-or-nothing: every name, shape and dtype is
//! checked first (missing and unexpected tensors, wrong shapes, unsupported
//! dtypes, a truncated file, a corrupt header or data), and any problem is
//! an [`Error::Format`] naming the file, each tensor concerned and what is
//! wrong, before a single parameter changes. No number in a file is
//! trusted: sizes, shapes and offsets are checked against the file's
//! length before anything is sliced or allocated (`header`, `pth`). lam's
//! checksum (`lam.checksum`) covers every tensor and every metadata entry
//! of its safetensors files, so a changed digit in an epoch, a step count
//! or a learning rate is an error, and each training value is range-checked
//! as it is read (`training`); files from other tools have no checksum and
//! load unchecked (`file` has the rules, and those for files written before
//! the checksum covered the metadata). Writing is atomic ([`write_atomic`]:
//! a temporary file in the same directory, fsynced, then renamed over the
//! target): a crash or error mid-write leaves any existing file intact.

pub(crate) mod file;
mod format;
mod header;
mod names;
mod pth;
mod source;
mod training;

pub use file::write_atomic;
pub use training::{load_training, save_training, TrainingState};

use std::collections::BTreeMap;
use std::path::Path;

use crate::nn::Module;
use crate::{Device, Error, Result, Tensor};

use file::Raw;
use source::{apply, checked_updates, checked_updates_under, Checkpoint};

/// Saves `module.state_dict()` to `path` (atomically).
pub fn save_model(module: &(impl Module + ?Sized), path: impl AsRef<Path>) -> Result<()> {
    save_tensors(&module.state_dict(), &BTreeMap::new(), path)
}

/// Loads `path` (safetensors or `.pth`, told apart by content) into
/// `module`'s parameters and buffers, in place. Every tensor of the module
/// must be in the file with its shape, and the file must hold nothing
/// else; otherwise nothing is changed.
pub fn load_model(module: &(impl Module + ?Sized), path: impl AsRef<Path>) -> Result<()> {
    let file = Checkpoint::open(path.as_ref())?;
    let updates = checked_updates(file.source(), &module.state_dict(), |_| true)?;
    apply(&updates)
}

/// Loads into `module` the tensors of `path` named `prefix.<name>`, as
/// `model.load_state_dict(torch.load(path)[prefix])` does for a checkpoint
/// dict (`"model"`), or `consume_prefix_in_state_dict_if_present` for a
/// model saved inside `nn.DataParallel` (`"module"`). Every tensor of the
/// module must be there; the file's other tensors are ignored. (A trailing
/// `.` is optional; an empty prefix is [`load_model`].)
pub fn load_model_from(
    module: &(impl Module + ?Sized),
    path: impl AsRef<Path>,
    prefix: &str,
) -> Result<()> {
    let prefix = prefix.trim_end_matches('.');
    let file = Checkpoint::open(path.as_ref())?;
    let under = format!("{prefix}.");
    let updates = checked_updates_under(file.source(), &module.state_dict(), prefix, |n| {
        prefix.is_empty() || n.starts_with(&under)
    })?;
    apply(&updates)
}

/// Saves named tensors and metadata strings to `path` (atomically). Names
/// must be unique; metadata keys starting with `lam.` are reserved. A
/// `.pth` or `.pt` path gets one dict holding the tensors and then the
/// metadata strings, as `torch.save({name: tensor, ..., key: "text", ...})`
/// writes it; any other, a safetensors file.
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
    if is_pth(path) {
        if let Some(k) = metadata.keys().find(|k| raw.contains_key(*k)) {
            return Err(Error::invalid(
                "save_tensors",
                format!("metadata key `{k}` is also a tensor name"),
            ));
        }
        let in_order: Vec<(&str, &Raw)> = tensors
            .iter()
            .filter_map(|(name, _)| Some((name.as_str(), raw.get(name)?)))
            .collect();
        let strings: Vec<(&str, &str)> = metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let bytes = pth::encode(&in_order, &strings).map_err(|msg| Error::Format {
            path: path.display().to_string(),
            msg: format!("cannot encode the tensors: {msg}"),
        })?;
        return file::write_atomic(path, &bytes);
    }
    let mut meta = metadata.clone();
    // What Hugging Face tools look for to know the names follow PyTorch.
    meta.insert("format".into(), "pt".into());
    file::write(path, &raw, meta)
}

/// True when `path` names a PyTorch file (`.pth`, `.pt`), which lam writes
/// as `torch.save` does.
fn is_pth(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("pth") || e.eq_ignore_ascii_case("pt"))
}

/// The contents of a checkpoint file, as [`load_tensors`] reads it.
#[derive(Debug, Clone)]
pub struct TensorFile {
    /// Every tensor, by name (sorted).
    pub tensors: Vec<(String, Tensor)>,
    /// The metadata strings, less lam's own `lam.*` keys and `format`; for
    /// a `.pth` file, its strings, numbers, booleans and `None`s by dotted
    /// name (`epoch`, `optimizer.param_groups.0.lr`), as text.
    pub metadata: BTreeMap<String, String>,
}

/// Every tensor in `path` (safetensors or `.pth`), by name (sorted), on
/// `device`, and the metadata strings (lam's own `lam.*` keys and `format`
/// left out). Floats load as `F32`, integers as `I32` (a value that does
/// not fit is an error). A `.pth` file's nested dicts and lists are
/// flattened to dotted names (`model.fc1.weight`), and its tensors keep
/// the strides and storage offsets they were saved with: views that shared
/// a storage in PyTorch share one here.
pub fn load_tensors(path: impl AsRef<Path>, device: &Device) -> Result<TensorFile> {
    let parsed = match Checkpoint::open(path.as_ref())? {
        Checkpoint::Safetensors(parsed) => parsed,
        Checkpoint::Pth(pth) => {
            return Ok(TensorFile {
                tensors: pth.tensors(device)?,
                metadata: pth.scalars.clone(),
            })
        }
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for name in parsed.names() {
        let Some((dtype, shape)) = parsed.info(name) else {
            continue;
        };
        // An unsupported dtype gets its error from `values`.
        let want = pth::Element::of_safetensors(dtype).map_or(crate::DType::F32, |e| e.natural());
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
