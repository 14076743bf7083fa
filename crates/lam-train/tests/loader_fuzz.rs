//! lam-train's file readers survive mutated files: CSV (plain and gzipped),
//! IDX (alone and as an image/label pair, plain and gzipped) and scaler
//! JSON. Every load returns `Ok` or a clean `Err` — never a panic — and no
//! load takes more heap than its input's size allows, whatever sizes an
//! IDX header claims (see `tests/fuzz/mod.rs` at the workspace root).
//!
//! The valid files are written by lam where it has a writer (IDX by
//! `encode_idx_u8`, a history CSV by `History::to_csv`, scalers by
//! `Scaler::save`) and by hand otherwise (a labelled CSV with quotes and a
//! header; IDX of every element type). Each is mutated blindly (bytes) and
//! with knowledge of its format (CSV fields and rows, IDX header fields,
//! scaler keys). One `#[test]`: the allocator's counters are process-wide.

#[path = "../../../tests/fuzz/mod.rs"]
mod fuzz;

use std::io::Write;
use std::path::Path;

use fuzz::{mutate_bytes, CaseFile, Fuzz, Rng, TempDir, INTERESTING};
use lam_train::data::csv::{read_csv, read_table, CsvOptions, Missing};
use lam_train::data::idx::{encode_idx_u8, read_idx, read_idx_dataset};
use lam_train::preprocess::{load_scaler, MinMaxScaler, Scaler, Standardizer};
use lam_train::trainer::{EpochRecord, History};
use serde_json::{json, Value};

const SEED: u64 = 0x1dc5_f022;
/// Mutated inputs per seed file, blind and format-aware.
const BLIND: usize = 250;
const AWARE: usize = 350;

#[test]
fn file_readers_survive_mutated_files() {
    let scratch = TempDir::new("lam-train-loader-fuzz");
    let dir = scratch.0.as_path();
    let mut rng = Rng::new(SEED);
    let started = std::time::Instant::now();
    let mut fuzz = Fuzz::new("csv/idx/scaler");
    csv_cases(&mut fuzz, &mut rng, dir);
    idx_cases(&mut fuzz, &mut rng, dir);
    scaler_cases(&mut fuzz, &mut rng, dir);
    let elapsed = started.elapsed();
    let cases = fuzz.cases();
    fuzz.finish();
    eprintln!("lam-train loader fuzz: {cases} loads in {elapsed:?}");
    assert!(cases >= 5000, "only {cases} loads ran");
}

// ---- CSV ----------------------------------------------------------------

fn csv_cases(fuzz: &mut Fuzz, rng: &mut Rng, dir: &Path) {
    let history = History {
        records: (1..=3)
            .map(|e| EpochRecord {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_accuracy: Some(0.5),
                train_regression: None,
                val_loss: Some(0.25),
                val_accuracy: Some(0.75),
                val_regression: None,
                lr: 1e-3,
                seconds: 0.5,
                samples_per_sec: 10.0,
            })
            .collect(),
    };
    let seeds = [
        "\"a\",\"b\",\"label\"\r\n1,2.5,0\r\n\r\n-3,4e1,2\r\n0.5,-7,1\n".to_string(),
        "0.1,0.2,0.3,1\n4,5,6,0\n7,8,9,2\n1e3,-2e-3,3,1\n".to_string(),
        // Empty fields (no validation set) make this one fail; mutations may fix it.
        history.to_csv(),
    ];
    for (k, seed) in seeds.iter().enumerate() {
        for i in 0..BLIND + AWARE {
            let mut text = seed.as_bytes().to_vec();
            let what = if i < BLIND {
                mutate_bytes(rng, &mut text)
            } else {
                mutate_csv(rng, &mut text)
            };
            let gz = rng.chance(0.15);
            let (name, bytes) = if gz {
                ("case.csv.gz", gzip(&text))
            } else {
                ("case.csv", text)
            };
            let label = format!("csv seed {k} #{i}{}: {what}", if gz { " (gz)" } else { "" });
            read_all_csv(fuzz, dir, name, &bytes, &label);
        }
        // Gzip streams damaged after compression.
        let packed = gzip(seed.as_bytes());
        for i in 0..BLIND / 2 {
            let mut bytes = packed.clone();
            let what = mutate_bytes(rng, &mut bytes);
            read_all_csv(
                fuzz,
                dir,
                "case.csv.gz",
                &bytes,
                &format!("csv.gz seed {k} #{i}: {what}"),
            );
        }
    }
}

