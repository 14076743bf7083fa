//! Checkpoints: a file PyTorch wrote loads and computes what PyTorch
//! computed (fixtures/checkpoint, made by fixtures/make_checkpoint_fixtures.py);
//! lam writes PyTorch's names, shapes and dtypes, reproducibly and
//! atomically; every kind of bad file is an error that changes nothing; and
//! a training run resumed from a checkpoint continues bit for bit. The
//! training metadata's checksum and checks are in `checkpoint/metadata.rs`.

mod common;
#[path = "checkpoint/metadata.rs"]
mod metadata;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use lam::checkpoint::{load_model, load_tensors, load_training, save_model, save_training};
use lam::nn::{join, BatchNorm1d, Entry, Linear, Module, Visit};
use lam::optim::{Adam, Optimizer, RmsProp, Sgd};
use lam::{DType, Device, Error, Result, Tensor};
use serde_json::Value;

const TORCH_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/checkpoint/torch_tinynet.safetensors"
);

/// PyTorch's TinyNet: fc1 = Linear(3, 4) -> bn = BatchNorm1d(4) -> ReLU -> fc2 = Linear(4, hidden -> 2).
#[derive(Module)]
struct TinyNet {
    fc1: Linear,
    bn: BatchNorm1d,
    fc2: Linear,
}

impl TinyNet {
    fn new(dev: &Device) -> Result<TinyNet> {
        TinyNet::with_sizes(3, 4, dev)
    }

    fn with_sizes(inputs: usize, hidden: usize, dev: &Device) -> Result<TinyNet> {
        Ok(TinyNet {
            fc1: Linear::new(inputs, hidden, dev)?,
            bn: BatchNorm1d::new(hidden, dev)?,
            fc2: Linear::new(hidden, 2, dev)?,
        })
    }
}

impl Module for TinyNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2
            .forward(&self.bn.forward(&self.fc1.forward(x)?)?.relu()?)
    }
}

/// Two linear layers, for training runs.
#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(dev: &Device) -> Result<Mlp> {
        Ok(Mlp {
            fc1: Linear::new(3, 8, dev)?,
            fc2: Linear::new(8, 2, dev)?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

/// Named raw tensors, for loading hand-made files.
struct Holder(Vec<(String, Tensor)>);

impl Module for Holder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

// Names chosen at run time, so written by hand.
impl Visit for Holder {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (name, t) in &self.0 {
            f(&join(prefix, name), Entry::Buffer(t));
        }
    }
}

fn cpu() -> Device {
    use lam::DeviceExt;
    Device::cpu()
}

/// A fresh, empty directory under cargo's per-target scratch space.
fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("checkpoint-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Every state entry's values (as f32) by name.
fn snapshot(m: &dyn Module) -> Result<Vec<(String, Vec<f32>)>> {
    m.state_dict()
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_vec()?)))
        .collect()
}

/// The JSON header of a safetensors file.
fn header(bytes: &[u8]) -> Value {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).expect("JSON header")
}

/// A safetensors file made by hand: `(name, dtype, shape, bytes)` in order.
fn craft(entries: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut offset = 0;
    let mut fields = Vec::new();
    for (name, dtype, shape, data) in entries {
        fields.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{offset},{}]}}",
            offset + data.len()
        ));
        offset += data.len();
    }
    let mut text = format!("{{{}}}", fields.join(","));
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    for (_, _, _, data) in entries {
        out.extend_from_slice(data);
    }
    out
}

fn format_error(r: Result<()>) -> String {
    match r {
        Err(e @ Error::Format { .. }) => e.to_string(),
        other => panic!("expected a format error, found {other:?}"),
    }
}

conformance!(
    a_pytorch_file_loads_and_computes_what_pytorch_computed,
    |dev| {
        let model = TinyNet::new(dev)?;
        load_model(&model, TORCH_FILE)?;
        model.eval();
        let r = common::fixture::read("checkpoint/torch_tinynet.json");
        let y = model.forward(&common::fixture::tensor(&r["x"], DType::F32, dev)?)?;
        common::close(&y.to_vec()?, &common::fixture::floats(&r["y"]), 1e-5);
        // BatchNorm's int64 count arrives as lam's int32.
        let count = model.bn.num_batches_tracked.as_ref().expect("tracked");
        assert_eq!(count.to_vec_i32()?, vec![3]);
        Ok(())
    }
);

