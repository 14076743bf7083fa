//! PyTorch `.pth` files: what torch.save wrote (fixtures/pth, made by
//! fixtures/make_pth_fixtures.py) loads exactly — both layouts, a
//! big-endian file, every dtype lam converts (and the same tensors as
//! safetensors, by the same rules), views sharing a storage,
//! nested checkpoints — and lam's own `.pth` files are byte for byte the
//! committed one that PyTorch loads (`make_pth_fixtures.py --check`).
//! Names that differ by a prefix are one prefix problem, in either format;
//! code in a pickle and files of other kinds are errors that say what
//! they are.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lam::checkpoint::{load_model, load_model_from, load_tensors, save_model, save_tensors};
use lam::nn::{BatchNorm1d, Linear, Module, ReLU, Sequential};
use lam::{DType, Device, Error, Result, Tensor};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/pth");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// PyTorch's TinyNet: Sequential(Linear(3, 4), BatchNorm1d(4), ReLU(), Linear(4, 2)).
fn tinynet(dev: &Device) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(3, 4, dev)?)
        .add(BatchNorm1d::new(4, dev)?)
        .add(ReLU)
        .add(Linear::new(4, 2, dev)?))
}

/// TinyNet as the `features` field of a bigger model: `features.0.weight`, ...
#[derive(Module)]
struct Wrapped {
    features: Sequential,
}

impl Module for Wrapped {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.features.forward(x)
    }
}

fn cpu() -> Device {
    use lam::DeviceExt;
    Device::cpu()
}

fn reference() -> Value {
    serde_json::from_str(&fs::read_to_string(fixture("pth.json")).expect("pth.json"))
        .expect("valid JSON")
}

/// A fresh, empty directory under cargo's per-target scratch space.
fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pth-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn json_tensor(v: &Value, dev: &Device) -> Result<Tensor> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect();
    Tensor::from_vec(data, &shape, dev)
}

/// Every state entry's values (as f32, bit patterns) by name.
fn snapshot(m: &dyn Module) -> Result<Vec<(String, Vec<u32>)>> {
    m.state_dict()
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_vec()?.iter().map(|v| v.to_bits()).collect())))
        .collect()
}

fn format_error(r: Result<()>) -> String {
    match r {
        Err(e @ Error::Format { .. }) => e.to_string(),
        other => panic!("expected a format error, found {other:?}"),
    }
}

conformance!(
    pytorch_files_load_and_compute_what_pytorch_computed,
    |dev| {
        let r = reference();
        let x = json_tensor(&r["x"], dev)?;
        let want = json_tensor(&r["y"], dev)?.to_vec()?;
        let zip = tinynet(dev)?;
        load_model(&zip, fixture("tinynet.pth"))?;
        // The legacy layout, a big-endian file, DataParallel's `module.` names and
        // a checkpoint dict's `model` hold the same state, bit for bit.
        let legacy = tinynet(dev)?;
        load_model(&legacy, fixture("tinynet_legacy.pth"))?;
        let big = tinynet(dev)?;
        load_model(&big, fixture("tinynet_bigendian.pth"))?;
        let parallel = tinynet(dev)?;
        load_model_from(&parallel, fixture("tinynet_dataparallel.pth"), "module")?;
        let nested = tinynet(dev)?;
        load_model_from(&nested, fixture("checkpoint.pth"), "model")?;
        let expected = snapshot(&zip)?;
        for (what, m) in [
            ("legacy", &legacy),
            ("big-endian", &big),
            ("DataParallel", &parallel),
            ("checkpoint", &nested),
        ] {
            assert_eq!(snapshot(m)?, expected, "{what}");
        }
        zip.eval();
        common::close(&zip.forward(&x)?.to_vec()?, &want, 1e-5);
        // BatchNorm's int64 count arrives as lam's int32.
        let count = zip
            .state_dict()
            .into_iter()
            .find(|(n, _)| n == "1.num_batches_tracked");
        assert_eq!(count.expect("tracked").1.to_vec_i32()?, vec![3]);
        Ok(())
    }
);

