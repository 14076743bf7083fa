//! Loading into a model from any checkpoint format: a [`Source`] is a
//! parsed file that can list its tensors and convert one for a target, and
//! [`checked_updates`] checks every target against it — names (with the
//! prefix diagnosis of `names`), shapes, dtypes, values — before
//! anything changes.

use std::collections::HashSet;
use std::path::Path;

use crate::{DType, Error, Result, Tensor};

use super::file::{Host, Parsed};
use super::format::{self, Format};
use super::names;
use super::pth::PthFile;

/// A parsed checkpoint file whose tensors a model can load.
pub(crate) trait Source {
    /// Tensor names, sorted.
    fn tensor_names(&self) -> Vec<&str>;
    /// `name`'s values converted for a tensor of `shape` and `dtype`, or
    /// why they cannot be (`name` is in the file).
    fn convert(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
    ) -> std::result::Result<Host, String>;
    /// A `Format` error about this file.
    fn format_error(&self, msg: String) -> Error;
}

impl Source for Parsed {
    fn tensor_names(&self) -> Vec<&str> {
        self.names().collect()
    }

    fn convert(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
    ) -> std::result::Result<Host, String> {
        self.values(name, shape, dtype)
    }

    fn format_error(&self, msg: String) -> Error {
        self.error(msg)
    }
}

impl Source for PthFile {
    fn tensor_names(&self) -> Vec<&str> {
        self.names().collect()
    }

    fn convert(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
    ) -> std::result::Result<Host, String> {
        self.values(name, shape, dtype)
    }

    fn format_error(&self, msg: String) -> Error {
        self.error(msg)
    }
}

/// A checkpoint file of either format, parsed and checked.
pub(crate) enum Checkpoint {
    Safetensors(Parsed),
    Pth(PthFile),
}

impl Checkpoint {
    /// Opens `path`, whatever its extension, by what its bytes are.
    pub(crate) fn open(path: &Path) -> Result<Checkpoint> {
        Ok(match format::detect(path)? {
            Format::Safetensors => Checkpoint::Safetensors(Parsed::read(path)?),
            Format::Pth(kind) => {
                let bytes = std::fs::read(path).map_err(|e| Error::Io {
                    path: path.display().to_string(),
                    msg: e.to_string(),
                })?;
                Checkpoint::Pth(PthFile::parse(&path.display().to_string(), bytes, kind)?)
            }
        })
    }

    pub(crate) fn source(&self) -> &dyn Source {
        match self {
            Checkpoint::Safetensors(p) => p,
            Checkpoint::Pth(p) => p,
        }
    }
}

/// For each `(name, target)`, a new tensor holding the file's values on the
/// target's device — after checking every target against the file, and that
/// the file holds no other tensor for which `owned(name)` is true. All
/// problems are reported together.
pub(crate) fn checked_updates(
    source: &(impl Source + ?Sized),
    targets: &[(String, Tensor)],
    owned: impl Fn(&str) -> bool,
) -> Result<Vec<(Tensor, Tensor)>> {
    checked_updates_under(source, targets, "", owned)
}

/// [`checked_updates`] with each target looked up as `prefix.name`.
pub(crate) fn checked_updates_under(
    source: &(impl Source + ?Sized),
    targets: &[(String, Tensor)],
    prefix: &str,
    owned: impl Fn(&str) -> bool,
) -> Result<Vec<(Tensor, Tensor)>> {
    let in_file: HashSet<&str> = source.tensor_names().into_iter().collect();
    let full = |name: &str| crate::nn::join(prefix, name);
    let mut problems = Vec::new();
    let mut values = Vec::new();
    let mut missing = Vec::new();
    for (name, target) in targets {
        if !target.layout().is_contiguous() || target.layout().offset != 0 {
            problems.push(format!(
                "tensor `{name}` of the model is a non-contiguous view and cannot be loaded into"
            ));
            continue;
        }
        let key = full(name);
        if !in_file.contains(key.as_str()) {
            missing.push(name.as_str());
            continue;
        }
        match source.convert(&key, target.dims(), target.dtype()) {
            Ok(host) => values.push((target, host)),
            Err(why) => problems.push(why),
        }
    }
    let known: HashSet<String> = targets.iter().map(|(n, _)| full(n)).collect();
    let mut unexpected: Vec<&str> = in_file
        .iter()
        .copied()
        .filter(|n| owned(n) && !known.contains(*n))
        .collect();
    unexpected.sort_unstable();
    match names::prefix_problem(&missing, &in_file, prefix) {
        Some((msg, explained)) => {
            problems.push(msg);
            let others = unexpected
                .iter()
                .filter(|n| !explained.contains(**n))
                .count();
            if others > 0 {
                problems.push(format!(
                    "the file also holds {others} tensors the model does not"
                ));
            }
        }
        None => {
            problems.extend(
                missing
                    .iter()
                    .map(|n| format!("tensor `{}` is missing from the file", full(n))),
            );
            if !unexpected.is_empty() {
                problems.push(format!(
                    "unexpected tensors not in the model: {unexpected:?}"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(source.format_error(problems.join("; ")));
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
pub(crate) fn apply(updates: &[(Tensor, Tensor)]) -> Result<()> {
    for (target, value) in updates {
        target.set_data(value)?;
    }
    Ok(())
}
