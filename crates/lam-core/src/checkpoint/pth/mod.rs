//! PyTorch's `.pth` files, as `torch.save` writes them and
//! `torch.load(weights_only=True)` reads them.
//!
//! Two layouts, both a pickle that describes the object plus the raw bytes
//! of its storages:
//!
//! - **zip** (PyTorch ≥ 1.6, the default): a stored zip archive (`zip`)
//!   whose records sit under one folder: `data.pkl` (the pickle),
//!   `data/<key>` (each storage's bytes), `byteorder` (`little` or `big`),
//!   `version`, `.format_version` and `.storage_alignment`.
//! - **legacy** (`_use_new_zipfile_serialization=False`, `legacy`): five
//!   pickles in a row (a magic number, the protocol version, system info,
//!   the object, the storage keys), then each storage as an 8-byte element
//!   count and its little-endian bytes.
//!
//! The pickle runs through lam's restricted interpreter (`pickle`,
//! `globals`): the opcodes and globals `weights_only=True` allows, no code
//! execution. The object it builds is flattened (`value::flatten`) into
//! tensors by dotted name — a nested checkpoint `{"model": state_dict,
//! "optimizer": ...}` gives `model.fc1.weight`, ... — each a strided view
//! of a storage (`TensorRef`): views sharing a storage, transposes and
//! expands load as PyTorch saved them. Every storage, view and size is
//! checked against the file's bytes before any value is converted
//! (`element`).
//!
//! Writing (`writer`) produces the zip layout with PyTorch's record names,
//! alignment and pickle, so `torch.load(path, weights_only=True)` and
//! `model.load_state_dict(..., strict=True)` accept lam's files.

mod element;
mod globals;
mod legacy;
mod pickle;
mod rebuild;
mod value;
mod writer;
mod zip;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::rc::Rc;

use crate::{DType, Device, Error, Layout, Result, Tensor};

use super::file::Host;
pub(crate) use element::Element;
use value::{Flat, Heap, StorageRef, TensorRef};

pub(crate) use legacy::is_legacy;
pub(crate) use writer::encode;

/// Which of the two layouts a file has (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Zip,
    Legacy,
}

/// A parsed `.pth` file whose tensors have all been checked against its bytes.
pub(crate) struct PthFile {
    path: String,
    bytes: Vec<u8>,
    big_endian: bool,
    /// Each storage's bytes in `bytes`, by key.
    storages: HashMap<String, Range<usize>>,
    tensors: BTreeMap<String, Rc<TensorRef>>,
    /// Strings, numbers and booleans beside the tensors, by dotted name.
    pub(crate) scalars: BTreeMap<String, String>,
}

impl PthFile {
    /// Parses `bytes`, the file at `path`, of the given layout.
    pub(crate) fn parse(path: &str, bytes: Vec<u8>, kind: Kind) -> Result<PthFile> {
        let error = |msg: String| Error::Format {
            path: path.to_string(),
            msg,
        };
        let parsed = match kind {
            Kind::Zip => from_zip(&bytes),
            Kind::Legacy => legacy::parse(&bytes),
        };
        let (flat, storages, big_endian) = parsed.map_err(error)?;
        Ok(PthFile {
            path: path.to_string(),
            bytes,
            big_endian,
            storages,
            tensors: flat.tensors,
            scalars: flat.scalars,
        })
    }

    /// A `Format` error about this file.
    pub(crate) fn error(&self, msg: impl Into<String>) -> Error {
        Error::Format {
            path: self.path.clone(),
            msg: msg.into(),
        }
    }

    /// Tensor names, sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// `name`'s values converted for a tensor of `shape` and `dtype`, or a
    /// message saying why they cannot be.
    pub(crate) fn values(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
    ) -> std::result::Result<Host, String> {
        let Some(t) = self.tensors.get(name) else {
            return Err(format!("tensor `{name}` is missing from the file"));
        };
        if t.shape != shape {
            return Err(format!(
                "tensor `{name}` has shape {:?} in the file but {shape:?} in the model",
                t.shape
            ));
        }
        let (data, layout) = self
            .view(t)
            .map_err(|why| format!("tensor `{name}`: {why}"))?;
        t.element
            .convert(data, self.big_endian, layout.offsets(), dtype)
            .map_err(|why| format!("tensor `{name}`: {why}"))
    }

