//! The pipeline cache: one shader module per WGSL file (its includes
//! expanded, see `kernels.rs`), one bind-group layout per binding signature,
//! and one compute pipeline per kernel variant (entry point +
//! pipeline-constant values), each built on first use.
//!
//! Layouts are explicit rather than derived from the shader, so an entry
//! point may leave a declared binding unused in some variants, and so every
//! kernel's bindings are stated in one place (`kernels.rs`). Creation runs in
//! a validation error scope: a shader the driver rejects is an
//! [`Error::Device`] naming the file and entry point, not a panic.

use std::collections::HashMap;
use std::sync::Mutex;

use lam_core::{Error, Result};

use crate::context::{block_on, lock};
use crate::kernels::{Access, Kernel, Shader};

/// A kernel with its pipeline-constant values (f64 bits, for hashing).
type VariantKey = (Kernel, Vec<(&'static str, u64)>);

/// A bind-group layout and the pipeline layout made of it.
type Layouts = (wgpu::BindGroupLayout, wgpu::PipelineLayout);

/// A built pipeline and the layout its bind groups use.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// The runtime checks wgpu compiles into lam's kernels
/// ([`crate::GpuOptions::shader_checks`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShaderChecks {
    /// wgpu's defaults: every index kept within its buffer or array, every
    /// loop bounded by a counter the translator adds (naga's
    /// `force_loop_bounding`), every integer division guarded.
    #[default]
    Full,
    /// The same without the loop counters. Every loop in lam's kernels ends
    /// by construction — a constant or checked size as its bound, a
    /// positive constant as its step, indices far below `u32::MAX` (buffers
    /// are at most a few GiB) — which is what the counters stand in for. On
    /// some drivers they cost much (wgpu issue 7698: a kernel 100 times
    /// slower) by splitting unrolled loops with branches. For measuring that
    /// (`bench/gpu_session.sh`); `Full` stays the default until measured.
    NoLoopCounters,
    /// Neither loop counters nor wgpu's own index clamps (a `min` on every
    /// dynamic index of a workgroup or private array, as in the matmul
    /// kernels' inner loops) nor its guards on integer division. lam's
    /// kernels compute every index within its array from sizes checked on
    /// the host, and divide by nothing that can be 0 (an empty size stops
    /// the dispatch), so the results are the same bits — but a kernel bug
    /// would then read or write out of bounds instead of reading a clamped
    /// element. Storage buffers keep the driver's own robust access where
    /// the API has it (Vulkan's `robustBufferAccess`). For measuring, as
    /// `NoLoopCounters`.
    Unchecked,
}

impl ShaderChecks {
    /// `LAM_SHADER_CHECKS` (`full`, `no-loop-counters`, `unchecked`);
    /// anything else is reported on stderr and means `full`.
    pub fn from_env() -> ShaderChecks {
        match std::env::var("LAM_SHADER_CHECKS").map(|v| v.trim().to_lowercase()) {
            Ok(v) if v == "no-loop-counters" => ShaderChecks::NoLoopCounters,
            Ok(v) if v == "unchecked" => ShaderChecks::Unchecked,
            Ok(v) if v.is_empty() || v == "full" => ShaderChecks::Full,
            Ok(v) => {
                eprintln!(
                    "lam: LAM_SHADER_CHECKS={v:?} is unknown \
                     (known: full, no-loop-counters, unchecked); using full"
                );
                ShaderChecks::Full
            }
            Err(_) => ShaderChecks::Full,
        }
    }

    fn runtime_checks(self) -> wgpu::ShaderRuntimeChecks {
        let mut checks = wgpu::ShaderRuntimeChecks::checked();
        match self {
            ShaderChecks::Full => {}
            ShaderChecks::NoLoopCounters => checks.force_loop_bounding = false,
            ShaderChecks::Unchecked => {
                checks.force_loop_bounding = false;
                checks.bounds_checks = false;
                checks.int_div_checks = false;
            }
        }
        checks
    }
}

/// Lazily built modules, layouts and pipelines of one device.
#[derive(Debug, Default)]
pub(crate) struct PipelineCache {
    /// The checks modules are compiled with.
    pub(crate) checks: ShaderChecks,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    layouts: Mutex<HashMap<&'static [(u32, Access)], Layouts>>,
    pipelines: Mutex<HashMap<VariantKey, Pipeline>>,
}

impl PipelineCache {
    /// The pipeline of `kernel` with `constants`, built once per variant.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
    ) -> Result<Pipeline> {
        let key: VariantKey = (
            kernel,
            constants.iter().map(|&(k, v)| (k, v.to_bits())).collect(),
        );
        if let Some(p) = lock(&self.pipelines).get(&key) {
            return Ok(p.clone());
        }
        // Built outside the map's lock: two threads may race to build the
        // same variant, which is harmless (the second insert wins).
        let module = self.module(device, kernel.shader)?;
        let (layout, pipeline_layout) = self.layout(device, kernel.bindings);
        // A driver that fails to compile the translated shader (GL's GLSL
        // compiler, say) reports an internal error, not a validation one.
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let label = format!("{}::{}", kernel.shader.file(), kernel.entry);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Every kernel writes workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let errors = [block_on(scope.pop()), block_on(internal.pop())];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(Error::Device(format!(
                "building pipeline {label} with {constants:?} failed: {e}"
            )));
        }
        let built = Pipeline { pipeline, layout };
        lock(&self.pipelines).insert(key, built.clone());
        Ok(built)
    }

    fn module(&self, device: &wgpu::Device, shader: Shader) -> Result<wgpu::ShaderModule> {
        if let Some(m) = lock(&self.modules).get(&shader) {
            return Ok(m.clone());
        }
        let source = shader.source().map_err(|why| {
            Error::Device(format!(
                "expanding the includes of {} failed: {why}",
                shader.file()
            ))
        })?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader.file()),
            source: wgpu::ShaderSource::Wgsl(source.text.as_str().into()),
        };
        // SAFETY: the checks are wgpu's own unless a device was opened with
        // fewer (`ShaderChecks`, whose documentation states what lam's
        // kernels guarantee in their place: loops that end, indices within
        // their arrays, no division by 0).
        let module =
            unsafe { device.create_shader_module_trusted(desc, self.checks.runtime_checks()) };
        if let Some(e) = block_on(scope.pop()) {
            return Err(Error::Device(format!(
                "compiling {} failed: {e}",
                shader.file()
            )));
        }
        lock(&self.modules).insert(shader, module.clone());
        Ok(module)
    }

    fn layout(&self, device: &wgpu::Device, bindings: &'static [(u32, Access)]) -> Layouts {
        let mut layouts = lock(&self.layouts);
        let entry = layouts.entry(bindings).or_insert_with(|| {
            let uniform = wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            };
            let entries: Vec<wgpu::BindGroupLayoutEntry> = std::iter::once(uniform)
                .chain(
                    bindings
                        .iter()
                        .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                            binding,
                            visibility: wgpu::ShaderStages::COMPUTE,
                            ty: wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Storage {
                                    read_only: access == Access::Read,
                                },
                                has_dynamic_offset: false,
                                min_binding_size: None,
                            },
                            count: None,
                        }),
                )
                .collect();
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            (bgl, pl)
        });
        (entry.0.clone(), entry.1.clone())
    }
}