/// What load_tensors must give for tensor `name` of pth.json.
fn check_tensor(name: &str, want: &Value, got: &Tensor) -> Result<()> {
    let dims = |v: &Value| -> Vec<usize> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|d| d.as_u64().expect("size") as usize)
            .collect()
    };
    let layout = got.layout();
    assert_eq!(layout.strides, dims(&want["stride"]), "{name}: strides");
    assert_eq!(
        layout.offset as u64,
        want["offset"].as_u64().expect("offset"),
        "{name}"
    );
    check_values(name, want, got)
}

/// `got` has the shape, dtype and values (bit for bit) of `want`, a tensor
/// of pth.json.
fn check_values(name: &str, want: &Value, got: &Tensor) -> Result<()> {
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| d.as_u64().expect("size") as usize)
        .collect();
    assert_eq!(got.shape(), shape, "{name}: shape");
    let values = want["values"].as_array().expect("values");
    let is_float =
        want["dtype"].as_str().expect("dtype").starts_with('f') || want["dtype"] == "bfloat16";
    if is_float {
        let dtype = if want["dtype"] == "float16" {
            DType::F16
        } else {
            DType::F32
        };
        assert_eq!(got.dtype(), dtype, "{name}");
        let expected: Vec<u32> = values
            .iter()
            .map(|v| match v.as_str() {
                Some(s) => s.parse::<f32>().expect("inf").to_bits(),
                None => (v.as_f64().expect("number") as f32).to_bits(),
            })
            .collect();
        let bits: Vec<u32> = got.to_vec()?.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, expected, "{name}: values");
    } else {
        assert_eq!(got.dtype(), DType::I32, "{name}");
        let expected: Vec<i32> = values
            .iter()
            .map(|v| v.as_i64().expect("integer") as i32)
            .collect();
        assert_eq!(got.to_vec_i32()?, expected, "{name}: values");
    }
    Ok(())
}

conformance!(every_dtype_and_view_loads_as_pytorch_saved_it, |dev| {
    let r = reference();
    let want = r["tensors"].as_object().expect("tensors");
    for file in ["tensors.pth", "tensors_legacy.pth"] {
        let loaded: BTreeMap<String, Tensor> = load_tensors(fixture(file), dev)?
            .tensors
            .into_iter()
            .collect();
        let mut names: Vec<&String> = want.keys().collect();
        if file == "tensors_legacy.pth" {
            names.retain(|n| *n != "u16"); // PyTorch cannot read it back from that layout
        }
        let mut got_names: Vec<&String> = loaded.keys().collect();
        names.sort();
        got_names.sort();
        assert_eq!(got_names, names, "{file}");
        for name in names {
            let t = &loaded[name];
            check_tensor(&format!("{file}: {name}"), &want[name], t)?;
            // Views that shared a storage in PyTorch share one here.
            if let Some(other) = want[name]["shares"].as_str() {
                assert!(
                    Arc::ptr_eq(&t.storage(), &loaded[other].storage()),
                    "{file}: {name} and {other} share a storage"
                );
            }
        }
    }
    Ok(())
});

// The same tensors as safetensors.torch.save_file writes them load by the
// same rules: every dtype, contiguous.
conformance!(every_dtype_loads_from_pytorchs_safetensors, |dev| {
    let r = reference();
    let want = r["tensors"].as_object().expect("tensors");
    let loaded = load_tensors(fixture("tensors.safetensors"), dev)?.tensors;
    let names: Vec<&String> = loaded.iter().map(|(n, _)| n).collect();
    let mut expected: Vec<&String> = want.keys().collect();
    expected.sort();
    assert_eq!(names, expected);
    for (name, t) in &loaded {
        check_values(name, &want[name.as_str()], t)?;
    }
    Ok(())
});

