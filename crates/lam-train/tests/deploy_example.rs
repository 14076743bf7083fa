//! Smoke test of the deploy example: every variant is made, written and
//! measured, and each stays near the f32 model's accuracy.

mod common;

#[allow(dead_code)]
#[path = "../../../examples/deploy.rs"]
mod deploy;

use common::{cpu, Scratch};

#[test]
fn deploy_example_runs() -> lam::Result<()> {
    let dir = Scratch::new("ex-deploy");
    let opts = deploy::Options {
        epochs: 3,
        fine_tune_epochs: 1,
        out_dir: dir.0.clone(),
        quiet: true,
    };
    let rows = deploy::run(&opts, &cpu())?;
    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    assert_eq!(names, ["f32", "pruned", "int8", "shared 4-bit", "onnx"]);
    let f32_acc = rows[0].accuracy.unwrap_or(0.0);
    assert!(f32_acc > 0.85, "f32 accuracy {f32_acc}");
    let int8_acc = rows[2].accuracy.unwrap_or(0.0);
    assert!(
        (int8_acc - f32_acc).abs() <= 0.02,
        "int8 {int8_acc} vs f32 {f32_acc}"
    );
    assert!(
        rows[2].bytes * 3 < rows[0].bytes,
        "int8 file {} vs {}",
        rows[2].bytes,
        rows[0].bytes
    );
    assert!(rows[1].bytes < rows[0].bytes);
    for file in [
        "model.safetensors",
        "pruned.safetensors",
        "int8.safetensors",
        "model.onnx",
    ] {
        assert!(dir.path(file).exists(), "{file} missing");
    }
    Ok(())
}
