//! TensorBoard event files (`lam_train::tensorboard`).
//!
//! - A file PyTorch's `SummaryWriter` wrote (`fixtures/tensorboard/torch/`,
//!   by `fixtures/make_tensorboard_fixtures.py`): lam checks every record's
//!   framing and CRCs, decodes the values the fixture lists, and writing
//!   the same events gives the same bytes.
//! - Damaged files are errors naming the record, never a panic.
//! - A log of every kind of value lam writes reads back the same; with
//!   `LAM_TB_OUT=DIR` it is written to `DIR` with `expected.json` beside
//!   it, for the fixture script's `--check DIR`, which reads it with
//!   TensorBoard's EventAccumulator and tbparse.
//! - The trainer logs each epoch through `TensorBoardLogger`.

mod common;

use std::path::{Path, PathBuf};

use common::{blobs, cpu, fixture, repo_root, Mlp, Scratch};
use lam::prelude::*;
use lam_train::data::DataLoader;
use lam_train::tensorboard::record::{frame, masked_crc32c, unframe};
use lam_train::tensorboard::{
    read_events, HParam, Histogram, SummaryWriter, TensorBoardLogger, ValueData,
};
use lam_train::trainer::{TrainConfig, Trainer};
use serde_json::{json, Value};

fn torch_file() -> PathBuf {
    repo_root().join("fixtures/tensorboard/torch/events.out.tfevents.1700000000.lam.0.0")
}

/// A clock that returns `times` in order, then the last one.
fn replay(times: Vec<f64>) -> lam_train::tensorboard::Clock {
    let mut i = 0;
    Box::new(move || {
        let t = times[i.min(times.len() - 1)];
        i += 1;
        t
    })
}

#[test]
fn masked_crc_is_tensorflows() {
    // CRC-32C check value of "123456789" is 0xe3069283 (RFC 3720); masked:
    // rotated right by 15, plus 0xa282ead8.
    let crc = 0xe306_9283u32;
    assert_eq!(
        masked_crc32c(b"123456789"),
        crc.rotate_right(15).wrapping_add(0xa282_ead8)
    );
    let framed = frame(b"lam");
    assert_eq!(&framed[..8], &3u64.to_le_bytes());
    assert_eq!(
        unframe(&framed, "x").expect("one record"),
        vec![&b"lam"[..]]
    );
}