#[test]
fn nested_checkpoints_flatten_to_dotted_names() -> Result<()> {
    let file = load_tensors(fixture("checkpoint.pth"), &cpu())?;
    let names: Vec<&str> = file.tensors.iter().map(|(n, _)| n.as_str()).collect();
    for n in [
        "model.0.weight",
        "model.1.num_batches_tracked",
        "optimizer.state.0.exp_avg_sq",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    // Adam's step counts are float32 tensors in PyTorch's state dict.
    let step = &file
        .tensors
        .iter()
        .find(|(n, _)| n == "optimizer.state.3.step")
        .expect("step")
        .1;
    assert_eq!(step.to_vec()?, vec![3.0]);
    let meta = &file.metadata;
    assert_eq!(meta["epoch"], "3");
    assert_eq!(meta["best_acc"], "0.75");
    assert_eq!(meta["note"], "3 Adam steps");
    assert_eq!(meta["optimizer.param_groups.0.lr"], "0.01");
    assert_eq!(meta["optimizer.param_groups.0.amsgrad"], "False");
    Ok(())
}

#[test]
fn prefix_mismatches_are_one_prefix_problem() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    // A checkpoint dict: the fix is to load what sits under "model".
    let e = format_error(load_model(&tinynet(&dev)?, fixture("checkpoint.pth")));
    assert!(
        e.contains("load_model_from(&model, path, \"model\")"),
        "{e}"
    );
    assert!(
        e.contains("all 9 tensors") && !e.contains("is missing"),
        "{e}"
    );
    assert!(e.contains("also holds 18 tensors"), "{e}"); // Adam's state
                                                         // DataParallel's `module.`.
    let e = format_error(load_model(
        &tinynet(&dev)?,
        fixture("tinynet_dataparallel.pth"),
    ));
    assert!(e.contains("\"module\"") && !e.contains("unexpected"), "{e}");
    // `features.0.*` against `0.*`, both ways, in both formats.
    for ext in ["pth", "safetensors"] {
        let whole = dir.join(format!("wrapped.{ext}"));
        let part = dir.join(format!("part.{ext}"));
        let wrapped = Wrapped {
            features: tinynet(&dev)?,
        };
        save_model(&wrapped, &whole)?;
        save_model(&tinynet(&dev)?, &part)?;
        let seq = tinynet(&dev)?;
        let e = format_error(load_model(&seq, &whole));
        assert!(
            e.contains("`features.0.weight` for the model's `0.weight`")
                && e.contains("load_model_from(&model, path, \"features\")"),
            "{e}"
        );
        load_model_from(&seq, &whole, "features")?;
        load_model_from(&seq, &whole, "features.")?; // the dot is optional
        let values = |m: &dyn Module| -> Result<Vec<Vec<u32>>> {
            Ok(snapshot(m)?.into_iter().map(|(_, v)| v).collect())
        };
        assert_eq!(values(&seq)?, values(&wrapped)?);
        load_model_from(&seq, &part, "")?; // no prefix: load_model
        let e = format_error(load_model(&wrapped, &part));
        assert!(e.contains("sub-module `features`"), "{e}");
        // A wrong prefix asked for.
        let e = format_error(load_model_from(&seq, &part, "model"));
        assert!(e.contains("without the prefix `model.`"), "{e}");
    }
    Ok(())
}

#[test]
fn lam_writes_pth_files_pytorch_reads() -> Result<()> {
    let dev = cpu();
    let model = tinynet(&dev)?;
    load_model(&model, fixture("tinynet.pth"))?;
    let path = scratch().join("tinynet.pth");
    save_model(&model, &path)?;
    // For the PyTorch-side check: LAM_PTH_OUT=FILE cargo test ..., then
    // python fixtures/make_pth_fixtures.py --check FILE
    if let Ok(out) = std::env::var("LAM_PTH_OUT") {
        fs::copy(&path, out).expect("copy for the PyTorch check");
    }
    let ours = fs::read(&path).expect("written");
    assert_eq!(
        ours[..4],
        *b"PK\x03\x04",
        "a zip archive, as torch.save writes"
    );
    assert!(
        ours == fs::read(fixture("lam_tinynet.pth")).expect("committed"),
        "lam's .pth differs from fixtures/pth/lam_tinynet.pth, the file PyTorch was shown to load: \
         regenerate it (LAM_PTH_OUT) and run make_pth_fixtures.py --check on it"
    );
    let back = tinynet(&dev)?;
    load_model(&back, &path)?;
    assert_eq!(snapshot(&back)?, snapshot(&model)?);
    // Named tensors and metadata strings in one dict, read back as they were.
    let tensors = vec![
        (
            "w".to_string(),
            Tensor::from_vec(vec![1.5, -2.0], &[2], &dev)?,
        ),
        (
            "ids".to_string(),
            Tensor::from_vec_i32(vec![i32::MIN, 7], &[2], &dev)?,
        ),
    ];
    let meta = BTreeMap::from([("note".to_string(), "hello".to_string())]);
    let named = scratch().join("named.pt");
    save_tensors(&tensors, &meta, &named)?;
    let file = load_tensors(&named, &dev)?;
    assert_eq!(file.metadata, meta);
    assert_eq!(file.tensors[0].0, "ids");
    assert_eq!(file.tensors[0].1.to_vec_i32()?, vec![i32::MIN, 7]);
    assert_eq!(file.tensors[1].1.to_vec()?, vec![1.5, -2.0]);
    Ok(())
}

