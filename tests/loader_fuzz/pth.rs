//! The `.pth` part of the loader fuzz test: seed files in both torch.save
//! layouts (written by lam, and by PyTorch in fixtures/pth), mutated
//! blindly and with knowledge of the format, and files whose records,
//! pickles and storages claim sizes no file of theirs can hold.
//!
//! Format-aware mutations keep the file's length, so the zip records stay
//! where the central directory says: they rewrite pickle opcodes and their
//! arguments (string lengths, integers that become sizes, strides and
//! offsets, memo indices), the zip's own fields (counts, sizes, offsets,
//! name and extra lengths) and the legacy layout's element counts. A
//! mutated record's CRC is zeroed (PyTorch's "not computed"), so the
//! mutation reaches the pickle interpreter behind the CRC check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fuzz::{mutate_bytes, CaseFile, Fuzz, Rng, INTERESTING};
use lam::checkpoint::{load_model, load_model_from, load_tensors, save_model, save_tensors};
use lam::nn::Module;
use lam::prelude::*;

const BLIND: usize = 300;
const AWARE: usize = 500;

/// Every seed's mutations through `load_tensors`, `load_model` and
/// `load_model_from`; returns the number of loads.
pub fn mutated_pth_files_load_or_fail_cleanly(
    dir: &Path,
    net: &dyn Module,
    dev: &Device,
    rng: &mut Rng,
) -> Result<usize> {
    let seeds = seeds(dir, net, dev)?;
    let mut fuzz = Fuzz::new("pth");
    for seed in &seeds {
        let valid = std::fs::read(seed).expect("seed file");
        for i in 0..BLIND + AWARE {
            let mut bytes = valid.clone();
            let what = if i < BLIND {
                mutate_bytes(rng, &mut bytes)
            } else {
                mutate_aware(rng, &mut bytes)
            };
            let file = CaseFile::new(dir, "mutated.pth", &bytes);
            let label = format!("{} #{i}: {what}", seed.display());
            let len = bytes.len();
            fuzz.run(&format!("load_tensors {label}"), len, || {
                load_tensors(&file.0, dev).map(drop)
            });
            fuzz.run(&format!("load_model {label}"), len, || {
                load_model(net, &file.0)
            });
            fuzz.run(&format!("load_model_from {label}"), len, || {
                load_model_from(net, &file.0, "model")
            });
        }
    }
    let cases = fuzz.cases();
    fuzz.finish();
    Ok(cases)
}

/// The seeds: lam's model and named tensors (with metadata), and
/// PyTorch's files of both layouts, a checkpoint dict and every dtype.
fn seeds(dir: &Path, net: &dyn Module, dev: &Device) -> Result<Vec<PathBuf>> {
    let model = dir.join("model.pth");
    save_model(net, &model)?;
    let tensors = dir.join("tensors.pth");
    let named = vec![
        ("a".to_string(), Tensor::randn(&[2, 3], dev)?),
        (
            "b".to_string(),
            Tensor::from_vec_i32(vec![-3, 7], &[2], dev)?,
        ),
        ("empty".to_string(), Tensor::zeros(&[0, 3], dev)?),
        ("s".to_string(), Tensor::scalar(2.5, dev)?),
    ];
    let meta = BTreeMap::from([("note".to_string(), "fuzz seed".to_string())]);
    save_tensors(&named, &meta, &tensors)?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pth");
    let mut out = vec![model, tensors];
    for name in [
        "tinynet.pth",
        "tinynet_legacy.pth",
        "checkpoint.pth",
        "tensors.pth",
        "tensors_legacy.pth",
    ] {
        out.push(fixtures.join(name));
    }
    Ok(out)
}

/// Opcodes to write over others: every one the reader accepts, and some it refuses.
const OPCODES: &[u8] = b"\x80.cR\x81bQ(t)\x85\x86\x87]}\x8faesuN\x88\x89KMJ\x8aGXUhjqr\x93\x95iB";