    /// Every tensor on `device`, by name: floats as `F32`, integers and
    /// booleans as `I32`. Each storage becomes one tensor, and each tensor
    /// a view of it with the strides and offset it was saved with, so
    /// views that shared a storage in PyTorch share one here.
    pub(crate) fn tensors(&self, device: &Device) -> Result<Vec<(String, Tensor)>> {
        // One base tensor per storage and element type.
        let mut bases: HashMap<(&str, Element), Tensor> = HashMap::new();
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (name, t) in &self.tensors {
            let (data, layout) = match self.view(t) {
                Ok(v) => v,
                Err(why) => {
                    problems.push(format!("tensor `{name}`: {why}"));
                    continue;
                }
            };
            let base = match bases.entry((t.storage.key.as_str(), t.element)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let n = data.len() / t.element.size();
                    let want = t.element.natural();
                    match t.element.convert(data, self.big_endian, 0..n, want) {
                        Ok(host) => e.insert(host.to_tensor(&[n], device)?),
                        Err(why) => {
                            problems.push(format!("tensor `{name}`: {why}"));
                            continue;
                        }
                    }
                }
            };
            out.push((
                name.clone(),
                Tensor::from_storage(base.storage(), layout, device),
            ));
        }
        if !problems.is_empty() {
            return Err(self.error(problems.join("; ")));
        }
        Ok(out)
    }

    /// The bytes of a tensor's storage and the tensor's layout over them,
    /// in its own elements. A legacy storage view's offset moves the
    /// layout's, so views of one storage share it.
    fn view(&self, t: &TensorRef) -> std::result::Result<(&[u8], Layout), String> {
        // Checked when the file was parsed: every key is present, every
        // view within its storage, every tensor within its view.
        let data = &self.bytes[self.storages[&t.storage.key].clone()];
        let skip = match &t.storage.view {
            None => 0,
            Some((key, offset, _)) => {
                let bytes = *offset as usize * t.storage.element.size();
                if !bytes.is_multiple_of(t.element.size()) {
                    return Err(format!(
                        "the storage view `{key}` starts at byte {bytes}, between two {} elements",
                        t.element.name()
                    ));
                }
                bytes / t.element.size()
            }
        };
        let layout = Layout {
            shape: t.shape.clone(),
            strides: t.strides.clone(),
            offset: t.offset + skip,
        };
        Ok((data, layout))
    }
}

/// What a parsed layout yields: the flattened object, each storage's bytes
/// by key, and whether the data is big-endian.
type Parsed = (Flat, HashMap<String, Range<usize>>, bool);