fn read_all_csv(fuzz: &mut Fuzz, dir: &Path, name: &str, bytes: &[u8], label: &str) {
    let file = CaseFile::new(dir, name, bytes);
    let p = &file.0;
    let n = bytes.len();
    fuzz.run(&format!("read_table {label}"), n, || {
        read_table(p, true, ',').map(|_| ())
    });
    let options = [
        CsvOptions::new(),
        CsvOptions::new().header(true).target_name("label"),
        CsvOptions::new().target_index(0).regression(true),
        CsvOptions::new()
            .header(true)
            .target_index(-4)
            .delimiter(';'),
        CsvOptions::new().missing(Missing::Nan),
    ];
    for (k, o) in options.iter().enumerate() {
        fuzz.run(&format!("read_csv[{k}] {label}"), n, || {
            read_csv(p, o).map(|_| ())
        });
    }
}

/// One mutation that knows CSV: a field, a row, line endings or the text.
fn mutate_csv(rng: &mut Rng, text: &mut Vec<u8>) -> String {
    let s = String::from_utf8_lossy(text).into_owned();
    let mut rows: Vec<Vec<String>> = s
        .split('\n')
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let r = rng.below(rows.len());
    let what = match rng.below(8) {
        0..=2 => {
            let token = *rng.pick(&[
                "NaN",
                "nan",
                "inf",
                "-inf",
                "Infinity",
                "1e39",
                "-1e39",
                "1e-50",
                "",
                "  ",
                "abc",
                "0x10",
                "18446744073709551615",
                "18446744073709551616",
                "-9223372036854775808",
                "9223372036854775807",
                "2147483648",
                "-2147483648",
                "-2147483649",
                "16777217",
                "+5",
                ".5",
                "5.",
                "1e",
                "--1",
                "\"3\"",
                "\"unterminated",
                "\"a\"\"b\"",
                "\"\"",
                "\u{feff}1",
                "\u{661}",
                "1\u{0}",
                "\r",
            ]);
            let c = rng.below(rows[r].len());
            rows[r][c] = token.to_string();
            format!("row {r} field {c} = {token:?}")
        }
        3 => {
            if rows[r].len() > 1 && rng.chance(0.5) {
                rows[r].pop();
                format!("row {r} loses a field")
            } else {
                rows[r].push("1".into());
                format!("row {r} gains a field")
            }
        }
        4 => {
            let row = rows[r].clone();
            let at = rng.below(rows.len() + 1);
            if rng.chance(0.5) {
                rows.insert(at, row);
                format!("row {r} copied to {at}")
            } else {
                rows.remove(r);
                format!("row {r} removed")
            }
        }
        5 => {
            let long = "9".repeat(1 + rng.below(100_000));
            let c = rng.below(rows[r].len());
            rows[r][c] = long;
            format!("row {r} field {c} = a long number")
        }
        6 => {
            let ending = *rng.pick(&["\r\n", "\r", "\n\n", ";\n"]);
            *text = s.replace('\n', ending).into_bytes();
            return "line endings changed".into();
        }
        _ => {
            let options: [&[u8]; 5] = [&[0xff, 0xfe], &[0], b"\"", b",,,", b"\n\n\n"];
            let junk = *rng.pick(&options);
            let at = rng.below(text.len() + 1);
            text.splice(at..at, junk.iter().copied());
            return format!("{junk:?} inserted at {at}");
        }
    };
    *text = rows
        .iter()
        .map(|r| r.join(","))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    what
}

// ---- IDX ----------------------------------------------------------------

