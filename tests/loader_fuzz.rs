//! The safetensors loaders survive mutated files: every load of a mutated
//! checkpoint returns `Ok` or a clean `Err` — never a panic — and no header,
//! however large the sizes, shapes or offsets it claims, makes a loader
//! allocate more than the file's size allows (see `tests/fuzz/mod.rs`).
//!
//! The valid files are written by lam itself: a model (F32 weights and
//! BatchNorm's I64 count), a training checkpoint (model, Adam state,
//! metadata), named tensors (a scalar, an empty tensor, I32 values), plus
//! the PyTorch-written fixture. Each is mutated blindly (bytes) and with
//! knowledge of the format (the JSON header's shapes, offsets, dtypes,
//! names and metadata, and the length field), with lam's checksum often
//! removed so the mutation reaches the checks behind it. Each mutated file
//! goes through `load_tensors` and, where its seed has one, `load_model`
//! and `load_training`. One `#[test]`: the allocator's counters are
//! process-wide. PyTorch's `.pth` files get the same treatment in
//! `loader_fuzz/pth.rs`.

mod fuzz;
#[path = "loader_fuzz/pth.rs"]
mod pth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fuzz::{mutate_bytes, peak_rss, CaseFile, Fuzz, Rng, TempDir};
use lam::checkpoint::{
    load_model, load_tensors, load_training, save_model, save_tensors, save_training,
};
use lam::nn::{BatchNorm1d, Linear, Module, Sequential};
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;
use serde_json::{json, Map, Value};

const SEED: u64 = 0x5afe_7e45;
/// Mutated files per seed file, blind and format-aware.
const BLIND: usize = 350;
const AWARE: usize = 450;

/// Linear(3, 4) → BatchNorm1d(4) → Linear(4, 2).
fn model(dev: &Device) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(3, 4, dev)?)
        .add(BatchNorm1d::new(4, dev)?)
        .add(Linear::new(4, 2, dev)?))
}

/// What a seed file is, so the fuzzer knows which loaders to try.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Model,
    Training,
    Tensors,
}

/// The one test of this binary (the allocator's counters are process-wide).
#[test]
fn checkpoint_loaders_survive_mutated_files() -> Result<()> {
    let dir = TempDir::new("lam-loader-fuzz");
    huge_claims_are_refused_without_allocating(&dir.0)?;
    mutated_checkpoints_load_or_fail_cleanly(&dir.0)?;
    let dev = Device::cpu();
    pth::huge_pth_claims_are_refused(&dir.0, &dev);
    let started = std::time::Instant::now();
    let cases = pth::mutated_pth_files_load_or_fail_cleanly(
        &dir.0,
        &model(&dev)?,
        &dev,
        &mut Rng::new(SEED ^ 0x9e37),
    )?;
    eprintln!("pth fuzz: {cases} loads in {:?}", started.elapsed());
    assert!(cases >= 15_000, "only {cases} pth loads ran");
    Ok(())
}

/// Thousands of mutations of valid files.
fn mutated_checkpoints_load_or_fail_cleanly(dir: &Path) -> Result<()> {
    let dev = Device::cpu();
    let seeds = seed_files(&dev, dir)?;
    let net = model(&dev)?;
    let mut opt = Adam::new(net.parameters(), 0.01)?;
    let mut rng = Rng::new(SEED);
    // Warm the CPU device and its buffer pool so the first case is not charged for them.
    let _ = load_training(&seeds[1].1, &net, &mut opt);

    let mut fuzz = Fuzz::new("checkpoint");
    let started = std::time::Instant::now();
    for (kind, path) in &seeds {
        let valid = std::fs::read(path).expect("seed file");
        for i in 0..BLIND + AWARE {
            let mut bytes = valid.clone();
            let what = if i < BLIND {
                mutate_bytes(&mut rng, &mut bytes)
            } else {
                let what = mutate_header(&mut rng, &mut bytes);
                if rng.chance(0.2) {
                    format!("{what}; {}", mutate_bytes(&mut rng, &mut bytes))
                } else {
                    what
                }
            };
            let file = CaseFile::new(dir, "mutated.safetensors", &bytes);
            let label = format!("{} #{i}: {what}", path.display());
            load_all(
                &mut fuzz,
                *kind,
                &label,
                &file.0,
                bytes.len(),
                &net,
                &mut opt,
                &dev,
            );
        }
    }
    let elapsed = started.elapsed();
    let cases = fuzz.cases();
    fuzz.finish();
    eprintln!("checkpoint fuzz: {cases} loads in {elapsed:?}");
    assert!(cases >= 3000, "only {cases} loads ran");
    Ok(())
}