#[test]
fn lam_writes_pytorch_names_shapes_and_dtypes() -> Result<()> {
    let dev = cpu();
    let model = TinyNet::new(&dev)?;
    load_model(&model, TORCH_FILE)?;
    let path = scratch().join("tinynet.safetensors");
    save_model(&model, &path)?;
    // For the PyTorch-side check: LAM_CHECKPOINT_OUT=FILE cargo test ..., then
    // python fixtures/make_checkpoint_fixtures.py --check FILE
    if let Ok(out) = std::env::var("LAM_CHECKPOINT_OUT") {
        fs::copy(&path, out).expect("copy for the PyTorch check");
    }
    let ours = header(&fs::read(&path).expect("written"));
    let theirs = header(&fs::read(TORCH_FILE).expect("fixture"));
    let names = |h: &Value| -> Vec<String> {
        let mut v: Vec<String> = h
            .as_object()
            .expect("object")
            .keys()
            .filter(|k| *k != "__metadata__")
            .cloned()
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&ours), names(&theirs));
    for name in names(&theirs) {
        assert_eq!(ours[&name]["shape"], theirs[&name]["shape"], "{name}");
        assert_eq!(ours[&name]["dtype"], theirs[&name]["dtype"], "{name}");
    }
    assert_eq!(theirs["bn.num_batches_tracked"]["dtype"], "I64");
    assert_eq!(ours["__metadata__"]["format"], "pt");
    // The same values as PyTorch's file, bit for bit.
    let (a, b) = (load_tensors(&path, &dev)?, load_tensors(TORCH_FILE, &dev)?);
    assert_eq!(a.tensors.len(), b.tensors.len());
    for ((na, ta), (nb, tb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(na, nb);
        assert_eq!(ta.dtype(), tb.dtype(), "{na}");
        assert_eq!(ta.to_vec()?, tb.to_vec()?, "{na}");
    }
    Ok(())
}

conformance!(round_trip_is_exact_and_reproducible, |dev| {
    let dir = scratch();
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    let model = TinyNet::new(dev)?;
    // Non-default buffers: one training-mode forward updates the running statistics.
    model.forward(&Tensor::randn(&[6, 3], dev)?)?;
    save_model(&model, &a)?;
    let fresh = TinyNet::new(dev)?;
    assert_ne!(snapshot(&fresh)?, snapshot(&model)?);
    load_model(&fresh, &a)?;
    assert_eq!(snapshot(&fresh)?, snapshot(&model)?);
    // Parameters keep their identity (optimizers and user handles stay valid).
    assert!(fresh.fc1.weight.requires_grad());
    save_model(&fresh, &b)?;
    assert_eq!(
        fs::read(&a).expect("a"),
        fs::read(&b).expect("b"),
        "same state, different bytes"
    );
    Ok(())
});

#[test]
fn corrupt_files_are_errors_that_change_nothing() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    let good = dir.join("good.safetensors");
    save_model(&TinyNet::new(&dev)?, &good)?;
    let bytes = fs::read(&good).expect("written");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let text = String::from_utf8(bytes[8..8 + header_len].to_vec()).expect("utf8");
    let model = TinyNet::new(&dev)?;
    let before = snapshot(&model)?;
    let bad = dir.join("bad.safetensors");
    let try_load = |data: &[u8]| -> String {
        fs::write(&bad, data).expect("write");
        format_error(load_model(&model, &bad))
    };
    // Truncated anywhere: in the length, the header, the data, or by one byte.
    for cut in [
        0,
        3,
        8,
        20,
        8 + header_len - 1,
        8 + header_len + 5,
        bytes.len() - 1,
    ] {
        let e = try_load(&bytes[..cut]);
        assert!(e.contains("bad.safetensors"), "{e}");
    }
    // Flipped bytes in the header: a brace, a tensor name, a dtype, an offset, the padding.
    let at = |needle: &str| {
        8 + text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {text}"))
    };
    for pos in [
        8,
        at("fc1.weight") + 2,
        at("\"F32\"") + 1,
        at("data_offsets") + 16,
        8 + header_len - 1,
    ] {
        let mut b = bytes.clone();
        b[pos] ^= 0x01;
        try_load(&b);
    }
    // Flipped bytes in the data: caught by lam's checksum.
    for pos in [
        8 + header_len,
        (8 + header_len + bytes.len()) / 2,
        bytes.len() - 1,
    ] {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        assert!(try_load(&b).contains("checksum"));
    }
    assert_eq!(snapshot(&model)?, before, "a failed load changed the model");
    // A missing file is an I/O error naming it.
    let e = load_model(&model, dir.join("absent.safetensors")).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path.contains("absent")),
        "{e}"
    );
    Ok(())
}

