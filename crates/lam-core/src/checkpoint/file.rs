//! The safetensors file itself: encoding named tensors, parsing and checking
//! a file, converting stored dtypes to lam's, a checksum, and atomic writes.
//!
//! A safetensors file is an 8-byte little-endian header length, a JSON
//! header (`name -> {dtype, shape, data_offsets}` plus a `__metadata__`
//! string map), then the raw little-endian data. The format has no
//! checksum, so lam adds one to the metadata and checks it on every load:
//!
//! - `lam.checksum` = `v2:` and 16 hex digits: FNV-1a 64 over the tensor
//!   count and each tensor's name, dtype, shape and bytes, then the count
//!   of the other metadata entries and each key and value, in name order,
//!   every field preceded by its length. Everything a load hands to a model
//!   or an optimizer — tensors, epoch, step counts, hyper-parameters, the
//!   caller's strings — is covered; what is not (the JSON's whitespace,
//!   escapes and key order, the data offsets) cannot change a loaded value
//!   without the parser's checks or the tensor bytes noticing.
//! - 16 hex digits without the prefix: the checksum of files written
//!   before it covered the metadata, over the tensors alone (the same
//!   fields, with no counts and no length before the dtype). Such files
//!   still load with their tensors checked; `training` validates each
//!   metadata value it reads, so an edit can at worst give a wrong value
//!   in range, never one that breaks training.
//! - None: a file from another tool (PyTorch, Hugging Face), loaded
//!   unchecked — unless it holds lam's own `lam.*` keys, which lam has
//!   always written with a checksum: then its checksum key was damaged,
//!   and the file is refused.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use safetensors::Dtype;

use super::header::{self, Stored};
use super::pth::Element;
use crate::{DType, Error, Result, Tensor};

/// The metadata key of lam's checksum.
pub(crate) const CHECKSUM_KEY: &str = "lam.checksum";

/// What starts a checksum that covers the metadata as well as the tensors.
const COVERS_METADATA: &str = "v2:";

/// One tensor's bytes as stored.
pub(crate) struct Raw {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) bytes: Vec<u8>,
}