/// Headers that claim sizes no file of theirs can hold are refused before
/// anything that size is allocated.
fn huge_claims_are_refused_without_allocating(dir: &Path) -> Result<()> {
    let gib10 = 10u64 << 30;
    let elems40 = 1u64 << 40;
    let mut chain = Map::new();
    // Eight tensors of 2^61 − 1 bytes each: their offsets end near 2^64.
    let size = (1u64 << 61) - 1;
    for k in 0..8u64 {
        chain.insert(
            format!("t{k}"),
            json!({"dtype": "U8", "shape": [size], "data_offsets": [k * size, (k + 1) * size]}),
        );
    }
    let cases: Vec<(&str, Value)> = vec![
        (
            "a 10 GB F32 tensor",
            json!({"w": {"dtype": "F32", "shape": [gib10 / 4], "data_offsets": [0, gib10]}}),
        ),
        (
            "2^40 elements",
            json!({"w": {"dtype": "F32", "shape": [1u64 << 20, 1u64 << 20], "data_offsets": [0, elems40 * 4]}}),
        ),
        (
            "2^40 elements of an empty tensor's neighbour",
            json!({"e": {"dtype": "F32", "shape": [0, 1u64 << 40], "data_offsets": [0, 0]},
                   "w": {"dtype": "I64", "shape": [elems40], "data_offsets": [0, elems40 * 8]}}),
        ),
        (
            "a shape whose product overflows",
            json!({"w": {"dtype": "F32", "shape": [1u64 << 32, 1u64 << 32, 16], "data_offsets": [0, 64]}}),
        ),
        (
            "an empty shape whose strides overflow",
            json!({"w": {"dtype": "F32", "shape": [0, 1u64 << 62, 1u64 << 62], "data_offsets": [0, 0]}}),
        ),
        ("offsets that sum past 2^64", Value::Object(chain)),
        (
            "an offset at u64::MAX",
            json!({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, u64::MAX]}}),
        ),
    ];
    let dev = Device::cpu();
    let _ = load_tensors(dir.join("absent.safetensors"), &dev); // warm up
    let rss_before = peak_rss();
    let mut fuzz = Fuzz::new("huge headers");
    for (what, header) in cases {
        let mut text = header.to_string();
        while !text.len().is_multiple_of(8) {
            text.push(' ');
        }
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        // As much data as the offsets claim, up to 64 bytes: a claim that
        // fits its file gets past the length check to the size checks.
        let claimed = header
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|t| t["data_offsets"][1].as_u64())
            .max()
            .unwrap_or(0);
        bytes.extend(std::iter::repeat_n(0u8, claimed.min(64) as usize));
        // The length field itself claiming 10 GB and 2^63 bytes of header.
        for (label, len_field) in [
            (what.to_string(), None),
            (format!("{what}, header length 10 GB"), Some(gib10)),
            (format!("{what}, header length 2^63"), Some(1u64 << 63)),
        ] {
            let mut b = bytes.clone();
            if let Some(n) = len_field {
                b[..8].copy_from_slice(&n.to_le_bytes());
            }
            let file = CaseFile::new(dir, "huge.safetensors", &b);
            fuzz.run(&label, b.len(), || -> Result<()> {
                match load_tensors(&file.0, &dev) {
                    Ok(_) => Err(Error::invalid("test", "a huge claim loaded")),
                    Err(Error::Format { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            });
        }
    }
    let peak = fuzz.peak.clone();
    let (ok, cases) = (fuzz.ok, fuzz.cases());
    fuzz.finish();
    assert_eq!(ok, cases, "every huge claim is a format error");
    eprintln!(
        "huge headers: largest heap growth {} bytes ({})",
        peak.0, peak.1
    );
    assert!(peak.0 < 1 << 20, "a huge claim took {} bytes", peak.0);
    if let (Some(before), Some(after)) = (rss_before, peak_rss()) {
        eprintln!("huge headers: peak RSS {before} → {after} bytes");
        assert!(
            after - before < 64 << 20,
            "peak RSS rose by {} bytes",
            after - before
        );
    }
    Ok(())
}

/// Runs every loader that fits `kind` on the file at `path`.
#[allow(clippy::too_many_arguments)]
fn load_all(
    fuzz: &mut Fuzz,
    kind: Kind,
    label: &str,
    path: &Path,
    len: usize,
    net: &Sequential,
    opt: &mut Adam,
    dev: &Device,
) {
    fuzz.run(&format!("load_tensors {label}"), len, || {
        load_tensors(path, dev).map(|_| ())
    });
    if kind != Kind::Tensors {
        fuzz.run(&format!("load_model {label}"), len, || {
            load_model(net, path)
        });
    }
    if kind == Kind::Training {
        fuzz.run(&format!("load_training {label}"), len, || {
            load_training(path, net, opt).map(|_| ())
        });
    }
}

/// The valid files the mutations start from, written by lam (plus the
/// PyTorch fixture).
fn seed_files(dev: &Device, dir: &Path) -> Result<Vec<(Kind, PathBuf)>> {
    let net = model(dev)?;
    let model_path = dir.join("model.safetensors");
    save_model(&net, &model_path)?;

    let mut opt = Adam::new(net.parameters(), 0.01)?;
    let x = Tensor::randn(&[5, 3], dev)?;
    net.forward(&x)?.square()?.mean_all()?.backward()?;
    opt.step()?;
    let training_path = dir.join("training.safetensors");
    let meta = BTreeMap::from([("note".to_string(), "fuzz seed".to_string())]);
    save_training(&training_path, &net, &opt, 3, &meta)?;

    let tensors = vec![
        ("a".to_string(), Tensor::randn(&[2, 3], dev)?),
        (
            "b".to_string(),
            Tensor::from_vec_i32(vec![-3, 0, 7, i32::MAX], &[4], dev)?,
        ),
        ("empty".to_string(), Tensor::zeros(&[0, 3], dev)?),
        ("s".to_string(), Tensor::scalar(2.5, dev)?),
    ];
    let tensors_path = dir.join("tensors.safetensors");
    save_tensors(&tensors, &meta, &tensors_path)?;

    let torch = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/checkpoint/torch_tinynet.safetensors");
    Ok(vec![
        (Kind::Model, model_path),
        (Kind::Training, training_path),
        (Kind::Tensors, tensors_path),
        (Kind::Tensors, torch),
    ])
}

/// One format-aware mutation of a safetensors file: the JSON header is
/// parsed, edited and written back (with its length), the data kept.
fn mutate_header(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).expect("a valid seed header");
    let data = bytes[8 + n..].to_vec();
    let names: Vec<String> = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let name = rng.pick(&names).clone();
    let big = [
        json!(1u64 << 40),
        json!(u64::MAX),
        json!(i64::MAX),
        json!(1u64 << 32),
        json!(-1),
        json!(1.5),
        json!("3"),
        json!(null),
    ];
    let mut what = match rng.below(12) {
        0 => {
            let shape = rng
                .pick(&[
                    json!([1u64 << 40]),
                    json!([1u64 << 32, 1u64 << 32]),
                    json!([u64::MAX]),
                    json!([0, u64::MAX]),
                    json!([u64::MAX, 0]),
                    json!([0, 1u64 << 62, 1u64 << 62]),
                    json!([1u64 << 62, 4]),
                    json!([]),
                    json!(vec![1; 100]),
                    json!([-1]),
                    json!([1.5]),
                    json!("3"),
                ])
                .clone();
            let s = format!("shape of `{name}` = {shape}");
            header[&name]["shape"] = shape;
            s
        }
        1 => {
            let dim = rng.pick(&big).clone();
            let s = format!("a dim of `{name}` = {dim}");
            if let Some(Value::Array(shape)) = header[&name].get_mut("shape") {
                if shape.is_empty() {
                    shape.push(dim);
                } else {
                    let i = rng.below(shape.len());
                    shape[i] = dim;
                }
            }
            s
        }
        2 => {
            let end = rng.pick(&big).clone();
            let s = format!("end offset of `{name}` = {end}");
            header[&name]["data_offsets"][1] = end;
            s
        }
        3 => {
            let offsets = header[&name]["data_offsets"].clone();
            let swapped = json!([offsets[1], offsets[0]]);
            let shifted = json!([offsets[0].as_u64().unwrap_or(0) + 1, offsets[1]]);
            let v = rng
                .pick(&[
                    swapped,
                    shifted,
                    json!([0, 0]),
                    json!([u64::MAX, u64::MAX]),
                    json!([0]),
                    json!([0, 4, 8]),
                ])
                .clone();
            let s = format!("offsets of `{name}` = {v}");
            header[&name]["data_offsets"] = v;
            s
        }
        4 => {
            let dtype = rng
                .pick(&[
                    json!("F64"),
                    json!("F16"),
                    json!("BF16"),
                    json!("U8"),
                    json!("BOOL"),
                    json!("I8"),
                    json!("U64"),
                    json!("F8_E4M3"),
                    json!("F4"),
                    json!("C64"),
                    json!("I64"),
                    json!("I32"),
                    json!("F32"),
                    json!("nonsense"),
                    json!(7),
                ])
                .clone();
            let s = format!("dtype of `{name}` = {dtype}");
            header[&name]["dtype"] = dtype;
            s
        }
        5 => {
            let field = *rng.pick(&["dtype", "shape", "data_offsets"]);
            if rng.chance(0.5) {
                if let Some(o) = header[&name].as_object_mut() {
                    o.remove(field);
                }
                format!("remove `{field}` of `{name}`")
            } else {
                header[&name] = json!([1, 2, 3]);
                format!("`{name}` is not an object")
            }
        }
        6 => {
            let new = rng
                .pick(&[
                    "optim.99999999999999999999.exp_avg".to_string(),
                    "optim.0.".to_string(),
                    "optim..x".to_string(),
                    "optim.-1.exp_avg".to_string(),
                    "optim.7.exp_avg".to_string(),
                    String::new(),
                    "é\u{0}✓".to_string(),
                    "x".repeat(10_000),
                ])
                .clone();
            if let Some(v) = header.remove(&name) {
                header.insert(new.clone(), v);
            }
            format!("rename `{name}` to {:?}", &new[..new.len().min(40)])
        }
        7 => {
            let key = *rng.pick(&[
                "lam.epoch",
                "lam.optim.params",
                "lam.optim.kind",
                "lam.optim.0.step",
                "lam.optim.hyper.lr",
                "lam.optim.hyper.beta1",
                "lam_train.history",
                "lam.checksum",
            ]);
            let value = rng
                .pick(&[
                    json!("18446744073709551616"),
                    json!("18446744073709551615"),
                    json!("1000000000000"),
                    json!("-1"),
                    json!("1e400"),
                    json!("NaN"),
                    json!("inf"),
                    json!(""),
                    json!("sgd"),
                    json!(3),
                    json!({"a": 1}),
                ])
                .clone();
            let s = format!("metadata `{key}` = {value}");
            header
                .entry("__metadata__")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|m| m.insert(key.to_string(), value));
            s
        }
        8 => {
            let v = rng
                .pick(&[json!(null), json!([1]), json!("x"), json!({"k": {"n": 1}})])
                .clone();
            let s = format!("__metadata__ = {v}");
            header.insert("__metadata__".into(), v);
            s
        }
        9 => {
            let v = header.remove(&name);
            if rng.chance(0.5) {
                format!("remove tensor `{name}`")
            } else {
                let copy = format!("{name}.copy");
                if let Some(v) = v {
                    header.insert(name.clone(), v.clone());
                    header.insert(copy, v);
                }
                format!("duplicate the entry of `{name}`")
            }
        }
        10 => {
            // The length field: near the truth, or absurd.
            let field = *rng.pick(&[
                0,
                7,
                n as u64 - 1,
                n as u64 + 1,
                (n + data.len()) as u64,
                100_000_001,
                1 << 40,
                u64::MAX,
            ]);
            bytes[..8].copy_from_slice(&field.to_le_bytes());
            return format!("header length field = {field}");
        }
        _ => {
            // Nesting deep enough to exhaust a recursive parser.
            let depth = *rng.pick(&[200usize, 5_000, 100_000]);
            let raw = "[".repeat(depth) + &"]".repeat(depth);
            let mut out = (raw.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(raw.as_bytes());
            out.extend_from_slice(&data);
            *bytes = out;
            return format!("header = {depth} nested arrays");
        }
    };
    if rng.chance(0.6) {
        if let Some(m) = header
            .get_mut("__metadata__")
            .and_then(Value::as_object_mut)
        {
            m.remove("lam.checksum");
        }
        what += "; checksum removed";
    }
    let mut text = Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) && rng.chance(0.9) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&data);
    *bytes = out;
    what
}
