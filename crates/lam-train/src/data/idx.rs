//! The IDX format of MNIST and Fashion-MNIST (`train-images-idx3-ubyte`,
//! plain or gzipped when the name ends in `.gz`).
//!
//! ```text
//! bytes 0-1  zero
//! byte  2    element type: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
//! byte  3    number of dims d (≥ 1)
//! then       d big-endian u32 sizes, then the elements, big-endian, row-major
//! ```
//!
//! [`read_idx`] reads any such file into an [`IdxArray`] of `f32`;
//! [`read_idx_dataset`] pairs an image file `[N, H, W]` with a label file
//! `[N]` into a [`TensorDataset`] (pixels as stored, 0–255 for MNIST).
//! A bad magic number, an unknown type, a truncated file or trailing bytes
//! are [`Error::Format`]s naming the file.

use std::path::Path;

use lam_core::{Error, Result};

use super::{HostTargets, TensorDataset};

/// An n-d array read from an IDX file.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dims stored in the header.
    pub shape: Vec<usize>,
    /// The elements, row-major, converted to `f32`.
    pub data: Vec<f32>,
}

/// Reads an IDX file (see the module docs).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let bytes = super::csv::read_bytes(path)?;
    parse_idx(&bytes, &path.display().to_string())
}

/// Parses IDX bytes; `name` is what errors call the source.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    let err = |msg: String| Error::Format {
        path: name.to_string(),
        msg,
    };
    if bytes.len() < 4 {
        return Err(err(format!(
            "truncated IDX header: {} bytes, need at least 4",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!(
            "bad IDX magic number {:02x}{:02x}{:02x}{:02x}: the first two bytes must be zero",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    let (type_name, width) = match bytes[2] {
        0x08 => ("u8", 1),
        0x09 => ("i8", 1),
        0x0B => ("i16", 2),
        0x0C => ("i32", 4),
        0x0D => ("f32", 4),
        0x0E => ("f64", 8),
        t => return Err(err(format!("unknown IDX element type 0x{t:02x}"))),
    };
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(err("IDX header declares 0 dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(err(format!(
            "truncated IDX header: {ndim} dims need {header} bytes, file has {}",
            bytes.len()
        )));
    }
    let shape: Vec<usize> = (0..ndim)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| err(format!("IDX dims {shape:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() < count {
        return Err(err(format!(
            "truncated IDX data: dims {shape:?} of {type_name} need {count} bytes, found {}",
            body.len()
        )));
    }
    if body.len() > count {
        return Err(err(format!(
            "{} unexpected bytes after the IDX data of dims {shape:?}",
            body.len() - count
        )));
    }
    let data = body
        .chunks_exact(width)
        .map(|c| match bytes[2] {
            0x08 => c[0] as f32,
            0x09 => c[0] as i8 as f32,
            0x0B => i16::from_be_bytes([c[0], c[1]]) as f32,
            0x0C => i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f32,
            0x0D => f32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            _ => f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
        })
        .collect();
    Ok(IdxArray { shape, data })
}

/// Images `[N, ...]` and integer labels `[N]` from two IDX files.
pub fn read_idx_dataset(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
) -> Result<TensorDataset> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    let x = read_idx(images)?;
    let y = read_idx(labels)?;
    if y.shape.len() != 1 {
        return Err(Error::Format {
            path: labels.display().to_string(),
            msg: format!("labels must be 1-d, found dims {:?}", y.shape),
        });
    }
    if x.shape[0] != y.shape[0] {
        return Err(Error::Format {
            path: labels.display().to_string(),
            msg: format!(
                "{} labels for {} images in {}",
                y.shape[0],
                x.shape[0],
                images.display()
            ),
        });
    }
    let classes = y
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            super::csv::class_label(v).ok_or_else(|| Error::Format {
                path: labels.display().to_string(),
                msg: format!("label {i} is {v}, not an integer in the int32 range"),
            })
        })
        .collect::<Result<_>>()?;
    TensorDataset::from_parts(x.data, &x.shape[1..], HostTargets::Classes(classes))
}

/// IDX bytes for `data` of `shape` as `u8` (for tests and small exports).
pub fn encode_idx_u8(shape: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let n = super::numel("encode_idx_u8", shape)?;
    if n != data.len()
        || shape.is_empty()
        || shape.len() > 255
        || shape.iter().any(|&d| d > u32::MAX as usize)
    {
        return Err(Error::invalid(
            "encode_idx_u8",
            format!("{} bytes cannot be stored with dims {shape:?}", data.len()),
        ));
    }
    let mut out = vec![0, 0, 0x08, shape.len() as u8];
    for &d in shape {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}
