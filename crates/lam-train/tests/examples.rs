//! Smoke tests of the digits examples: each example file is compiled in as
//! a module and its `run` called with a tiny configuration, so the examples
//! cannot silently rot.

mod common;

#[allow(dead_code)]
#[path = "../../../examples/digits.rs"]
mod digits;

#[allow(dead_code)]
#[path = "../../../examples/digits_cnn.rs"]
mod digits_cnn;

use common::{cpu, Scratch};

#[test]
fn digits_example_runs() -> lam::Result<()> {
    let dir = Scratch::new("ex-digits");
    let opts = digits::Options {
        epochs: 2,
        out_dir: dir.0.clone(),
        quiet: true,
    };
    let out = digits::run(&opts, &cpu())?;
    assert!(out.accuracy > 0.8, "accuracy {}", out.accuracy);
    assert!(out.macro_f1 > 0.8, "macro F1 {}", out.macro_f1);
    for name in [
        "loss.png",
        "accuracy.svg",
        "confusion_matrix.png",
        "roc.svg",
        "history.csv",
        "scaler.json",
    ] {
        assert!(dir.path(name).exists(), "{name} missing");
    }
    assert!(dir.path("checkpoints/last.safetensors").exists());
    assert!(out.files.len() >= 8);
    Ok(())
}

#[test]
fn digits_cnn_example_runs() -> lam::Result<()> {
    let dir = Scratch::new("ex-cnn");
    let opts = digits_cnn::Options {
        epochs: 2,
        out_dir: dir.0.clone(),
        quiet: true,
    };
    let out = digits_cnn::run(&opts, &cpu())?;
    assert!(out.accuracy > 0.5, "accuracy {}", out.accuracy);
    assert!(out.macro_f1 > 0.4, "macro F1 {}", out.macro_f1);
    assert!(dir.path("confusion_matrix.svg").exists());
    assert!(dir.path("checkpoints/best.safetensors").exists());
    Ok(())
}