#[test]
fn mismatched_models_are_errors_that_change_nothing() -> Result<()> {
    let dev = cpu();
    let path = scratch().join("tinynet.safetensors");
    save_model(&TinyNet::new(&dev)?, &path)?;
    // Wrong shapes: every mismatch is named, and fc2 (which fits) is left alone.
    let wide = TinyNet::with_sizes(3, 5, &dev)?;
    let before = snapshot(&wide)?;
    let e = format_error(load_model(&wide, &path));
    assert!(
        e.contains("fc1.weight") && e.contains("[4, 3]") && e.contains("[5, 3]"),
        "{e}"
    );
    assert!(e.contains("bn.running_mean"), "{e}");
    assert_eq!(snapshot(&wide)?, before);
    // Unexpected tensors (the file has bn.*, the model does not).
    let mlp = Mlp::new(&dev)?;
    let e = format_error(load_model(&mlp, &path));
    assert!(
        e.contains("unexpected") && e.contains("bn.running_var"),
        "{e}"
    );
    // Missing tensors.
    let holder = Holder(vec![("extra".into(), Tensor::zeros(&[2], &dev)?)]);
    let e = format_error(load_model(&holder, &path));
    assert!(e.contains("`extra` is missing"), "{e}");
    Ok(())
}

#[test]
fn dtypes_convert_or_fail_by_name() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    let path = dir.join("crafted.safetensors");
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let i64s = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let holder = || -> Result<Holder> {
        Ok(Holder(vec![
            ("count".into(), Tensor::from_vec_i32(vec![0], &[], &dev)?),
            ("steps".into(), Tensor::zeros(&[2], &dev)?),
        ]))
    };
    // I64 loads into an int32 and (exactly) into a float32 tensor.
    fs::write(
        &path,
        craft(&[
            ("count", "I64", &[], i64s(&[7])),
            ("steps", "I64", &[2], i64s(&[-3, 16_777_216])),
        ]),
    )
    .expect("write");
    let h = holder()?;
    load_model(&h, &path)?;
    assert_eq!(h.0[0].1.to_vec_i32()?, vec![7]);
    assert_eq!(h.0[1].1.to_vec()?, vec![-3.0, 16_777_216.0]);
    // bfloat16 widens exactly, float64 rounds, bool and uint8 are integers:
    // the rules of .pth files.
    let bf16s = |v: &[f32]| {
        let bits = v.iter().map(|x| (x.to_bits() >> 16) as u16);
        bits.flat_map(u16::to_le_bytes).collect::<Vec<u8>>()
    };
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let big = 2f32.powi(100); // exact in bfloat16
    for (count, steps, want) in [
        (
            ("BOOL", vec![1]),
            ("BF16", bf16s(&[-3.140625, big])),
            [-3.140625, big],
        ),
        (("U8", vec![255]), ("F64", f64s(&[0.1, -2.5])), [0.1, -2.5]),
    ] {
        let bytes = craft(&[
            ("count", count.0, &[], count.1.clone()),
            ("steps", steps.0, &[2], steps.1),
        ]);
        fs::write(&path, bytes).expect("write");
        let h = holder()?;
        load_model(&h, &path)?;
        assert_eq!(h.0[0].1.to_vec_i32()?, vec![count.1[0] as i32]);
        assert_eq!(h.0[1].1.to_vec()?, want.to_vec());
    }
    // Overflow, inexact floats, float data for an int tensor, unsupported dtypes.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            craft(&[
                ("count", "I64", &[], i64s(&[1 << 40])),
                ("steps", "F32", &[2], f32s(&[1.0, 2.0])),
            ]),
            "overflows int32",
        ),
        (
            craft(&[
                ("count", "I64", &[], i64s(&[1])),
                ("steps", "I64", &[2], i64s(&[1, (1 << 24) + 1])),
            ]),
            "not exact",
        ),
        (
            craft(&[
                ("count", "F32", &[], f32s(&[1.0])),
                ("steps", "F32", &[2], f32s(&[1.0, 2.0])),
            ]),
            "int32",
        ),
        (
            craft(&[
                ("count", "I64", &[], i64s(&[1])),
                ("steps", "F64", &[2], f64s(&[1.0, 1e300])),
            ]),
            "overflows float32",
        ),
        (
            craft(&[
                ("count", "I64", &[], i64s(&[1])),
                ("steps", "F8_E4M3", &[2], vec![0, 60]),
            ]),
            "unsupported dtype F8_E4M3",
        ),
    ];
    for (bytes, expected) in cases {
        fs::write(&path, bytes).expect("write");
        let h = holder()?;
        let e = format_error(load_model(&h, &path));
        assert!(e.contains(expected), "expected {expected:?} in: {e}");
        assert_eq!(
            h.0[0].1.to_vec_i32()?,
            vec![0],
            "count changed by a failed load"
        );
        assert_eq!(
            h.0[1].1.to_vec()?,
            vec![0.0, 0.0],
            "steps changed by a failed load"
        );
    }
    Ok(())
}

