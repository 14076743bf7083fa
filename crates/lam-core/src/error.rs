//! The one error type of lam. Every fallible public operation returns
//! [`Result`]; messages name what was expected and what was found, so a user
//! can fix the call without reading lam's source.
//!
//! `Debug` prints the same message as `Display`, so `fn main() ->
//! lam::Result<()>` ends with `Error: linear: shape mismatch: ...` rather
//! than the variant's fields (which a `match` reads).

use std::fmt;
use std::path::Path;

use crate::DType;

/// Everything that can go wrong in lam, from a bad shape to a lost GPU.
#[derive(Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree (or broadcast) did not.
    #[error("{op}: shape mismatch: expected {expected}, found {found:?}")]
    ShapeMismatch {
        op: &'static str,
        expected: String,
        found: Vec<usize>,
    },
    /// A tensor had the wrong number of dimensions.
    #[error("{op}: expected a tensor of rank {expected}, found rank {found} (shape {shape:?})")]
    RankMismatch {
        op: &'static str,
        expected: String,
        found: usize,
        shape: Vec<usize>,
    },
    /// An axis or index was outside the valid range.
    #[error("{op}: index {index} is out of range for size {size}")]
    OutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    /// The data length does not match the number of elements of the shape.
    #[error("{op}: {len} values cannot fill shape {shape:?} ({expected} elements)")]
    LengthMismatch {
        op: &'static str,
        len: usize,
        shape: Vec<usize>,
        expected: usize,
    },
    /// An operation that needs at least one element got none.
    #[error("{op}: empty input")]
    Empty { op: &'static str },
    /// Two tensors live on different devices.
    #[error("{op}: tensors are on different devices: {lhs} and {rhs}")]
    DeviceMismatch {
        op: &'static str,
        lhs: String,
        rhs: String,
    },
    /// A tensor had the wrong element type.
    #[error("{op}: expected dtype {expected}, found {found}")]
    DTypeMismatch {
        op: &'static str,
        expected: DType,
        found: DType,
    },
    /// An argument outside the range the operation accepts.
    #[error("{op}: invalid argument: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// Autodiff was asked for something it cannot do.
    #[error("autograd: {0}")]
    Autograd(String),
    /// The device cannot do what was asked (no adapter, out of memory, lost).
    #[error("device: {0}")]
    Device(String),
    /// A tensor exceeds what the device can hold or bind.
    #[error("{op}: {bytes} bytes exceed the device limit of {limit} bytes")]
    TooLarge {
        op: &'static str,
        bytes: u64,
        limit: u64,
    },
    /// Memory for a buffer could not be had (the host allocator refused).
    #[error("{op}: could not allocate {bytes} bytes")]
    OutOfMemory { op: &'static str, bytes: u64 },
    /// Reading or writing a file failed (`path` is empty when unknown).
    #[error("io: {}{msg}", path_prefix(.path))]
    Io { path: String, msg: String },
    /// A file's content is not what was expected (corrupt, truncated, mismatched).
    #[error("format: {path}: {msg}")]
    Format { path: String, msg: String },
    /// Work shared with other processes or devices failed: a replica that
    /// stopped, a collective that timed out, replicas that disagree.
    #[error("distributed: {0}")]
    Distributed(String),
}

/// `Result` with lam's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidArgument`] with a formatted message.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    /// An [`Error::Io`] for `path`: `std::fs::read(&p).map_err(|e| Error::io(&p, e))?`.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            msg: err.to_string(),
        }
    }

    /// An [`Error::ShapeMismatch`].
    pub fn shape(op: &'static str, expected: impl Into<String>, found: &[usize]) -> Self {
        Error::ShapeMismatch {
            op,
            expected: expected.into(),
            found: found.to_vec(),
        }
    }
}

/// An I/O error whose path is not known (`?` on a `std::io::Result`);
/// [`Error::io`] names the path.
impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Io {
            path: String::new(),
            msg: err.to_string(),
        }
    }
}

impl fmt::Debug for Error {
    /// The `Display` message (match on the variant for its fields).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `path: ` before an I/O message, or nothing when the path is unknown.
fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}
