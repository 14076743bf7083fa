//! Plots are written, valid (PNG signature and decodable / SVG root
//! element) and non-trivial (a PNG of more than one colour, an SVG with
//! drawn shapes and text).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::Scratch;
use lam::prelude::*;
use lam_train::metrics::{roc_curve, ConfusionMatrix};
use lam_train::plot::{plot_confusion_matrix, plot_history, plot_lines, plot_roc};
use lam_train::trainer::{EpochRecord, History};

fn check_png(path: &Path) {
    let bytes = std::fs::read(path).expect("png written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("decodable PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("one frame");
    assert!(info.width >= 300 && info.height >= 300);
    let px = info.color_type.samples();
    let colours: BTreeSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    assert!(
        colours.len() > 20,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
}

fn check_svg(path: &Path) {
    let text = std::fs::read_to_string(path).expect("svg written");
    let root = text.trim_start().trim_start_matches(|c| c != '<');
    assert!(
        root.starts_with("<svg") || root.starts_with("<?xml"),
        "{}",
        &text[..40.min(text.len())]
    );
    assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"));
    let shapes = text.matches("<path").count()
        + text.matches("<polyline").count()
        + text.matches("<rect").count();
    assert!(shapes >= 3, "{}: {shapes} shapes", path.display());
    assert!(text.contains("<text"), "axis labels are drawn");
}

fn history() -> History {
    History {
        records: (1..=6)
            .map(|e| EpochRecord {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_accuracy: Some(1.0 - 0.5 / e as f64),
                train_regression: None,
                val_loss: Some(1.2 / e as f64),
                val_accuracy: Some(0.9 - 0.4 / e as f64),
                val_regression: None,
                lr: 1e-3,
                seconds: 0.1,
                samples_per_sec: 100.0,
            })
            .collect(),
    }
}

#[test]
fn history_curves_as_png_and_svg() -> Result<()> {
    let dir = Scratch::new("plots");
    let written = plot_history(&history(), &dir.0)?;
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into())
        .collect();
    assert_eq!(
        names,
        ["loss.png", "loss.svg", "accuracy.png", "accuracy.svg"]
    );
    for p in &written {
        if p.extension().is_some_and(|e| e == "png") {
            check_png(p);
        } else {
            check_svg(p);
        }
    }
    Ok(())
}

#[test]
fn roc_and_confusion_matrix_plots() -> Result<()> {
    let dir = Scratch::new("plots2");
    let truth = [true, false, true, true, false, false, true, false];
    let scores = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1];
    let roc = roc_curve(&truth, &scores)?;
    let cm = ConfusionMatrix::new(&[0, 1, 2, 2, 1, 0, 2], &[0, 1, 2, 1, 1, 0, 0])?;
    for ext in ["png", "svg"] {
        let r = dir.path(&format!("roc.{ext}"));
        plot_roc(&r, &[("model", &roc)])?;
        let c = dir.path(&format!("nested/cm.{ext}"));
        plot_confusion_matrix(&c, &cm)?;
        if ext == "png" {
            check_png(&r);
            check_png(&c);
        } else {
            check_svg(&r);
            check_svg(&c);
        }
    }
    Ok(())
}

#[test]
fn bad_plot_requests_are_errors() {
    let dir = Scratch::new("plots3");
    let series = [("a", vec![(0.0, 1.0), (1.0, 2.0)])];
    assert!(plot_lines(&dir.path("x.jpg"), "t", "x", "y", &series).is_err());
    assert!(plot_lines(&dir.path("x.png"), "t", "x", "y", &[("a", vec![])]).is_err());
    assert!(plot_roc(&dir.path("r.png"), &[]).is_err());
    // A single point still plots (the flat range is widened).
    plot_lines(
        &dir.path("one.svg"),
        "t",
        "x",
        "y",
        &[("a", vec![(1.0, 1.0)])],
    )
    .expect("one point");
}