#[test]
fn writes_are_atomic() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    let path = dir.join("model.safetensors");
    save_model(&TinyNet::new(&dev)?, &path)?;
    save_model(&TinyNet::new(&dev)?, &path)?;
    let listing: Vec<String> = fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listing,
        vec!["model.safetensors".to_string()],
        "temporary files left behind"
    );
    // A write that fails (its temporary file cannot be created) leaves the old file intact.
    let old = fs::read(&path).expect("written");
    fs::create_dir(dir.join("model.safetensors.tmp")).expect("blocker");
    let e = save_model(&TinyNet::new(&dev)?, &path).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path.contains("model.safetensors")),
        "{e}"
    );
    assert_eq!(fs::read(&path).expect("still there"), old);
    // Duplicate names and reserved metadata keys are refused before anything is written.
    let t = Tensor::zeros(&[1], &dev)?;
    let dup = vec![("a".to_string(), t.clone()), ("a".to_string(), t.clone())];
    assert!(
        lam::checkpoint::save_tensors(&dup, &BTreeMap::new(), dir.join("dup.safetensors")).is_err()
    );
    let meta = BTreeMap::from([("lam.epoch".to_string(), "1".to_string())]);
    let one = vec![("a".to_string(), t)];
    assert!(lam::checkpoint::save_tensors(&one, &meta, dir.join("meta.safetensors")).is_err());
    assert!(!dir.join("dup.safetensors").exists() && !dir.join("meta.safetensors").exists());
    Ok(())
}

/// Copies every state value of `from` into `to` (fresh buffers, nothing shared).
fn copy_state(from: &dyn Module, to: &dyn Module) -> Result<()> {
    for ((_, a), (_, b)) in from.state_dict().iter().zip(to.state_dict()) {
        b.set_data(&a.copy()?)?;
    }
    Ok(())
}

/// Fixed data: 16 points in 3-d, labels 0/1.
fn data(dev: &Device) -> Result<(Tensor, Tensor)> {
    let x = Tensor::from_vec(
        (0..48).map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0).collect(),
        &[16, 3],
        dev,
    )?;
    let y = Tensor::from_vec_i32(
        (0..16).map(|i| (i * 5 % 3 == 0) as i32).collect(),
        &[16],
        dev,
    )?;
    Ok((x, y))
}

fn train(model: &Mlp, opt: &mut dyn Optimizer, steps: usize, dev: &Device) -> Result<Vec<f32>> {
    let (x, y) = data(dev)?;
    (0..steps)
        .map(|_| {
            opt.zero_grad();
            let loss = lam::loss::cross_entropy(&model.forward(&x)?, &y)?;
            loss.backward()?;
            opt.step()?;
            loss.item()
        })
        .collect()
}

fn optimizer(kind: &str, params: Vec<Tensor>) -> Result<Box<dyn Optimizer>> {
    Ok(match kind {
        "adam" => Box::new(Adam::new(params, 0.01)?.weight_decay(1e-3)),
        "sgd" => Box::new(Sgd::new(params, 0.1)?.momentum(0.9)),
        _ => Box::new(RmsProp::new(params, 0.01)?.centered(true)),
    })
}

