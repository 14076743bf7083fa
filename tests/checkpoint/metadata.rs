//! Training metadata cannot lie: the checksum covers every metadata entry
//! (a one-digit edit of the epoch, a step count or the learning rate is an
//! error), and values that would break training are errors naming their
//! key even in a file whose checksum is valid — re-signed here by an
//! independent implementation of the documented checksum, and in the form
//! files had before the checksum covered the metadata.

use serde_json::{Map, Value};

use lam::optim::{OptimizerState, MAX_STEP};

use super::*;

/// How a rewritten file is signed.
#[derive(Clone, Copy)]
enum Sign {
    /// `lam.checksum` = `v2:` + FNV-1a 64 over tensors and metadata.
    CoversMetadata,
    /// The earlier form: 16 hex digits over the tensors alone.
    TensorsOnly,
    /// No `lam.checksum` at all.
    Unsigned,
}

/// The parts of a safetensors file: the header object and the data section.
fn split(bytes: &[u8]) -> (Map<String, Value>, &[u8]) {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).expect("JSON header");
    (header, &bytes[8 + n..])
}

/// The file `bytes` with its metadata changed by `edit` and signed by `sign`.
fn rewrite(bytes: &[u8], sign: Sign, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    let (mut header, data) = split(bytes);
    let mut meta = header["__metadata__"]
        .as_object()
        .expect("lam writes metadata")
        .clone();
    meta.remove("lam.checksum");
    edit(&mut meta);
    match sign {
        Sign::CoversMetadata => {
            let sum = checksum(&header, data, Some(&meta));
            meta.insert("lam.checksum".into(), format!("v2:{sum:016x}").into());
        }
        Sign::TensorsOnly => {
            let sum = checksum(&header, data, None);
            meta.insert("lam.checksum".into(), format!("{sum:016x}").into());
        }
        Sign::Unsigned => {}
    }
    header.insert("__metadata__".into(), Value::Object(meta));
    let mut text = serde_json::to_string(&header).expect("JSON");
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

/// lam's checksum as its format documents it: FNV-1a 64 over (with
/// metadata) the tensor count, each tensor's length-prefixed name, dtype,
/// shape (rank, dims) and bytes, then the metadata count and each
/// length-prefixed key and value, all in name order; (without) the
/// tensors alone, the dtype without its length.
fn checksum(header: &Map<String, Value>, data: &[u8], meta: Option<&Map<String, Value>>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    let size = |n: usize| (n as u64).to_le_bytes();
    let mut tensors: Vec<(&String, &Value)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .collect();
    tensors.sort_by_key(|(k, _)| k.as_str());
    if meta.is_some() {
        eat(&size(tensors.len()));
    }
    for (name, entry) in tensors {
        let dtype = entry["dtype"].as_str().expect("dtype");
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let offsets = &entry["data_offsets"];
        let (start, end) = (
            offsets[0].as_u64().expect("start") as usize,
            offsets[1].as_u64().expect("end") as usize,
        );
        eat(&size(name.len()));
        eat(name.as_bytes());
        if meta.is_some() {
            eat(&size(dtype.len()));
        }
        eat(dtype.as_bytes());
        eat(&size(shape.len()));
        for d in shape {
            eat(&size(d));
        }
        eat(&size(end - start));
        eat(&data[start..end]);
    }
    if let Some(meta) = meta {
        eat(&size(meta.len()));
        // A serde_json Map iterates in key order.
        for (key, value) in meta {
            let value = value.as_str().expect("string metadata");
            eat(&size(key.len()));
            eat(key.as_bytes());
            eat(&size(value.len()));
            eat(value.as_bytes());
        }
    }
    h
}

/// An Adam run of 3 steps saved at epoch 3 with one caller's entry, as bytes.
fn adam_checkpoint(dev: &Device, dir: &Path) -> Result<Vec<u8>> {
    let model = Mlp::new(dev)?;
    let mut adam = Adam::new(model.parameters(), 0.01)?;
    train(&model, &mut adam, 3, dev)?;
    let path = dir.join("run.safetensors");
    let meta = BTreeMap::from([("run".to_string(), "7".to_string())]);
    save_training(&path, &model, &adam, 3, &meta)?;
    Ok(fs::read(&path).expect("written"))
}

/// Loads `bytes` as a training checkpoint into a fresh model and Adam and
/// returns the error text; checks that neither changed.
fn refused(bytes: &[u8], dir: &Path, dev: &Device) -> Result<String> {
    let path = dir.join("edited.safetensors");
    fs::write(&path, bytes).expect("write");
    let model = Mlp::new(dev)?;
    let before = snapshot(&model)?;
    let mut adam = Adam::new(model.parameters(), 0.5)?;
    let e = format_error(load_training(&path, &model, &mut adam).map(|_| ()));
    assert!(e.contains("edited.safetensors"), "{e}");
    assert_eq!(
        snapshot(&model)?,
        before,
        "a refused file changed the model"
    );
    assert_eq!(adam.lr(), 0.5, "a refused file changed the optimizer");
    assert!(adam.state_dict()?.params.iter().all(Option::is_none));
    Ok(e)
}

/// `bytes` with the first character of the value of metadata `key` that is
/// the digit `from` turned into `to`, in place (same length, same layout).
fn edit_digit(bytes: &[u8], key: &str, from: u8, to: u8) -> Vec<u8> {
    let needle = format!("\"{key}\":\"");
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{key} in the header"))
        + needle.len();
    let len = bytes[at..]
        .iter()
        .position(|&b| b == b'"')
        .expect("closing quote");
    let digit = bytes[at..at + len]
        .iter()
        .position(|&b| b == from)
        .unwrap_or_else(|| panic!("digit {} in {key}", from as char));
    let mut out = bytes.to_vec();
    out[at + digit] = to;
    out
}

#[test]
fn one_digit_edits_of_any_metadata_are_checksum_errors() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    let bytes = adam_checkpoint(&dev, &dir)?;
    let (header, _) = split(&bytes);
    let meta = &header["__metadata__"];
    assert_eq!(meta["lam.epoch"], "3");
    assert_eq!(meta["lam.optim.0.step"], "3");
    assert_eq!(meta["lam.optim.hyper.lr"], "0.009999999776482582");
    let sum = meta["lam.checksum"].as_str().expect("checksum");
    assert!(sum.starts_with("v2:") && sum.len() == 19, "{sum}");
    let edits = [
        ("lam.epoch", b'3', b'4'),
        ("lam.optim.0.step", b'3', b'9'),
        ("lam.optim.3.step", b'3', b'2'),
        ("lam.optim.hyper.lr", b'9', b'8'),
        ("lam.optim.hyper.beta2", b'9', b'8'),
        ("lam.optim.params", b'4', b'2'),
        ("run", b'7', b'8'),
    ];
    for (key, from, to) in edits {
        let e = refused(&edit_digit(&bytes, key, from, to), &dir, &dev)?;
        assert!(e.contains("checksum mismatch"), "{key}: {e}");
    }
    // The untouched file loads.
    let path = dir.join("ok.safetensors");
    fs::write(&path, &bytes).expect("write");
    let model = Mlp::new(&dev)?;
    let mut adam = Adam::new(model.parameters(), 0.5)?;
    assert_eq!(load_training(&path, &model, &mut adam)?.epoch, 3);
    Ok(())
}