/// One length-preserving, format-aware mutation (see the module docs).
fn mutate_aware(rng: &mut Rng, bytes: &mut [u8]) -> String {
    let zip = bytes.starts_with(b"PK\x03\x04");
    let (start, end) = if zip {
        data_pkl(bytes)
    } else {
        (0, bytes.len())
    };
    let what = match rng.below(if zip { 6 } else { 5 }) {
        0 => {
            let at = start + rng.below(end - start);
            let op = *rng.pick(OPCODES);
            bytes[at] = op;
            format!("opcode {op:#04x} at {at}")
        }
        1 => {
            // A string's length (BINUNICODE), or an int (BININT) argument.
            let Some(at) = find_opcode(rng, bytes, start, end, b"XJ") else {
                return "no string".into();
            };
            let v = *rng.pick(&[u32::MAX, 0x7fff_ffff, 0x8000_0000, 0, 1 << 20]);
            write(bytes, at + 1, &v.to_le_bytes());
            format!("4-byte argument at {at} = {v:#x}")
        }
        2 => {
            // A small int (a size, stride, offset or storage numel).
            let Some(at) = find_opcode(rng, bytes, start, end, b"KM") else {
                return "no int".into();
            };
            let v = *rng.pick(&[0u8, 1, 0x7f, 0xff]);
            write(bytes, at + 1, &[v]);
            format!("int argument at {at} = {v}")
        }
        3 => {
            let Some(at) = find_opcode(rng, bytes, start, end, b"hq\x8a") else {
                return "no memo".into();
            };
            let v = rng.next_u64() as u8;
            write(bytes, at + 1, &[v]);
            format!("memo index or LONG1 length at {at} = {v}")
        }
        4 => {
            // Legacy: an element count; zip: a field of a header or end record.
            let field = if zip {
                *rng.pick(&zip_fields(bytes))
            } else {
                start + rng.below(end - start)
            };
            let v = *rng.pick(&INTERESTING);
            let wide = rng.chance(0.5);
            let b = if wide {
                v.to_le_bytes().to_vec()
            } else {
                (v as u32).to_le_bytes().to_vec()
            };
            write(bytes, field, &b);
            format!("field at {field} = {v:#x}")
        }
        _ => {
            let at = start + rng.below(end - start);
            let n = (1 + rng.below(8)).min(end - at);
            let noise = rng.bytes(n);
            write(bytes, at, &noise);
            format!("{n} random bytes at {at} in data.pkl")
        }
    };
    if zip {
        zero_crc(bytes, "data.pkl");
    }
    what
}

/// Overwrites `bytes[at..]` with as much of `v` as fits.
fn write(bytes: &mut [u8], at: usize, v: &[u8]) {
    let n = v.len().min(bytes.len().saturating_sub(at));
    bytes[at..at + n].copy_from_slice(&v[..n]);
}

/// A random position in `start..end` holding one of `ops`.
fn find_opcode(rng: &mut Rng, bytes: &[u8], start: usize, end: usize, ops: &[u8]) -> Option<usize> {
    let hits: Vec<usize> = (start..end).filter(|&i| ops.contains(&bytes[i])).collect();
    (!hits.is_empty()).then(|| *rng.pick(&hits))
}

/// The span of the first record whose name ends in `data.pkl`: from its
/// 64-byte aligned start to its data descriptor.
fn data_pkl(bytes: &[u8]) -> (usize, usize) {
    let name = bytes.windows(8).position(|w| w == b"data.pkl").unwrap_or(0);
    let start = (name + 8 + 4).next_multiple_of(64).min(bytes.len());
    let end = bytes[start..]
        .windows(4)
        .position(|w| w == b"PK\x07\x08")
        .map_or(bytes.len(), |n| start + n);
    (start, end.max(start + 1).min(bytes.len()))
}

/// The offsets of the size, count, offset and length fields of every
/// header and end record (zeros where a signature is not found).
fn zip_fields(bytes: &[u8]) -> Vec<usize> {
    let sigs: [(&[u8], &[usize]); 5] = [
        (b"PK\x03\x04", &[18, 22, 26, 28]),
        (b"PK\x01\x02", &[20, 24, 28, 30, 32, 42]),
        (b"PK\x06\x06", &[24, 32, 40, 48]),
        (b"PK\x06\x07", &[8]),
        (b"PK\x05\x06", &[8, 10, 12, 16, 20]),
    ];
    let mut out = vec![0];
    for (sig, fields) in sigs {
        for at in bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == sig)
            .map(|(i, _)| i)
        {
            out.extend(fields.iter().map(|f| at + f));
        }
    }
    out
}

/// Sets the central directory CRC of the record ending in `name` to 0.
fn zero_crc(bytes: &mut [u8], name: &str) {
    let entries: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x01\x02")
        .map(|(i, _)| i)
        .collect();
    for at in entries {
        let Some(len) = bytes.get(at + 28..at + 30) else {
            continue;
        };
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        if bytes
            .get(at + 46..at + 46 + len)
            .is_some_and(|n| n.ends_with(name.as_bytes()))
        {
            write(bytes, at + 16, &[0; 4]);
        }
    }
}

