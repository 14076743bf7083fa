//! Reading a safetensors header without trusting it.
//!
//! The header is the only part of a file that says how large things are,
//! so every number in it is checked against the bytes actually read, with
//! checked arithmetic, before anything is sliced or allocated: the length
//! field against the file's length, each tensor's offsets against the data
//! section (contiguous from 0, in order, ending exactly at the end of the
//! file), each shape's byte size against its offsets, and each shape's
//! dims against what a tensor can address (an empty tensor's other dims
//! still make its strides). A header claiming a 10 GB tensor or 2^40
//! elements in a small file is a message, not an allocation.
//!
//! (The `safetensors` crate's own reader adds the data offsets without
//! checking for overflow, so a crafted header panics it in debug builds
//! and passes its length check by wrapping in release; lam uses only its
//! `Dtype`.)

use std::collections::BTreeMap;

use safetensors::Dtype;
use serde_json::{Map, Value};

/// The largest header accepted, as the reference reader's limit.
const MAX_HEADER: usize = 100_000_000;

/// Where a tensor's bytes are, relative to the data section, and what they hold.
pub(crate) struct Stored {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A checked header: where the data starts, the tensors by name, the metadata.
pub(crate) struct Header {
    pub(crate) data_start: usize,
    pub(crate) tensors: BTreeMap<String, Stored>,
    pub(crate) metadata: BTreeMap<String, String>,
}

/// Parses and checks the header of a whole file's `bytes`, or says what is wrong.
pub(crate) fn parse(bytes: &[u8]) -> Result<Header, String> {
    let Some((len_field, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!(
            "{} bytes, fewer than the 8 of the header length",
            bytes.len()
        ));
    };
    let claimed = u64::from_le_bytes(*len_field);
    let n = usize::try_from(claimed)
        .ok()
        .filter(|&n| n <= rest.len() && n <= MAX_HEADER)
        .ok_or_else(|| {
            format!(
                "the header length field says {claimed} bytes, but {} follow it (at most {MAX_HEADER} allowed)",
                rest.len()
            )
        })?;
    let (text, data) = rest.split_at(n);
    let text = std::str::from_utf8(text).map_err(|e| format!("the header is not UTF-8: {e}"))?;
    let object: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| format!("the header is not a JSON object: {e}"))?;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, value) in object {
        if name == "__metadata__" {
            metadata = strings(value)?;
        } else {
            let stored = entry(&name, &value)?;
            tensors.insert(name, stored);
        }
    }
    check_layout(&tensors, data.len())?;
    Ok(Header {
        data_start: 8 + n,
        tensors,
        metadata,
    })
}

/// The `__metadata__` map: strings only (`null` is an empty map).
fn strings(value: Value) -> Result<BTreeMap<String, String>, String> {
    let map = match value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(map) => map,
        other => return Err(format!("`__metadata__` is not an object: {other}")),
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(format!("metadata `{k}` is not a string: {other}")),
        })
        .collect()
}

/// One tensor's `{dtype, shape, data_offsets}` entry (other fields ignored).
fn entry(name: &str, value: &Value) -> Result<Stored, String> {
    let bad = |what: &str| format!("tensor `{name}`: {what}");
    let dtype = value.get("dtype").ok_or_else(|| bad("no dtype"))?;
    let dtype = serde_json::from_value::<Dtype>(dtype.clone())
        .map_err(|_| bad(&format!("unknown dtype {dtype}")))?;
    let shape = value
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|dims| dims.iter().map(as_usize).collect::<Option<Vec<_>>>())
        .ok_or_else(|| bad("the shape is not a list of sizes"))?;
    let offsets = value
        .get("data_offsets")
        .and_then(Value::as_array)
        .and_then(|o| o.iter().map(as_usize).collect::<Option<Vec<_>>>())
        .filter(|o| o.len() == 2)
        .ok_or_else(|| bad("data_offsets is not a pair of byte offsets"))?;
    // Strides are products of the dims after each one, zeros or not.
    let addressable = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .is_some_and(|n| n <= isize::MAX as usize);
    if !addressable {
        return Err(bad(&format!(
            "shape {shape:?} has more elements than memory can address"
        )));
    }
    Ok(Stored {
        dtype,
        shape,
        start: offsets[0],
        end: offsets[1],
    })
}

/// The tensors must tile `0..data_len` in offset order, each spanning
/// exactly the bytes its shape and dtype need.
fn check_layout(tensors: &BTreeMap<String, Stored>, data_len: usize) -> Result<(), String> {
    let mut spans: Vec<(&String, &Stored)> = tensors.iter().collect();
    spans.sort_by_key(|(_, s)| (s.start, s.end));
    let mut at = 0usize;
    for (name, s) in spans {
        let elements: usize = s.shape.iter().product(); // fits: checked in `entry`
        let bytes = elements
            .checked_mul(s.dtype.bitsize())
            .filter(|bits| bits % 8 == 0)
            .map(|bits| bits / 8);
        if s.start != at || s.end < s.start || s.end > data_len {
            return Err(format!(
                "tensor `{name}`: data_offsets [{}, {}] do not follow the previous tensor at {at} \
                 within the {data_len} data bytes",
                s.start, s.end
            ));
        }
        if bytes != Some(s.end - s.start) {
            return Err(format!(
                "tensor `{name}`: {:?} {:?} does not take the {} bytes of its data_offsets",
                s.dtype,
                s.shape,
                s.end - s.start
            ));
        }
        at = s.end;
    }
    if at != data_len {
        return Err(format!(
            "the tensors take {at} bytes but the data section has {data_len}"
        ));
    }
    Ok(())
}

fn as_usize(v: &Value) -> Option<usize> {
    v.as_u64().and_then(|n| usize::try_from(n).ok())
}
