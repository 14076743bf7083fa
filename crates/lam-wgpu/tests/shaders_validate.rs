//! Portability check without a GPU: every shader, expanded exactly as the
//! pipelines compile it (its `// #include` snippets of `shaders/lib/`
//! pasted in, see `src/wgsl.rs`), must parse and validate with naga and
//! translate to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.10
//! (GL) for each entry point. A shader that naga translates to all four very
//! likely compiles on every wgpu backend. Snippets are validated in context:
//! every one must be included by some shader. The tests also check that
//! `kernels.rs` names every file of `shaders/` and `shaders/lib/`, so no
//! shader or snippet can rot unused.

use std::path::{Path, PathBuf};

use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::ShaderStage;

fn shader_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders")
}

/// The `.wgsl` files of `shaders/<sub>`, as paths relative to `shaders/`.
fn wgsl_files(sub: &str) -> Vec<String> {
    let dir = shader_dir().join(sub);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|name| {
            if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            }
        })
        .collect();
    files.sort();
    files
}

/// naga's capabilities for wgpu device features a shader needs.
fn capabilities(features: lam_wgpu::wgpu::Features) -> Capabilities {
    use lam_wgpu::wgpu::Features as F;
    // The matmul kernels may convert halves with unpack2x16float, which
    // wgpu allows where the adapter has the downlevel SHADER_F16_IN_F32:
    // lam opens only such adapters (every backend with compute shaders).
    let mut caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    for (feature, cap) in [
        (F::SUBGROUP, Capabilities::SUBGROUP),
        (F::SHADER_F16, Capabilities::SHADER_FLOAT16),
        (
            F::EXPERIMENTAL_COOPERATIVE_MATRIX,
            Capabilities::COOPERATIVE_MATRIX,
        ),
    ] {
        if features.contains(feature) {
            caps |= cap;
        }
    }
    caps
}

/// Translates one entry point of a validated module to every target,
/// returning "target: error" strings for the ones that fail. Shaders that
/// need device features go to SPIR-V only: the features exist on Vulkan
/// (and the Vulkan driver is where lam uses them).
fn translate(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
    baseline: bool,
) -> Vec<String> {
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
    if !baseline {
        return failures;
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

/// One shader of kernels.rs parsed and validated with the capabilities of
/// the device features kernels.rs says it needs; errors say which step
/// failed.
fn validated(
    shader: &lam_wgpu::ShaderSource,
) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let source = shader
        .text
        .as_ref()
        .map_err(|why| format!("include: {why}"))?;
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("parse: {}", e.emit_to_string(source)))?;
    // Default capabilities are what WebGPU guarantees everywhere: no f16,
    // no subgroups, no f64; a shader gets more only for the device
    // features kernels.rs says it needs (and f16 packing, see
    // `capabilities`).
    let mut validator = Validator::new(ValidationFlags::all(), capabilities(shader.features));
    validator
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    let info = validator
        .validate(&module)
        .map_err(|e| format!("validate: {}", e.emit_to_string(source)))?;
    Ok((module, info))
}

/// The names of a module's compute entry points.
fn compute_entries(module: &naga::Module) -> Vec<String> {
    module
        .entry_points
        .iter()
        .filter(|ep| ep.stage == ShaderStage::Compute)
        .map(|ep| ep.name.clone())
        .collect()
}