conformance!(pth_round_trip_is_exact_and_reproducible, |dev| {
    let dir = scratch();
    let (a, b) = (dir.join("a.pth"), dir.join("b.pth"));
    let model = tinynet(dev)?;
    model.forward(&Tensor::randn(&[6, 3], dev)?)?; // running statistics off their defaults
    save_model(&model, &a)?;
    let fresh = tinynet(dev)?;
    load_model(&fresh, &a)?;
    assert_eq!(snapshot(&fresh)?, snapshot(&model)?);
    save_model(&fresh, &b)?;
    assert!(
        fs::read(&a).expect("a") == fs::read(&b).expect("b"),
        "same state, different bytes"
    );
    Ok(())
});

#[test]
fn bad_files_are_errors_that_say_what_they_are() -> Result<()> {
    let dev = cpu();
    let model = tinynet(&dev)?;
    let before = snapshot(&model)?;
    let e = format_error(load_tensors(fixture("int64_overflow.pth"), &dev).map(drop));
    assert!(
        e.contains("`count`") && e.contains("overflows int32"),
        "{e}"
    );
    let e = format_error(load_model(&model, fixture("runs_code.pth")));
    assert!(
        e.contains("`builtins.print`") && e.contains("never runs code"),
        "{e}"
    );
    let e = format_error(load_model(&model, fixture("model_object.pth")));
    assert!(e.contains("model.state_dict()"), "{e}");
    // Truncated anywhere, or a byte flipped in a storage (the CRC-32 catches it).
    let dir = scratch();
    let good = fs::read(fixture("tinynet.pth")).expect("fixture");
    let bad = dir.join("bad.pth");
    for cut in [0, 4, 100, good.len() / 2, good.len() - 30, good.len() - 1] {
        fs::write(&bad, &good[..cut]).expect("write");
        let e = format_error(load_model(&model, &bad));
        assert!(cut > 0 || e.contains("empty"), "{e}");
    }
    let legacy = fs::read(fixture("tinynet_legacy.pth")).expect("fixture");
    for cut in [20, legacy.len() / 2, legacy.len() - 1] {
        fs::write(&bad, &legacy[..cut]).expect("write");
        format_error(load_model(&model, &bad));
    }
    let mut flipped = good.clone();
    // The record's data starts at the 64-byte boundary after its name and
    // the 4 bytes of the padding field's header.
    let name = good
        .windows(14)
        .position(|w| w == b"archive/data/0")
        .expect("a storage record");
    flipped[(name + 14 + 4).next_multiple_of(64) + 5] ^= 1;
    fs::write(&bad, &flipped).expect("write");
    let e = format_error(load_model(&model, &bad));
    assert!(e.contains("CRC-32"), "{e}");
    // Other files say what they are.
    fs::write(&bad, b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00").expect("write");
    let e = format_error(load_model(&model, &bad));
    assert!(
        e.contains("neither a safetensors file nor a torch.save file"),
        "{e}"
    );
    assert_eq!(snapshot(&model)?, before, "a failed load changed the model");
    Ok(())
}