impl Raw {
    /// A tensor's values read back to the host, as `F32` or `F16`, or as
    /// `I64` for lam's `I32` tensors: PyTorch keeps integer buffers
    /// (BatchNorm's `num_batches_tracked`) as int64, and a file must match it
    /// dtype for dtype.
    pub(crate) fn from_tensor(t: &Tensor) -> Result<Raw> {
        let (dtype, bytes) = match t.dtype() {
            DType::F32 => (
                Dtype::F32,
                t.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            DType::F16 => (
                Dtype::F16,
                t.to_vec_f16()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            DType::I32 => (
                Dtype::I64,
                t.to_vec_i32()?
                    .iter()
                    .flat_map(|&v| i64::from(v).to_le_bytes())
                    .collect(),
            ),
        };
        Ok(Raw {
            dtype,
            shape: t.shape(),
            bytes,
        })
    }
}

/// Encodes `tensors` (unique names) and `metadata` as a safetensors file,
/// adding the checksum, and writes it atomically to `path`.
pub(crate) fn write(
    path: &Path,
    tensors: &BTreeMap<String, Raw>,
    mut metadata: BTreeMap<String, String>,
) -> Result<()> {
    metadata.remove(CHECKSUM_KEY);
    let sum = checksum(
        tensors
            .iter()
            .map(|(k, r)| (k.as_str(), r.dtype, r.shape.as_slice(), r.bytes.as_slice())),
        &metadata,
    );
    metadata.insert(CHECKSUM_KEY.into(), format!("{COVERS_METADATA}{sum:016x}"));
    let bytes = encode(tensors, &metadata).map_err(|msg| Error::Format {
        path: path.display().to_string(),
        msg: format!("cannot encode the tensors: {msg}"),
    })?;
    write_atomic(path, &bytes)
}

/// The bytes of a safetensors file. Unlike `safetensors::serialize`, whose
/// metadata map comes out in hash order, the header's keys are sorted and
/// the data laid out in name order, so equal inputs give equal files.
/// (Tensors follow each other unpadded: an `F16` tensor of odd length
/// leaves the next one 2-byte aligned, which safetensors allows and every
/// reader handles, lam's included, since it decodes bytes, not slices.)
fn encode(
    tensors: &BTreeMap<String, Raw>,
    metadata: &BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    use serde_json::{json, Map, Value};
    let mut header = Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0usize;
    for (name, raw) in tensors {
        let end = offset + raw.bytes.len();
        let dtype = serde_json::to_value(raw.dtype).map_err(|e| e.to_string())?;
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": raw.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::to_string(&Value::Object(header)).map_err(|e| e.to_string())?;
    // The data starts 8-byte aligned: pad the header with spaces, as the reference writer does.
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    for raw in tensors.values() {
        out.extend_from_slice(&raw.bytes);
    }
    Ok(out)
}

/// A parsed safetensors file whose header and checksum have been checked.
pub(crate) struct Parsed {
    path: String,
    bytes: Vec<u8>,
    data_start: usize,
    tensors: BTreeMap<String, Stored>,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl Parsed {
    /// Reads and checks `path`: a missing file is an `Io` error, anything
    /// malformed (truncated, bad header, offsets, checksum) a `Format` error.
    pub(crate) fn read(path: &Path) -> Result<Parsed> {
        let shown = path.display().to_string();
        let bytes = fs::read(path).map_err(|e| Error::Io {
            path: shown.clone(),
            msg: e.to_string(),
        })?;
        let header = header::parse(&bytes).map_err(|e| Error::Format {
            path: shown.clone(),
            msg: format!("not a valid safetensors file (truncated or corrupt header?): {e}"),
        })?;
        let parsed = Parsed {
            path: shown,
            bytes,
            data_start: header.data_start,
            tensors: header.tensors,
            metadata: header.metadata,
        };
        parsed.verify_checksum()?;
        Ok(parsed)
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

    /// The stored dtype and shape of `name`.
    pub(crate) fn info(&self, name: &str) -> Option<(Dtype, &[usize])> {
        self.tensors
            .get(name)
            .map(|s| (s.dtype, s.shape.as_slice()))
    }

    /// `name`'s values converted for a tensor of `shape` and `dtype`, or a
    /// message saying why they cannot be (for the caller's error list).
    pub(crate) fn values(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
    ) -> std::result::Result<Host, String> {
        let Some(stored) = self.tensors.get(name) else {
            return Err(format!("tensor `{name}` is missing from the file"));
        };
        if stored.shape.as_slice() != shape {
            return Err(format!(
                "tensor `{name}` has shape {:?} in the file but {shape:?} in the model",
                stored.shape
            ));
        }
        convert(self.data(stored), stored.dtype, dtype)
            .map_err(|why| format!("tensor `{name}`: {why}"))
    }

    /// The stored bytes of `name` (bounds checked by the parser).
    pub(crate) fn bytes_of(&self, name: &str) -> Option<&[u8]> {
        self.tensors.get(name).map(|s| self.data(s))
    }

    /// The stored bytes of one tensor (bounds checked by the parser).
    fn data(&self, stored: &Stored) -> &[u8] {
        &self.bytes[self.data_start + stored.start..self.data_start + stored.end]
    }

    /// Checks lam's checksum (see the module docs for its two forms), or
    /// that a file without one holds none of lam's keys.
    fn verify_checksum(&self) -> Result<()> {
        let tensors = || {
            self.tensors
                .iter()
                .map(|(k, s)| (k.as_str(), s.dtype, s.shape.as_slice(), self.data(s)))
        };
        let Some(stored) = self.metadata.get(CHECKSUM_KEY) else {
            return match self.metadata.keys().find(|k| k.starts_with("lam.")) {
                Some(k) => Err(self.error(format!(
                    "metadata `{k}` is lam's, but `{CHECKSUM_KEY}`, which lam always writes \
                     beside it, is missing: the file is damaged"
                ))),
                None => Ok(()),
            };
        };
        let (found, what) = if let Some(hex) = stored.strip_prefix(COVERS_METADATA) {
            let mut others = self.metadata.clone();
            others.remove(CHECKSUM_KEY);
            (hex, checksum(tensors(), &others))
        } else {
            (stored.as_str(), checksum_of_tensors(tensors()))
        };
        let well_formed = found.len() == 16 && found.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(self.error(format!(
                "metadata `{CHECKSUM_KEY}` = {stored:?} is not a checksum lam writes: the file is damaged"
            )));
        }
        if format!("{what:016x}") != found {
            return Err(self.error(format!(
                "checksum mismatch (stored {found}, computed {what:016x}): the file is corrupt \
                 (its tensors or metadata changed after lam wrote it)"
            )));
        }
        Ok(())
    }
}

/// Values on the host, ready to become a tensor.
pub(crate) enum Host {
    F32(Vec<f32>),
    I32(Vec<i32>),
    F16(Vec<half::f16>),
}

impl Host {
    /// A tensor of `shape` on `device` holding these values.
    pub(crate) fn to_tensor(&self, shape: &[usize], device: &crate::Device) -> Result<Tensor> {
        match self {
            Host::F32(v) => Tensor::from_slice(v, shape, device),
            Host::I32(v) => Tensor::from_vec_i32(v.clone(), shape, device),
            Host::F16(v) => Tensor::from_f16(v, shape, device),
        }
    }
}

/// The stored bytes of one tensor converted to `want` by the rules every
/// checkpoint format shares ([`Element`]).
fn convert(bytes: &[u8], stored: Dtype, want: DType) -> std::result::Result<Host, String> {
    let element = Element::of_safetensors(stored).ok_or_else(|| {
        format!(
            "unsupported dtype {stored:?} (lam reads floats of 16 to 64 bits, integers and bool)"
        )
    })?;
    element.convert(bytes, false, 0..bytes.len() / element.size(), want)
}

/// lam's checksum: FNV-1a 64 over the tensors and then the metadata (less
/// the checksum itself), each in name order, every count and field length
/// included so that no two different files feed it the same bytes.
fn checksum<'a>(
    tensors: impl ExactSizeIterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
    metadata: &BTreeMap<String, String>,
) -> u64 {
    let mut h = Fnv::new();
    h.size(tensors.len());
    for (name, dtype, shape, data) in tensors {
        h.field(name.as_bytes());
        h.field(format!("{dtype:?}").as_bytes());
        h.size(shape.len());
        for &d in shape {
            h.size(d);
        }
        h.field(data);
    }
    h.size(metadata.len());
    for (key, value) in metadata {
        h.field(key.as_bytes());
        h.field(value.as_bytes());
    }
    h.0
}

/// The checksum of files written before it covered the metadata: the
/// tensors alone, their dtypes without a length.
fn checksum_of_tensors<'a>(
    tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
) -> u64 {
    let mut h = Fnv::new();
    for (name, dtype, shape, data) in tensors {
        h.field(name.as_bytes());
        h.eat(format!("{dtype:?}").as_bytes());
        h.size(shape.len());
        for &d in shape {
            h.size(d);
        }
        h.field(data);
    }
    h.0
}

/// FNV-1a 64. Any one changed byte changes the sum: each step (xor a byte,
/// multiply by an odd prime) is a bijection of the state.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A count or a size, as 8 little-endian bytes.
    fn size(&mut self, n: usize) {
        self.eat(&(n as u64).to_le_bytes());
    }

    /// A length, then the bytes.
    fn field(&mut self, bytes: &[u8]) {
        self.size(bytes.len());
        self.eat(bytes);
    }
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new
/// one, never a mix — how every checkpoint is written, for other files that
/// must survive a crash (lam-train's history): write `path.tmp` in the same
/// directory, fsync it, rename it over `path`, fsync the directory. On
/// failure the temporary file is removed and an existing `path` is
/// untouched; a crash can leave a stale `path.tmp`, which the next write
/// replaces. An error is an [`Error::Io`] naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    let attempt = || -> std::io::Result<()> {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(tmp, path)
    };
    if let Err(e) = attempt() {
        if tmp.is_file() {
            let _ = fs::remove_file(tmp);
        }
        return Err(io(e));
    }
    // Make the rename itself durable. Best effort: not every platform can
    // open a directory for syncing.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