#[test]
fn values_that_would_break_training_are_errors_naming_the_key() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    let bytes = adam_checkpoint(&dev, &dir)?;
    let set = |key: &str, value: &str| {
        let (key, value) = (key.to_string(), value.to_string());
        rewrite(&bytes, Sign::CoversMetadata, move |m| {
            m.insert(key, value.into());
        })
    };
    // Re-signed but unchanged, the file loads: the test's checksum is lam's.
    let same = dir.join("same.safetensors");
    fs::write(&same, rewrite(&bytes, Sign::CoversMetadata, |_| {})).expect("write");
    let model = Mlp::new(&dev)?;
    let mut adam = Adam::new(model.parameters(), 0.5)?;
    assert_eq!(load_training(&same, &model, &mut adam)?.epoch, 3);
    assert_eq!(adam.lr(), 0.01);

    let max = u64::MAX.to_string();
    let beyond = (MAX_STEP + 1).to_string();
    let cases: [(&str, &str, &str); 16] = [
        ("lam.optim.0.step", &max, "`lam.optim.0.step` = 18446744073709551615 is out of range"),
        ("lam.optim.1.step", &beyond, "`lam.optim.1.step` = 9007199254740993 is out of range"),
        ("lam.optim.2.step", "0", "`lam.optim.2.step` = 0 is out of range"),
        ("lam.optim.3.step", "-1", "`lam.optim.3.step` = \"-1\" is not a valid number"),
        ("lam.epoch", &max, "`lam.epoch` = 18446744073709551615 is out of range"),
        ("lam.optim.hyper.lr", "-0.5", "lr must be finite and >= 0, found -0.5"),
        ("lam.optim.hyper.lr", "NaN", "`lam.optim.hyper.lr` = NaN is not a finite float32"),
        ("lam.optim.hyper.lr", "inf", "`lam.optim.hyper.lr` = inf is not a finite float32"),
        ("lam.optim.hyper.lr", "1e39", "`lam.optim.hyper.lr` = 1000000000000000000000000000000000000000 is not a finite float32"),
        ("lam.optim.hyper.beta1", "1", "beta1 must be in [0, 1), found 1"),
        ("lam.optim.hyper.eps", "-1e-8", "eps must be finite and >= 0"),
        ("lam.optim.hyper.momentum", "0.9", "hyper-parameters"),
        ("lam.optim.9.step", "1", "`lam.optim.9.step` is not an optimizer entry"),
        ("lam.optim.kind", "sgd", "does not fit this optimizer"),
        ("lam.generator", "splitmix64:21", "`lam.generator`"),
        ("lam.generator", "philox:1:2", "`lam.generator`"),
    ];
    for (key, value, want) in cases {
        let e = refused(&set(key, value), &dir, &dev)?;
        assert!(e.contains(want), "{key} = {value}: {e}");
    }
    let e = refused(
        &rewrite(&bytes, Sign::CoversMetadata, |m| {
            m.remove("lam.optim.hyper.lr");
        }),
        &dir,
        &dev,
    )?;
    assert!(e.contains("lr"), "{e}");
    Ok(())
}