fn idx_cases(fuzz: &mut Fuzz, rng: &mut Rng, dir: &Path) {
    let images = encode_idx_u8(
        &[5, 3, 3],
        &(0..45).map(|v| v as u8 * 5).collect::<Vec<_>>(),
    )
    .expect("idx images");
    let labels = encode_idx_u8(&[5], &[0, 1, 2, 1, 0]).expect("idx labels");
    // Every element type, big-endian, by hand (lam writes only u8).
    let typed = |code: u8, width: usize, values: &[f64]| -> Vec<u8> {
        let mut out = vec![0, 0, code, 1];
        out.extend_from_slice(&(values.len() as u32).to_be_bytes());
        for &v in values {
            let b: Vec<u8> = match code {
                0x09 => vec![v as i8 as u8],
                0x0B => (v as i16).to_be_bytes().to_vec(),
                0x0C => (v as i32).to_be_bytes().to_vec(),
                0x0D => (v as f32).to_be_bytes().to_vec(),
                _ => v.to_be_bytes().to_vec(),
            };
            assert_eq!(b.len(), width);
            out.extend(b);
        }
        out
    };
    let label_values = [0.0, 1.0, 2.0, 1.0, 0.0];
    // The valid partners of a mutated half: five images and labels, or none.
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write a valid half");
        p
    };
    let valid_images = write("valid-images.idx", &images);
    let valid_labels = write("valid-labels.idx", &labels);
    let no_images = encode_idx_u8(&[0, 3, 3], &[]).expect("empty images");
    let no_labels = encode_idx_u8(&[0], &[]).expect("empty labels");
    let empty_images = write("empty-images.idx", &no_images);
    let empty_labels = write("empty-labels.idx", &no_labels);
    // (name, bytes, whether they are images, the partner file)
    let seeds: Vec<(&str, Vec<u8>, bool, &Path)> = vec![
        ("images u8", images.clone(), true, &valid_labels),
        ("no images", no_images, true, &empty_labels),
        ("no labels", no_labels, false, &empty_images),
        ("labels u8", labels.clone(), false, &valid_images),
        (
            "labels i8",
            typed(0x09, 1, &label_values),
            false,
            &valid_images,
        ),
        (
            "labels i16",
            typed(0x0B, 2, &label_values),
            false,
            &valid_images,
        ),
        (
            "labels i32",
            typed(0x0C, 4, &label_values),
            false,
            &valid_images,
        ),
        (
            "labels f32",
            typed(0x0D, 4, &label_values),
            false,
            &valid_images,
        ),
        (
            "labels f64",
            typed(0x0E, 8, &label_values),
            false,
            &valid_images,
        ),
    ];
    for (name, seed, are_images, partner) in &seeds {
        for i in 0..BLIND + AWARE {
            let mut bytes = seed.clone();
            let what = if i < BLIND {
                mutate_bytes(rng, &mut bytes)
            } else {
                mutate_idx(rng, &mut bytes)
            };
            let gz = rng.chance(0.15);
            let file_name = if gz { "case.idx.gz" } else { "case.idx" };
            let data = if gz { gzip(&bytes) } else { bytes.clone() };
            let label = format!("idx {name} #{i}{}: {what}", if gz { " (gz)" } else { "" });
            let file = CaseFile::new(dir, file_name, &data);
            let p = file.0.clone();
            fuzz.run(&format!("read_idx {label}"), data.len(), || {
                read_idx(&p).map(|_| ())
            });
            // As one half of an image/label pair, the other half valid.
            let (imgs, lbls) = if *are_images {
                (p.as_path(), *partner)
            } else {
                (*partner, p.as_path())
            };
            fuzz.run(
                &format!("read_idx_dataset {label}"),
                data.len() + 64,
                || read_idx_dataset(imgs, lbls).map(|_| ()),
            );
        }
    }
}

