//! The layout `torch.save(..., _use_new_zipfile_serialization=False)`
//! writes (the default before PyTorch 1.6): five pickles in a row — the
//! magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, system
//! information, the object, the list of storage keys — then, for each key
//! in that order, the storage's element count (8 bytes, little-endian) and
//! its elements, little-endian.
//!
//! The element size of a storage is known only from the persistent ids
//! that name it, so every listed storage must be one a tensor uses (as
//! PyTorch requires too); the counts must match what the ids declared, and
//! the storages must end exactly at the end of the file.

use std::collections::HashMap;
use std::ops::Range;

use super::value::{self, Heap, StorageRef, Value};
use super::{budget, check_storage_bytes, pickle, Parsed};

/// The first bytes of a legacy file: `PROTO n`, then the magic number as
/// `LONG1` (10 bytes, little-endian).
pub(crate) fn is_legacy(bytes: &[u8]) -> bool {
    bytes.len() >= 14 && bytes[0] == 0x80 && bytes[2..4] == [0x8a, 10] && bytes[4..14] == MAGIC
}

/// 0x1950a86a20f9469cfc6c, little-endian.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// Parses a legacy file (see the module docs).
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut heap = Heap::default();
    let mut at = 0;
    let mut pickles = Vec::new();
    for what in [
        "the magic number",
        "the protocol version",
        "the system information",
        "the object",
        "the storage keys",
    ] {
        let (v, end) = pickle::load(bytes, at, &mut heap).map_err(|e| format!("{what}: {e}"))?;
        pickles.push(v);
        at = end;
    }
    match &pickles[..] {
        [Value::BigInt(m), Value::Int(PROTOCOL_VERSION), Value::Dict(_), _, _] if **m == MAGIC => {}
        [Value::BigInt(m), Value::Int(PROTOCOL_VERSION), info, _, _] if **m == MAGIC => {
            return Err(format!(
                "the system information is a {}, not a dict",
                value::kind(info)
            ))
        }
        [Value::BigInt(m), v, ..] if **m == MAGIC => {
            return Err(format!(
                "the protocol version is {}, where PyTorch writes {PROTOCOL_VERSION}",
                match v {
                    Value::Int(i) => i.to_string(),
                    other => format!("a {}", value::kind(other)),
                }
            ))
        }
        _ => return Err("no torch.save magic number at the start (corrupt?)".into()),
    }
    let flat = value::flatten(&pickles[3], &heap, budget(bytes.len()))?;
    let keys = string_list(&pickles[4], &heap)?;

    // The storages the tensors declare, by key.
    let mut declared: HashMap<&str, (&str, &StorageRef)> = HashMap::new();
    for (name, t) in &flat.tensors {
        declared
            .entry(t.storage.key.as_str())
            .or_insert((name, &t.storage));
    }
    let mut storages: HashMap<String, Range<usize>> = HashMap::new();
    for key in &keys {
        let Some(&(name, s)) = declared.get(key.as_str()) else {
            return Err(format!(
                "storage `{key}` is listed but no tensor uses it, so its element size is unknown"
            ));
        };
        let count = bytes
            .get(at..)
            .and_then(|b| b.first_chunk::<8>())
            .map(|b| u64::from_le_bytes(*b))
            .ok_or_else(|| format!("storage `{key}`: the file ends before its element count"))?;
        if count != s.numel {
            return Err(format!(
                "storage `{key}` holds {count} elements, but {} were declared",
                s.numel
            ));
        }
        let start = at + 8;
        let end = count
            .checked_mul(s.element.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                format!(
                    "storage `{key}`: {count} {} elements run past the end of the file",
                    s.element.name()
                )
            })?;
        if storages.insert(key.clone(), start..end).is_some() {
            return Err(format!("storage `{key}` is listed twice"));
        }
        check_storage_bytes(name, s, end - start)?;
        at = end;
    }
    if let Some((key, (name, _))) = declared.iter().find(|(k, _)| !storages.contains_key(**k)) {
        return Err(format!(
            "tensor `{name}`: its storage `{key}` is not among the stored ones"
        ));
    }
    for (name, t) in &flat.tensors {
        // Every reference must agree with the stored size (a view's
        // bounds included).
        check_storage_bytes(name, &t.storage, storages[&t.storage.key].len())?;
    }
    if at != bytes.len() {
        return Err(format!(
            "{} bytes follow the last storage (corrupt, or not one torch.save call)",
            bytes.len() - at
        ));
    }
    // The writer converts storages to little-endian on every machine.
    Ok((flat, storages, false))
}

/// The storage keys: a list of strings.
fn string_list(v: &Value, heap: &Heap) -> Result<Vec<String>, String> {
    let items = match v {
        Value::List(id) => match heap.get(*id) {
            Some(value::Container::List(items)) => items,
            _ => return Err("the storage keys are not a list".into()),
        },
        other => {
            return Err(format!(
                "the storage keys are a {}, not a list",
                value::kind(other)
            ))
        }
    };
    items
        .iter()
        .map(|k| match k {
            Value::Str(s) => Ok(s.to_string()),
            other => Err(format!("a storage key is a {}", value::kind(other))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, PthFile};
    use super::*;
    use crate::checkpoint::file::Host;
    use crate::DType;

    /// A legacy file holding `{"a": view}` where the view is 2 floats at 1
    /// of a 4-float storage `k` (`[1, 2, 3, 4]`), and `extra` after it.
    fn file(count: u64, extra: &[u8]) -> Vec<u8> {
        let mut b = vec![0x80, 2, 0x8a, 10];
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(b".\x80\x02M\xe9\x03.\x80\x02}.");
        b.extend_from_slice(
            b"\x80\x02}X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage\
              ctorch\nFloatStorage\nX\x01\x00\x00\x00kX\x03\x00\x00\x00cpuK\x04\
              (X\x01\x00\x00\x00vK\x01K\x02ttQK\x00K\x02\x85K\x01\x85\x89\
              ccollections\nOrderedDict\n)RtRs.",
        );
        b.extend_from_slice(b"\x80\x02]X\x01\x00\x00\x00ka.");
        b.extend_from_slice(&count.to_le_bytes());
        for v in [1f32, 2.0, 3.0, 4.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(extra);
        b
    }

    #[test]
    fn storage_views_load_their_part() {
        let bytes = file(4, b"");
        assert!(is_legacy(&bytes));
        let pth = PthFile::parse("x", bytes, Kind::Legacy).expect("valid");
        match pth.values("a", &[2], DType::F32) {
            Ok(Host::F32(v)) => assert_eq!(v, vec![2.0, 3.0]),
            _ => panic!("the view's two floats"),
        }
    }

    #[test]
    fn counts_and_lengths_must_agree() {
        for (bytes, why) in [
            (file(5, b""), "holds 5 elements, but 4 were declared"),
            (file(4, b"\0"), "1 bytes follow the last storage"),
            (file(4, b"")[..60].to_vec(), "the object"),
        ] {
            let e = PthFile::parse("x", bytes, Kind::Legacy)
                .err()
                .expect("refused");
            assert!(e.to_string().contains(why), "{e}");
        }
    }
}