#[test]
fn every_shader_validates_and_translates_to_all_targets() {
    let (shaders, _) = lam_wgpu::shader_sources();
    assert!(!shaders.is_empty(), "kernels.rs names no shader");
    let mut failures = Vec::new();
    for shader in &shaders {
        let name = shader.file;
        let (module, info) = match validated(shader) {
            Ok(pair) => pair,
            Err(why) => {
                failures.push(format!("{name}: {why}"));
                continue;
            }
        };
        let entries = compute_entries(&module);
        if entries.is_empty() {
            failures.push(format!("{name}: no compute entry point"));
        }
        for entry in entries {
            for f in translate(&module, &info, &entry, shader.features.is_empty()) {
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

/// A device opened with cooperative matrices makes the Vulkan memory model
/// available to every shader (wgpu-hal adds the capability with the
/// feature), but naga declares it only in a module whose types need it: the
/// cooperative-matrix kernels. Every other kernel keeps the GLSL450 memory
/// model on such a device, so opening devices with the feature costs the
/// other kernels nothing. (The SPIR-V here is written with every capability
/// available, as on such a device.)
#[test]
fn only_the_cooperative_matrix_kernels_use_the_vulkan_memory_model() {
    const OP_MEMORY_MODEL: u32 = 14;
    const GLSL450: u32 = 1;
    const VULKAN: u32 = 3;
    let (shaders, _) = lam_wgpu::shader_sources();
    let mut wrong = Vec::new();
    for shader in &shaders {
        let (module, info) = validated(shader).expect("validated by the test above");
        let coop = shader
            .features
            .contains(lam_wgpu::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        for entry in compute_entries(&module) {
            let words = spirv(&module, &info, &entry);
            let model = instructions(&words)
                .find(|ins| ins[0] & 0xffff == OP_MEMORY_MODEL)
                .map(|ins| ins[2]);
            let expected = if coop { VULKAN } else { GLSL450 };
            if model != Some(expected) {
                wrong.push(format!("{}::{entry}: memory model {model:?}", shader.file));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// The SPIR-V of entry point `entry` of a validated module, its overrides
/// at their WGSL defaults, with naga's default options (every capability
/// available).
fn spirv(module: &naga::Module, info: &naga::valid::ModuleInfo, entry: &str) -> Vec<u32> {
    let (module, info) = process_overrides(
        module,
        info,
        Some((ShaderStage::Compute, entry)),
        &naga::back::PipelineConstants::default(),
    )
    .expect("overrides");
    naga::back::spv::write_vec(
        &module,
        &info,
        &naga::back::spv::Options::default(),
        Some(&naga::back::spv::PipelineOptions {
            shader_stage: ShaderStage::Compute,
            entry_point: entry.to_string(),
        }),
    )
    .expect("SPIR-V")
}

/// The instructions of a SPIR-V module after its five-word header, each as
/// its words (the first holds the opcode in its low half and the word count
/// in its high half).
fn instructions(words: &[u32]) -> impl Iterator<Item = &[u32]> {
    let mut at = 5;
    std::iter::from_fn(move || {
        let first = *words.get(at)?;
        let len = ((first >> 16) as usize).max(1);
        let ins = &words[at..(at + len).min(words.len())];
        at += len;
        Some(ins)
    })
}

#[test]
fn every_shader_file_is_named_by_kernels_rs() {
    let (shaders, _) = lam_wgpu::shader_sources();
    let named: Vec<&str> = shaders.iter().map(|s| s.file).collect();
    let missing: Vec<String> = wgsl_files("")
        .into_iter()
        .filter(|f| !named.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "shaders not named by kernels.rs: {missing:?}"
    );
}

#[test]
fn every_snippet_is_in_the_library_and_included_by_a_shader() {
    let (shaders, library) = lam_wgpu::shader_sources();
    let files = wgsl_files("lib");
    assert!(!files.is_empty(), "no snippets in shaders/lib");
    for file in &files {
        assert!(
            library.contains(&file.as_str()),
            "{file} is not in kernels.rs's LIBRARY"
        );
        // Included somewhere, so the test above validated it in context.
        assert!(
            shaders.iter().any(|s| s.includes.contains(&file.as_str())),
            "no shader includes {file}"
        );
    }
    for path in &library {
        assert!(
            files.contains(&path.to_string()),
            "{path} is not in shaders/lib"
        );
    }
}

#[test]
fn the_cooperative_matrix_kernels_need_their_capability_and_emit_khr_matrix_ops() {
    for file in ["matmul_coop.wgsl", "matmul_coop8.wgsl"] {
        coop_kernel_uses_the_feature(file);
    }
}

/// The cooperative-matrix kernel of `file` fails validation without the
/// capability, and its SPIR-V holds the loads, stores and multiply-adds of
/// SPV_KHR_cooperative_matrix.
fn coop_kernel_uses_the_feature(file: &str) {
    let (shaders, _) = lam_wgpu::shader_sources();
    let coop = shaders
        .iter()
        .find(|s| s.file == file)
        .unwrap_or_else(|| panic!("kernels.rs names {file}"));
    let source = coop.text.as_ref().expect("expanded");
    let module = naga::front::wgsl::parse_str(source).expect("parses");
    // Without the cooperative-matrix capability (f16 and subgroups alone)
    // validation must fail: the test above would notice a kernel that did
    // not really use the feature it asks devices for.
    let partial = capabilities(coop.features) - Capabilities::COOPERATIVE_MATRIX;
    assert!(Validator::new(ValidationFlags::all(), partial)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .is_err());
    let info = Validator::new(ValidationFlags::all(), capabilities(coop.features))
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .expect("validates with the capability");
    let words = spirv(&module, &info, "matmul_coop");
    // Count the opcodes of SPV_KHR_cooperative_matrix.
    let opcodes: Vec<u32> = instructions(&words).map(|ins| ins[0] & 0xffff).collect();
    let count = |op: u32| opcodes.iter().filter(|&&o| o == op).count();
    const LOAD: u32 = 4457;
    const STORE: u32 = 4458;
    const MUL_ADD: u32 = 4459;
    // Per K-step of a fragment: two A and two B fragments into 2 x 2 accumulators,
    // and for WIDE tiles (a branch on the constant) two more B fragments
    // into 2 x 2 more.
    assert_eq!((count(LOAD), count(MUL_ADD)), (6, 8), "{file}");
    assert!(count(STORE) >= 1);
}