/// One mutation that knows IDX: the type code, the rank, a dim, the magic,
/// or the length of the data.
fn mutate_idx(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let ndim = bytes[3] as usize;
    match rng.below(6) {
        0 => {
            let t = *rng.pick(&[0x08u8, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]);
            bytes[2] = t;
            format!("type {t:#04x}")
        }
        1 => {
            let d = *rng.pick(&[0u8, 1, 2, 3, 4, 255]);
            bytes[3] = d;
            format!("rank {d}")
        }
        2 | 3 => {
            let i = rng.below(ndim.max(1));
            let v = *rng.pick(&INTERESTING) as u32;
            let v = if rng.chance(0.3) {
                u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("dim"))
                    .wrapping_add(*rng.pick(&[1u32, u32::MAX]))
            } else {
                v
            };
            if bytes.len() >= 8 + 4 * i {
                bytes[4 + 4 * i..8 + 4 * i].copy_from_slice(&v.to_be_bytes());
            }
            format!("dim {i} = {v}")
        }
        4 => {
            let i = rng.below(2);
            bytes[i] = 1 + rng.below(255) as u8;
            format!("magic byte {i} nonzero")
        }
        _ => {
            let header = 4 + 4 * ndim;
            let cut =
                header.min(bytes.len()) + rng.below(bytes.len() - header.min(bytes.len()) + 1);
            if rng.chance(0.5) {
                bytes.truncate(cut);
                format!("truncated to {cut} bytes")
            } else {
                let n = 1 + rng.below(9);
                bytes.extend(std::iter::repeat_n(0x7f, n));
                format!("{n} bytes appended")
            }
        }
    }
}

// ---- Scalers ------------------------------------------------------------

fn scaler_cases(fuzz: &mut Fuzz, rng: &mut Rng, dir: &Path) {
    let data: Vec<f32> = (0..24).map(|v| v as f32 * 0.5 - 3.0).collect();
    let mut seeds = Vec::new();
    let mut minmax = MinMaxScaler::new();
    minmax.fit_slice(&data, &[2, 3]).expect("fit");
    let mut standard = Standardizer::new();
    standard.fit_slice(&data, &[6]).expect("fit");
    for (name, scaler) in [
        ("min_max", &minmax as &dyn Scaler),
        ("standard", &standard as &dyn Scaler),
    ] {
        let path = dir.join(format!("{name}.json"));
        scaler.save(&path).expect("save");
        seeds.push(std::fs::read(&path).expect("read"));
    }
    for (k, seed) in seeds.iter().enumerate() {
        for i in 0..BLIND + AWARE {
            let mut bytes = seed.clone();
            let what = if i < BLIND {
                mutate_bytes(rng, &mut bytes)
            } else {
                mutate_scaler(rng, &mut bytes)
            };
            let file = CaseFile::new(dir, "scaler.json", &bytes);
            let p = file.0.clone();
            let label = format!("scaler seed {k} #{i}: {what}");
            let n = bytes.len();
            fuzz.run(&format!("load_scaler {label}"), n, || {
                load_scaler(&p).map(|_| ())
            });
            fuzz.run(&format!("MinMaxScaler::load {label}"), n, || {
                MinMaxScaler::load(&p).map(|_| ())
            });
            fuzz.run(&format!("Standardizer::load {label}"), n, || {
                Standardizer::load(&p).map(|_| ())
            });
        }
    }
}

/// One mutation that knows the scaler JSON: its shape, statistics or kind.
fn mutate_scaler(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let mut v: Value = serde_json::from_slice(bytes).expect("a valid seed");
    let key = *rng.pick(&[
        "shape",
        "mean",
        "std",
        "data_min",
        "data_max",
        "feature_range",
        "kind",
    ]);
    let value = rng
        .pick(&[
            json!([1u64 << 40]),
            json!([1u64 << 32, 1u64 << 32]),
            json!([u64::MAX]),
            json!([0, u64::MAX]),
            json!([]),
            json!([-1]),
            json!([0]),
            json!([1.5, 2]),
            json!([1e39, -1e39]),
            json!([1, 0]),
            json!(["a"]),
            json!("standard"),
            json!("min_max"),
            json!(null),
            json!(vec![0.5; 7]),
        ])
        .clone();
    let what = format!("`{key}` = {value}");
    if let Some(o) = v.as_object_mut() {
        if rng.chance(0.1) {
            o.remove(key);
        } else {
            o.insert(key.to_string(), value);
        }
    }
    *bytes = v.to_string().into_bytes();
    what
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}
