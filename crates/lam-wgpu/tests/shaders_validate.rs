//! Portability check without a GPU: every `shaders/*.wgsl` must parse and
//! validate with naga and translate to SPIR-V (Vulkan), MSL (Metal), HLSL
//! (DX12) and GLSL ES 3.10 (GL) for each entry point. A shader that naga
//! translates to all four very likely compiles on every wgpu backend. The test
//! also checks that `kernels.rs` references every shader file, so no shader
//! can rot unused.

use std::path::{Path, PathBuf};

use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::ShaderStage;

fn shader_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders")
}

fn shader_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ directory is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    files
}

/// Translates one entry point of a validated module to every target,
/// returning "target: error" strings for the ones that fail.
fn translate(module: &naga::Module, info: &naga::valid::ModuleInfo, entry: &str) -> Vec<String> {
    let mut failures = Vec::new();
    // Overrides take their WGSL defaults here; wgpu substitutes the real
    // values per pipeline the same way before handing the module to a backend.
    let constants = naga::back::PipelineConstants::default();
    let ep = Some((ShaderStage::Compute, entry));
    let (module, info) = match process_overrides(module, info, ep, &constants) {
        Ok(pair) => pair,
        Err(e) => return vec![format!("overrides: {e}")],
    };

    let spv_pipeline = naga::back::spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    if let Err(e) = naga::back::spv::write_vec(
        &module,
        &info,
        &naga::back::spv::Options::default(),
        Some(&spv_pipeline),
    ) {
        failures.push(format!("SPIR-V: {e}"));
    }

    let msl_pipeline = naga::back::msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    if let Err(e) = naga::back::msl::write_string(
        &module,
        &info,
        &naga::back::msl::Options::default(),
        &msl_pipeline,
    ) {
        failures.push(format!("MSL: {e}"));
    }

    let hlsl_options = naga::back::hlsl::Options::default();
    let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
    };
    let mut hlsl = String::new();
    let mut writer = naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &hlsl_pipeline);
    if let Err(e) = writer.write(&module, &info, None) {
        failures.push(format!("HLSL: {e}"));
    }

    let glsl_options = naga::back::glsl::Options::default(); // GLSL ES 3.10
    let glsl_pipeline = naga::back::glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
        multiview: None,
    };
    let mut glsl = String::new();
    match naga::back::glsl::Writer::new(
        &mut glsl,
        &module,
        &info,
        &glsl_options,
        &glsl_pipeline,
        naga::proc::BoundsCheckPolicies::default(),
    ) {
        Ok(mut w) => {
            if let Err(e) = w.write() {
                failures.push(format!("GLSL ES 310: {e}"));
            }
        }
        Err(e) => failures.push(format!("GLSL ES 310: {e}")),
    }
    failures
}

#[test]
fn every_shader_validates_and_translates_to_all_targets() {
    let files = shader_files();
    assert!(
        !files.is_empty(),
        "no .wgsl files in {}",
        shader_dir().display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = std::fs::read_to_string(path).expect("shader is readable");
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: parse: {}", e.emit_to_string(&source)));
                continue;
            }
        };
        // Default capabilities are what WebGPU guarantees everywhere: no f16,
        // no subgroups, no f64.
        let mut validator = Validator::new(ValidationFlags::all(), Capabilities::default());
        let info = match validator.validate(&module) {
            Ok(info) => info,
            Err(e) => {
                failures.push(format!("{name}: validate: {}", e.emit_to_string(&source)));
                continue;
            }
        };
        let entries: Vec<String> = module
            .entry_points
            .iter()
            .filter(|ep| ep.stage == ShaderStage::Compute)
            .map(|ep| ep.name.clone())
            .collect();
        if entries.is_empty() {
            failures.push(format!("{name}: no compute entry point"));
        }
        for entry in entries {
            for f in translate(&module, &info, &entry) {
                failures.push(format!("{name}::{entry}: {f}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "shader failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_shader_file_is_referenced_by_kernels_rs() {
    let kernels = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels.rs");
    let text = std::fs::read_to_string(&kernels).expect("kernels.rs is readable");
    let missing: Vec<String> = shader_files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|name| !text.contains(&format!("include_str!(\"../../../shaders/{name}\")")))
        .collect();
    assert!(
        missing.is_empty(),
        "shaders not referenced by kernels.rs: {missing:?}"
    );
}