#[test]
fn an_overflowing_step_count_is_refused_before_a_step_can_use_it() -> Result<()> {
    let dev = cpu();
    let model = Mlp::new(&dev)?;
    let mut adam = Adam::new(model.parameters(), 0.01)?;
    train(&model, &mut adam, 1, &dev)?;
    let good = adam.state_dict()?;
    for step in [u64::MAX, MAX_STEP + 1, 0] {
        let mut state: OptimizerState = good.clone();
        for p in state.params.iter_mut().flatten() {
            p.step = step;
        }
        let e = adam.load_state_dict(&state).expect_err("out of range");
        assert!(e.to_string().contains(&format!("step count {step}")), "{e}");
    }
    // The largest allowed count loads, and the next step stays finite.
    let mut state = good.clone();
    for p in state.params.iter_mut().flatten() {
        p.step = MAX_STEP;
    }
    adam.load_state_dict(&state)?;
    train(&model, &mut adam, 1, &dev)?;
    for (name, t) in model.state_dict() {
        assert!(t.to_vec()?.iter().all(|v| v.is_finite()), "{name}");
    }
    Ok(())
}

#[test]
fn older_and_foreign_files_load_and_damaged_signatures_do_not() -> Result<()> {
    let dev = cpu();
    let dir = scratch();
    let bytes = adam_checkpoint(&dev, &dir)?;
    let write = |name: &str, b: &[u8]| {
        let p = dir.join(name);
        fs::write(&p, b).expect("write");
        p
    };
    // Written before the checksum covered the metadata: loads, tensors
    // checked; a metadata edit in range cannot be detected, one out of
    // range still is refused.
    let old = rewrite(&bytes, Sign::TensorsOnly, |_| {});
    let model = Mlp::new(&dev)?;
    let mut adam = Adam::new(model.parameters(), 0.5)?;
    let state = load_training(write("old.safetensors", &old), &model, &mut adam)?;
    assert_eq!((state.epoch, adam.lr()), (3, 0.01));
    let old_lr = rewrite(&bytes, Sign::TensorsOnly, |m| {
        m.insert("lam.optim.hyper.lr".into(), "0.02".into());
    });
    load_training(write("old_lr.safetensors", &old_lr), &model, &mut adam)?;
    assert_eq!(adam.lr(), 0.02);
    let old_step = rewrite(&bytes, Sign::TensorsOnly, |m| {
        m.insert("lam.optim.0.step".into(), u64::MAX.to_string().into());
    });
    assert!(refused(&old_step, &dir, &dev)?.contains("`lam.optim.0.step`"));
    let mut old_data = old.clone();
    let last = old_data.len() - 1;
    old_data[last] ^= 0x10;
    assert!(refused(&old_data, &dir, &dev)?.contains("checksum mismatch"));

    // Written before checkpoints carried a generator state: loads without one.
    let no_generator = rewrite(&bytes, Sign::CoversMetadata, |m| {
        assert!(
            m.remove("lam.generator").is_some(),
            "lam writes lam.generator"
        );
    });
    let state = load_training(
        write("no_generator.safetensors", &no_generator),
        &model,
        &mut adam,
    )?;
    assert_eq!((state.epoch, state.generator), (3, None));

    // lam's keys without lam's checksum: the checksum's key was damaged.
    let unsigned = rewrite(&bytes, Sign::Unsigned, |_| {});
    let e = refused(&unsigned, &dir, &dev)?;
    assert!(e.contains("`lam.checksum`") && e.contains("missing"), "{e}");
    let odd = rewrite(&bytes, Sign::Unsigned, |m| {
        m.insert("lam.checksum".into(), "v2:not-hex-at-all".into());
    });
    assert!(refused(&odd, &dir, &dev)?.contains("not a checksum lam writes"));

    // A file from another tool: no checksum, no lam keys. Its model loads.
    let plain = dir.join("plain.safetensors");
    let trained = Mlp::new(&dev)?;
    save_model(&trained, &plain)?;
    let foreign = rewrite(&fs::read(&plain).expect("written"), Sign::Unsigned, |m| {
        m.clear();
    });
    let other = Mlp::new(&dev)?;
    load_model(&other, write("foreign.safetensors", &foreign))?;
    assert_eq!(snapshot(&other)?, snapshot(&trained)?);
    // A model-only file in the earlier form loads too.
    let old_plain = rewrite(
        &fs::read(&plain).expect("written"),
        Sign::TensorsOnly,
        |_| {},
    );
    load_model(&Mlp::new(&dev)?, write("old_plain.safetensors", &old_plain))?;
    Ok(())
}