/// `.pth` files claiming sizes no file of theirs can hold are refused
/// before anything that size is allocated. Returns the number of loads.
pub fn huge_pth_claims_are_refused(dir: &Path, dev: &Device) -> usize {
    let storage = |numel: &[u8], size: &[u8], stride: &[u8]| -> Vec<u8> {
        // {"w": _rebuild_tensor_v2(storage('0', FloatStorage, numel), 0, size, stride, False, OrderedDict())}
        let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu".to_vec();
        p.extend_from_slice(numel);
        p.extend_from_slice(b"tQK\x00");
        p.extend_from_slice(size);
        p.extend_from_slice(stride);
        p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtRs.");
        p
    };
    let long = |v: u64| [&[0x8a, 8][..], &v.to_le_bytes()].concat();
    let pair = |a: &[u8], b: &[u8]| [a, b, b"\x86"].concat();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "a storage of 2^40 floats in 8 bytes",
            storage(
                &long(1 << 40),
                &pair(&long(1 << 20), &long(1 << 20)),
                &pair(&long(1 << 20), b"K\x01"),
            ),
            vec![0; 8],
        ),
        (
            "2^40 elements expanded from one (stride 0)",
            storage(
                b"K\x01",
                &pair(&long(1 << 20), &long(1 << 20)),
                &pair(b"K\x00", b"K\x00"),
            ),
            vec![0; 4],
        ),
        (
            "a size whose product overflows",
            storage(
                b"K\x01",
                &pair(&long(1 << 62), &long(1 << 62)),
                &pair(b"K\x00", b"K\x00"),
            ),
            vec![0; 4],
        ),
        (
            "strides that reach past the storage",
            storage(
                b"K\x02",
                &pair(b"K\x02", b"K\x02"),
                &pair(&long(u64::MAX >> 1), b"K\x01"),
            ),
            vec![0; 8],
        ),
        (
            "a string of 4 GiB",
            b"\x80\x02X\xff\xff\xff\xff".to_vec(),
            Vec::new(),
        ),
    ];
    let mut fuzz = Fuzz::new("huge pth claims");
    for (what, pickle, data) in &cases {
        let file = CaseFile::new(dir, "huge.pth", &archive(pickle, data));
        fuzz.run(what, 0, || -> Result<()> {
            match load_tensors(&file.0, dev) {
                Err(Error::Format { .. }) => Ok(()),
                // An expand is a view of one element: loading it allocates nothing.
                Ok(t) if what.contains("expanded") => {
                    assert_eq!(t.tensors[0].1.numel(), 1 << 40);
                    Ok(())
                }
                Ok(_) => Err(Error::invalid("test", format!("{what} loaded"))),
                Err(e) => Err(e),
            }
        });
    }
    // A legacy file whose element count says u64::MAX.
    let legacy = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pth/tinynet_legacy.pth"),
    )
    .expect("fixture");
    let tail = legacy.len() - 8 - 8; // the last storage: two floats, after its count
    for v in [u64::MAX, 1 << 40, 3] {
        let mut b = legacy.clone();
        b[tail..tail + 8].copy_from_slice(&v.to_le_bytes());
        let file = CaseFile::new(dir, "huge_legacy.pth", &b);
        fuzz.run(
            &format!("legacy count {v}"),
            b.len(),
            || match load_tensors(&file.0, dev) {
                Err(Error::Format { .. }) => Ok(()),
                other => Err(Error::invalid("test", format!("count {v}: {other:?}"))),
            },
        );
    }
    let cases = fuzz.cases();
    let ok = fuzz.ok;
    fuzz.finish();
    assert_eq!(ok, cases, "every huge claim is refused (or costs nothing)");
    cases
}

/// A stored zip archive as a plain zip writer lays one out (no alignment,
/// no data descriptors, CRC 0: not checked) holding `pickle` as
/// `archive/data.pkl` and `data` as storage `0`: the pickles above are ones
/// no torch.save call makes.
fn archive(pickle: &[u8], data: &[u8]) -> Vec<u8> {
    let records: [(&str, &[u8]); 2] = [("archive/data.pkl", pickle), ("archive/data/0", data)];
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, body) in records {
        let offset = out.len() as u32;
        let mut header = Vec::new();
        header.extend_from_slice(b"PK\x03\x04");
        header.extend_from_slice(&[0; 10]); // version, flags, method, time, date
        header.extend_from_slice(&0u32.to_le_bytes()); // CRC-32 (0: not checked)
        header.extend_from_slice(&(body.len() as u32).to_le_bytes());
        header.extend_from_slice(&(body.len() as u32).to_le_bytes());
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(body);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[0; 12]); // versions, flags, method, time, date
        central.extend_from_slice(&header[14..26]); // CRC-32 and sizes
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\x02\0\x02\0");
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}