/// Parses the zip layout (see the module docs).
fn from_zip(bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let records = zip::read(bytes).map_err(|e| format!("not a valid zip archive: {e}"))?;
    if records.iter().any(|r| r.name.ends_with(".npy"))
        && !records.iter().any(|r| r.name.ends_with("data.pkl"))
    {
        return Err("a NumPy .npz archive, not a torch.save file: in Python, \
                    safetensors.numpy.save_file(dict(numpy.load(path)), \"model.safetensors\") \
                    converts it"
            .into());
    }
    let first = records.first().ok_or("the zip archive is empty")?;
    let Some((folder, _)) = first.name.split_once('/') else {
        return Err(format!(
            "a zip archive whose first record, `{}`, is in no folder: not written by torch.save",
            first.name
        ));
    };
    let prefix = format!("{folder}/");
    let by_name: HashMap<&str, Range<usize>> = records
        .iter()
        .filter_map(|r| Some((r.name.strip_prefix(&prefix)?, r.start..r.end)))
        .collect();
    if by_name.contains_key("constants.pkl") || by_name.keys().any(|n| n.starts_with("code/")) {
        return Err("a TorchScript archive (torch.jit.save), not a state dict: in Python, \
                    torch.save(torch.jit.load(path).state_dict(), \"model.pth\") writes one lam reads"
            .into());
    }
    let Some(pickle) = by_name.get("data.pkl") else {
        return Err(format!(
            "a zip archive without `{folder}/data.pkl`: not written by torch.save"
        ));
    };
    let big_endian = match by_name.get("byteorder").map(|r| &bytes[r.clone()]) {
        None | Some(b"little") => false,
        Some(b"big") => true,
        Some(other) => {
            return Err(format!(
                "the byteorder record says {:?}, not \"little\" or \"big\"",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let mut heap = Heap::default();
    let (root, end) = pickle::load(&bytes[..pickle.end], pickle.start, &mut heap)
        .map_err(|e| format!("data.pkl: {e}"))?;
    if end != pickle.end {
        return Err(format!(
            "data.pkl: {} bytes follow the pickle's STOP",
            pickle.end - end
        ));
    }
    let flat = value::flatten(&root, &heap, budget(pickle.len()))?;
    let mut storages = HashMap::new();
    for (name, t) in &flat.tensors {
        let s = &t.storage;
        let Some(range) = by_name.get(format!("data/{}", s.key).as_str()) else {
            return Err(format!(
                "tensor `{name}`: its storage `data/{}` is not in the archive",
                s.key
            ));
        };
        check_storage_bytes(name, s, range.len())?;
        storages.insert(s.key.clone(), range.clone());
    }
    Ok((flat, storages, big_endian))
}

/// How many values flattening a pickle of `len` bytes may visit (see
/// `value::flatten`).
fn budget(len: usize) -> usize {
    4 * len + 1024
}

/// The storage's stored bytes must be exactly the elements its persistent
/// id declares (and a legacy view must lie within them).
fn check_storage_bytes(
    name: &str,
    s: &StorageRef,
    stored: usize,
) -> std::result::Result<(), String> {
    let declared = s.numel.checked_mul(s.element.size() as u64);
    if declared != Some(stored as u64) {
        return Err(format!(
            "tensor `{name}`: its storage `{}` holds {stored} bytes, but {} {} elements were declared",
            s.key,
            s.numel,
            s.element.name()
        ));
    }
    if let Some((key, offset, size)) = &s.view {
        if offset.checked_add(*size).is_none_or(|end| end > s.numel) {
            return Err(format!(
                "tensor `{name}`: the storage view `{key}` ({size} elements at {offset}) \
                 lies outside storage `{}` of {} elements",
                s.key, s.numel
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::Writer::new();
        for (name, data) in records {
            w.add(name, data);
        }
        w.finish()
    }

    fn refused(records: &[(&str, &[u8])]) -> String {
        from_zip(&archive(records)).err().expect("not a state dict")
    }

    #[test]
    fn other_zip_archives_say_what_they_are() {
        let pickle: &[u8] = b"\x80\x02}.";
        let e = refused(&[("m/data.pkl", pickle), ("m/constants.pkl", pickle)]);
        assert!(
            e.contains("TorchScript") && e.contains("state_dict()"),
            "{e}"
        );
        let e = refused(&[("w.npy", b"\x93NUMPY")]);
        assert!(e.contains("NumPy .npz"), "{e}");
        let e = refused(&[("data.pkl", pickle)]);
        assert!(e.contains("in no folder"), "{e}");
        let e = refused(&[("m/other", pickle)]);
        assert!(e.contains("without `m/data.pkl`"), "{e}");
        let e = refused(&[("m/data.pkl", pickle), ("m/byteorder", b"middle")]);
        assert!(e.contains("\"middle\""), "{e}");
        let e = refused(&[("m/data.pkl", b"\x80\x02}.junk")]);
        assert!(e.contains("follow the pickle's STOP"), "{e}");
        assert!(from_zip(&archive(&[("m/data.pkl", pickle)])).is_ok());
    }

    #[test]
    fn storages_must_hold_what_their_tensors_declare() {
        // {"w": _rebuild_tensor_v2(storage('0', FloatStorage, numel 2), 0, (2,), (1,), False, OrderedDict())}
        let pickle = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs.";
        let two_floats: &[u8] = &[0, 0, 128, 63, 0, 0, 0, 64];
        let (flat, _, _) = from_zip(&archive(&[
            ("m/data.pkl", pickle),
            ("m/data/0", two_floats),
        ]))
        .expect("valid");
        assert_eq!(flat.tensors["w"].shape, vec![2]);
        let e = refused(&[("m/data.pkl", pickle), ("m/data/0", &two_floats[..4])]);
        assert!(e.contains("holds 4 bytes, but 2 float32 elements"), "{e}");
        let e = refused(&[("m/data.pkl", pickle)]);
        assert!(e.contains("`data/0` is not in the archive"), "{e}");
    }
}