#[test]
fn reads_the_file_tensorboard_wrote() -> lam::Result<()> {
    let doc = fixture("tensorboard/torch.json");
    let bytes = std::fs::read(torch_file()).expect("the fixture file");
    let records = unframe(&bytes, "torch")?;
    let events = read_events(torch_file())?;
    let listed = doc["events"].as_array().expect("events");
    assert_eq!(
        records.len(),
        listed.len() + 1,
        "file version + one record per value"
    );
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert_eq!(events[0].wall_time, 1_700_000_000.25);
    for (e, want) in events[1..].iter().zip(listed) {
        let tag = want["tag"].as_str().expect("tag");
        assert_eq!(e.wall_time, want["wall_time"].as_f64().expect("time"));
        assert_eq!(e.step, want["step"].as_i64().expect("step"));
        assert_eq!(e.values.len(), 1);
        assert_eq!(e.values[0].tag, tag);
        match &e.values[0].data {
            ValueData::Scalar(v) => {
                assert_eq!(*v, want["scalar"].as_f64().expect("scalar") as f32, "{tag}")
            }
            ValueData::Histogram(h) => {
                let values = common::f64s(&want["histogram"]);
                assert_eq!(h.num, values.len() as f64);
                assert_eq!(h.sum, values.iter().sum::<f64>());
                assert_eq!(h.min, -1.5);
                assert_eq!(h.max, 3.25);
                assert_eq!(h.bucket.iter().sum::<f64>(), h.num);
                assert_eq!(h.bucket.len(), h.bucket_limit.len());
            }
            ValueData::Image {
                height,
                width,
                colorspace,
                png,
            } => {
                assert_eq!([*height, *width, *colorspace], [2, 4, 3]);
                let decoded = png::Decoder::new(png.as_slice())
                    .read_info()
                    .expect("a PNG");
                assert_eq!(decoded.info().width, 4);
            }
            ValueData::Text(text) => assert_eq!(text, want["text"].as_str().expect("text")),
            other => panic!("{tag}: unexpected {other:?}"),
        }
    }

    // The same events from lam's writer: the same bytes (the first record
    // names the writer, so it differs).
    let dir = Scratch::new("tb-same");
    let times = events.iter().map(|e| e.wall_time).collect();
    let mut w = SummaryWriter::with_clock(&dir.0, replay(times))?;
    for e in &events[1..] {
        let v = &e.values[0];
        match &v.data {
            ValueData::Scalar(x) => w.add_scalar(&v.tag, f64::from(*x), e.step)?,
            ValueData::Histogram(h) => w.add_histogram_with(&v.tag, h, e.step)?,
            ValueData::Image { png, .. } => w.add_image_png(&v.tag, png, e.step)?,
            ValueData::Text(t) => {
                let tag = v.tag.strip_suffix("/text_summary").expect("a text tag");
                w.add_text(tag, t, e.step)?
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let ours = std::fs::read(w.path()).expect("lam's file");
    let ours = unframe(&ours, "lam")?;
    assert_eq!(ours.len(), records.len());
    for (i, (a, b)) in ours.iter().zip(&records).enumerate().skip(1) {
        assert_eq!(a, b, "record {i} differs from PyTorch's");
    }
    Ok(())
}

#[test]
fn damaged_files_are_errors() {
    let bytes = std::fs::read(torch_file()).expect("the fixture file");
    let dir = Scratch::new("tb-bad");
    let write = |name: &str, b: &[u8]| -> PathBuf {
        let p = dir.path(name);
        std::fs::write(&p, b).expect("write");
        p
    };
    let message = |p: &Path| read_events(p).expect_err("an error").to_string();
    let mut flipped = bytes.clone();
    flipped[120] ^= 1;
    let e = message(&write("flipped", &flipped));
    assert!(e.contains("CRC does not match"), "{e}");
    let e = message(&write("short", &bytes[..bytes.len() - 3]));
    assert!(e.contains("past the end of the file"), "{e}");
    let e = message(&write("header", &bytes[..5]));
    assert!(e.contains("truncated length header"), "{e}");
    // A huge claimed length with a valid CRC is refused before any allocation.
    let len = u64::MAX.to_le_bytes();
    let mut huge = len.to_vec();
    huge.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    let e = message(&write("huge", &huge));
    assert!(e.contains("past the end of the file"), "{e}");
    // Framed bytes that are not an Event.
    let e = message(&write("garbage", &frame(&[0x0f, 0xff])));
    assert!(e.contains("record 0"), "{e}");
}

/// Writes one of everything; returns the writer's file and what it wrote,
/// as the fixture script's `--check` reads it.
fn write_demo_log(dir: &Path) -> lam::Result<(PathBuf, Value)> {
    let dev = cpu();
    let times = (0..100).map(|i| 1_700_000_000.0 + f64::from(i)).collect();
    let mut w = SummaryWriter::with_clock(dir, replay(times))?;
    let mut scalars = serde_json::Map::new();
    for (tag, f) in [
        ("loss/train", (|s: f64| 2.0 / (1.0 + s)) as fn(f64) -> f64),
        ("accuracy/validation", |s: f64| 0.5 + 0.09 * s),
        ("learning_rate", |s: f64| 1e-3 * 0.5f64.powf(s)),
    ] {
        let mut points = Vec::new();
        for step in 0..5i64 {
            let v = f(step as f64);
            w.add_scalar(tag, v, step)?;
            points.push(json!([step, v as f32]));
        }
        scalars.insert(tag.into(), Value::Array(points));
    }
    let model = Mlp::new(4, 8, 3, &dev)?;
    let x = Tensor::randn(&[5, 4], &dev)?;
    model.forward(&x)?.square()?.mean_all()?.backward()?;
    let mut histograms = serde_json::Map::new();
    for (name, p) in model.named_parameters() {
        for (tag, t) in [
            (format!("weights/{name}"), p.clone()),
            (format!("gradients/{name}"), p.grad().expect("a gradient")),
        ] {
            w.add_histogram_tensor(&tag, &t, 7)?;
            let h = Histogram::of(&t.to_vec()?, 30)?;
            histograms.insert(
                tag,
                json!({"step": 7, "min": h.min, "max": h.max, "num": h.num, "sum": h.sum,
                       "sum_squares": h.sum_squares, "bucket": h.bucket, "bucket_limit": h.bucket_limit}),
            );
        }
    }
    // An image from a tensor, and one from a PNG file.
    let ramp: Vec<f32> = (0..3 * 6 * 10).map(|i| (i % 60) as f32 / 59.0).collect();
    w.add_image("ramp", &Tensor::from_slice(&ramp, &[3, 6, 10], &dev)?, 1)?;
    let file = dir.join("checks.png");
    write_checkerboard(&file, 12, 8);
    w.add_image_file("pictures/checks", &file, 2)?;
    std::fs::remove_file(&file).map_err(|e| Error::invalid("test", e.to_string()))?;
    w.add_text("notes", "trained by **lam**", 3)?;
    w.add_hparams(
        &[
            ("lr", HParam::Number(0.01)),
            ("hidden", HParam::Number(8.0)),
            ("optimizer", HParam::Text("adam".into())),
            ("augment", HParam::Bool(true)),
        ],
        &[("hparam/accuracy", 0.875)],
    )?;
    scalars.insert("hparam/accuracy".into(), json!([[0, 0.875]]));
    let expected = json!({
        "scalars": scalars,
        "histograms": histograms,
        "images": {"ramp": {"step": 1, "height": 6, "width": 10},
                   "pictures/checks": {"step": 2, "height": 8, "width": 12}},
        "text": {"notes": [3, "trained by **lam**"]},
        "hparams": {"lr": 0.01, "hidden": 8.0, "optimizer": "adam", "augment": true},
    });
    Ok((w.path().to_path_buf(), expected))
}

/// A grey checkerboard PNG of `width × height`.
fn write_checkerboard(path: &Path, width: u32, height: u32) {
    let file = std::fs::File::create(path).expect("create");
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = (0..width * height)
        .map(|i| {
            if (i % width + i / width).is_multiple_of(2) {
                255
            } else {
                0
            }
        })
        .collect();
    let mut w = encoder.write_header().expect("header");
    w.write_image_data(&pixels).expect("pixels");
}

#[test]
fn a_log_of_every_kind_reads_back() -> lam::Result<()> {
    let scratch = Scratch::new("tb-demo");
    let dir = std::env::var_os("LAM_TB_OUT").map_or_else(|| scratch.0.clone(), PathBuf::from);
    let (file, expected) = write_demo_log(&dir)?;
    if std::env::var_os("LAM_TB_OUT").is_some() {
        let text = serde_json::to_string_pretty(&expected).expect("json");
        std::fs::write(dir.join("expected.json"), text + "\n").expect("write expected.json");
    }
    let events = read_events(&file)?;
    let mut scalars = 0;
    for e in &events[1..] {
        for v in &e.values {
            match &v.data {
                ValueData::Scalar(x) => {
                    let points = expected["scalars"][&v.tag]
                        .as_array()
                        .expect("a listed tag");
                    let want = points
                        .iter()
                        .find(|p| p[0].as_i64() == Some(e.step))
                        .expect("a listed step");
                    assert_eq!(*x, want[1].as_f64().expect("value") as f32, "{}", v.tag);
                    scalars += 1;
                }
                ValueData::Histogram(h) => {
                    let want = &expected["histograms"][&v.tag];
                    assert_eq!(h.num, want["num"].as_f64().expect("num"));
                    assert_eq!(h.bucket.iter().sum::<f64>(), h.num);
                }
                ValueData::Image { height, width, .. } => {
                    let want = &expected["images"][&v.tag];
                    assert_eq!(u64::from(*height), want["height"].as_u64().expect("h"));
                    assert_eq!(u64::from(*width), want["width"].as_u64().expect("w"));
                }
                ValueData::Text(t) => assert_eq!(t, "trained by **lam**"),
                ValueData::Plugin { name, content } => {
                    assert_eq!(name, "hparams");
                    assert!(!content.is_empty());
                }
                ValueData::Other => panic!("{}: undecoded", v.tag),
            }
        }
    }
    assert_eq!(scalars, 16);
    // 1 file version, 16 scalars, 8 histograms, 2 images, 1 text, 3 hparams.
    assert_eq!(events.len(), 31);
    Ok(())
}

#[test]
fn bad_values_are_errors() -> lam::Result<()> {
    let dir = Scratch::new("tb-badvalues");
    let mut w = SummaryWriter::new(&dir.0)?;
    let e = w.add_histogram("h", &[], 0).expect_err("empty").to_string();
    assert!(e.contains("empty"), "{e}");
    let e = w
        .add_histogram("h", &[1.0, f32::NAN], 0)
        .expect_err("nan")
        .to_string();
    assert!(e.contains("finite"), "{e}");
    let e = w
        .add_image_png("i", b"GIF89a", 0)
        .expect_err("not png")
        .to_string();
    assert!(e.contains("not a PNG"), "{e}");
    let e = w
        .add_image("i", &Tensor::zeros(&[2, 3, 3], &cpu())?, 0)
        .expect_err("2 channels")
        .to_string();
    assert!(e.contains("C = 1, 3 or 4"), "{e}");
    let e = w
        .add_image_file("i", dir.path("missing.png"), 0)
        .expect_err("missing")
        .to_string();
    assert!(e.contains("missing.png"), "{e}");
    Ok(())
}

#[test]
fn the_trainer_logs_each_epoch() -> lam::Result<()> {
    let dev = cpu();
    let dir = Scratch::new("tb-trainer");
    lam::manual_seed(3);
    let model = Mlp::new(2, 8, 3, &dev)?;
    let mut opt = lam::optim::Adam::new(model.parameters(), 0.05)?;
    let train = DataLoader::new(blobs(20, 1), 16, &dev)?;
    let val = DataLoader::new(blobs(10, 2), 16, &dev)?;
    let logger = TensorBoardLogger::new(SummaryWriter::new(&dir.0)?).model(&model);
    let fit = Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
        .config(TrainConfig {
            epochs: 3,
            quiet: true,
            ..TrainConfig::default()
        })
        .callback(logger)
        .fit(&train, Some(&val))?;
    let file = std::fs::read_dir(&dir.0)
        .expect("the log dir")
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .expect("an event file")
        .path();
    let events = read_events(file)?;
    let series = |tag: &str| -> Vec<(i64, f32)> {
        events
            .iter()
            .flat_map(|e| e.values.iter().map(move |v| (e.step, v)))
            .filter_map(|(s, v)| match v.data {
                ValueData::Scalar(x) if v.tag == tag => Some((s, x)),
                _ => None,
            })
            .collect()
    };
    let want: Vec<(i64, f32)> = fit
        .history
        .records
        .iter()
        .map(|r| (r.epoch as i64, r.train_loss as f32))
        .collect();
    assert_eq!(series("loss/train"), want);
    assert_eq!(series("accuracy/validation").len(), 3);
    assert_eq!(series("learning_rate")[0].1, 0.05);
    let histograms = events
        .iter()
        .flat_map(|e| &e.values)
        .filter(|v| matches!(v.data, ValueData::Histogram(_)))
        .count();
    // Weights and gradients of 4 parameters, 3 epochs.
    assert_eq!(histograms, 24);
    Ok(())
}