conformance!(a_training_checkpoint_resumes_bit_for_bit, |dev| {
    for kind in ["adam", "sgd", "rmsprop"] {
        // Uninterrupted: 10 steps, the learning rate lowered after 5.
        let full = Mlp::new(dev)?;
        let start = Mlp::new(dev)?;
        copy_state(&full, &start)?;
        let mut opt = optimizer(kind, full.parameters())?;
        let mut losses = train(&full, opt.as_mut(), 5, dev)?;
        let lr = opt.lr() * 0.5;
        opt.set_lr(lr);
        losses.extend(train(&full, opt.as_mut(), 5, dev)?);
        // Interrupted: 5 steps, lower the rate, save.
        let first = Mlp::new(dev)?;
        copy_state(&start, &first)?;
        let mut opt1 = optimizer(kind, first.parameters())?;
        let head = train(&first, opt1.as_mut(), 5, dev)?;
        opt1.set_lr(lr);
        let path = scratch().join("train.safetensors");
        let meta = BTreeMap::from([("run".to_string(), "quick".to_string())]);
        save_training(&path, &first, opt1.as_ref(), 5, &meta)?;
        // Resume into a fresh model and optimizer (other weights, other rate).
        let resumed = Mlp::new(dev)?;
        let mut opt2 = optimizer(kind, resumed.parameters())?;
        opt2.set_lr(123.0);
        let state = load_training(&path, &resumed, opt2.as_mut())?;
        assert_eq!(state.epoch, 5);
        assert_eq!(state.metadata, meta);
        assert_eq!(opt2.lr(), lr, "{kind}: learning rate restored");
        let tail = train(&resumed, opt2.as_mut(), 5, dev)?;
        let joined: Vec<f32> = head.into_iter().chain(tail).collect();
        if dev.is_gpu() {
            common::close(&joined, &losses, 1e-5);
        } else {
            assert_eq!(joined, losses, "{kind}: resumed run differs");
            assert_eq!(
                snapshot(&resumed)?,
                snapshot(&full)?,
                "{kind}: resumed weights differ"
            );
        }
    }
    Ok(())
});

#[test]
fn bad_training_checkpoints_are_errors_that_change_nothing() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    let path = dir.join("train.safetensors");
    let model = Mlp::new(&dev)?;
    let mut adam = Adam::new(model.parameters(), 0.01)?;
    train(&model, &mut adam, 2, &dev)?;
    save_training(&path, &model, &adam, 2, &BTreeMap::new())?;

    let other = Mlp::new(&dev)?;
    let before = snapshot(&other)?;
    // Another kind of optimizer.
    let mut sgd = Sgd::new(other.parameters(), 0.1)?;
    let e = format_error(load_training(&path, &other, &mut sgd).map(|_| ()));
    assert!(e.contains("optimizer") && e.contains("adam"), "{e}");
    assert_eq!(sgd.lr(), 0.1);
    assert_eq!(snapshot(&other)?, before);
    // An optimizer over fewer parameters.
    let mut partial = Adam::new(other.parameters()[..2].to_vec(), 0.01)?;
    assert!(
        format_error(load_training(&path, &other, &mut partial).map(|_| ())).contains("parameters")
    );
    assert_eq!(snapshot(&other)?, before);
    // A model-only load of a training file refuses the optimizer's tensors.
    assert!(format_error(load_model(&other, &path)).contains("optim.0.exp_avg"));
    // A model-only file is not a training checkpoint.
    let plain = dir.join("plain.safetensors");
    save_model(&model, &plain)?;
    let mut adam2 = Adam::new(other.parameters(), 0.01)?;
    assert!(
        format_error(load_training(&plain, &other, &mut adam2).map(|_| ()))
            .contains("not a training checkpoint")
    );
    assert_eq!(snapshot(&other)?, before);
    // Reserved metadata keys.
    let meta = BTreeMap::from([("lam.epoch".to_string(), "9".to_string())]);
    assert!(save_training(dir.join("x.safetensors"), &model, &adam, 2, &meta).is_err());
    // The good file still loads.
    let state = load_training(&path, &other, &mut adam2)?;
    assert_eq!(state.epoch, 2);
    assert_eq!(snapshot(&other)?, snapshot(&model)?);
    Ok(())
}
