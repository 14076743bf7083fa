//! Finding adapters and opening devices.
//!
//! [`gpu_device`] ranks every adapter wgpu finds (discrete > integrated >
//! virtual > CPU, native APIs before GL), tries them in that order, and
//! either opens the first that works or returns an [`Error::Device`] that
//! lists every adapter and why it was passed over. Devices are opened with
//! the adapter's own limits: wgpu's defaults would cap a storage binding at
//! 128 MiB even on a GPU with 80 GiB.
//!
//! [`default_gpu`] is the per-process device (honouring `LAM_ADAPTER`), so
//! tensors made by separate calls interoperate; [`gpu_devices_for_tests`]
//! opens one device per distinct adapter for the conformance suite.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use lam_core::{Device, Error, Result};

use crate::backend::WgpuBackend;
use crate::context::{block_on, lock, Gpu, GpuLimits};
use crate::timing;

/// An adapter wgpu can see: what [`list_adapters`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The adapter's name, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// The API wgpu drives it through.
    pub backend: wgpu::Backend,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: wgpu::DeviceType,
    /// Driver name and version, where the API reports them.
    pub driver: String,
}

/// How [`gpu_device`] chooses and opens an adapter.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Only adapters whose name contains this (case-insensitive).
    pub adapter: Option<String>,
    /// Only the adapter at this position (0 = best) among those whose name
    /// matches: one device per GPU of a machine with several identical ones.
    pub index: Option<usize>,
    /// Only these wgpu backends (default: all).
    pub backends: Option<wgpu::Backends>,
    /// Pretend storage bindings are at most this many bytes (to test limits).
    pub max_storage_binding: Option<u64>,
    /// Open the device with at most this many storage buffers per shader
    /// stage (to test devices that allow fewer than lam's fused kernels
    /// bind: those ops are then composed from smaller kernels).
    pub max_storage_buffers: Option<u32>,
    /// Keep at most this many bytes of upload staging buffers instead of
    /// 64 MiB (to test that budget).
    pub max_upload_staging: Option<u64>,
    /// Keep at most this many bytes of free tensor buffers instead of a
    /// quarter of the adapter's largest buffer within 64 MiB and 1 GiB
    /// (`$LAM_POOL_BYTES` for the default device): for measuring on one
    /// adapter what the pool keeps on another.
    pub max_pool: Option<u64>,
    /// Matmul precision, a forced kernel, autotuning and its cache.
    pub matmul: crate::MatmulOptions,
    /// Which calls the fused attention kernels take, and which family
    /// (per-row or tiled).
    pub attention: crate::AttentionKernel,
    /// The runtime checks wgpu compiles into the kernels.
    pub shader_checks: crate::ShaderChecks,
}

/// Every adapter wgpu finds on every backend, best first.
pub fn list_adapters() -> Vec<AdapterInfo> {
    survey(wgpu::Backends::all())
        .iter()
        .map(|(info, _)| info_of(info))
        .collect()
}

/// Opens the best adapter allowed by `opts` as a lam [`Device`].
pub fn gpu_device(opts: &GpuOptions) -> Result<Device> {
    let backends = opts.backends.unwrap_or(wgpu::Backends::all());
    let mut rejected = Vec::new();
    let mut matching = 0;
    for (info, nth) in survey(backends) {
        let named = opts
            .adapter
            .as_ref()
            .is_none_or(|want| info.name.to_lowercase().contains(&want.to_lowercase()));
        let position = matching;
        matching += usize::from(named);
        let reason = match (&opts.adapter, opts.index) {
            (Some(want), _) if !named => format!("name does not contain {want:?}"),
            (_, Some(i)) if i != position => format!("not adapter {i} of those that match"),
            _ => match open(&info, nth, opts) {
                Ok(device) => return Ok(device),
                Err(e) => e.to_string(),
            },
        };
        rejected.push(format!(
            "{} ({:?}, {:?}): {reason}",
            info.name, info.backend, info.device_type
        ));
    }
    if rejected.is_empty() {
        return Err(Error::Device(format!(
            "no GPU adapter found on backends {backends:?} (is a Vulkan, Metal, DX12 or GL driver installed?)"
        )));
    }
    Err(Error::Device(format!(
        "no usable GPU adapter; tried:\n  {}",
        rejected.join("\n  ")
    )))
}

/// The process-wide GPU device, opened on first use from the best adapter
/// (or the one whose name contains `$LAM_ADAPTER`), with the matmul
/// settings of `LAM_MATMUL_PRECISION` and `LAM_MATMUL_KERNEL`
/// ([`crate::MatmulOptions::from_env`]), the attention kernels of
/// `LAM_ATTENTION` and the shader checks of `LAM_SHADER_CHECKS`. Every call returns the
/// same [`Device`], so tensors from separate calls work together. A failure
/// is remembered too: the adapters will not change within a process.
pub fn default_gpu() -> Result<Device> {
    static DEFAULT: OnceLock<Result<Device>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let opts = GpuOptions {
                adapter: std::env::var("LAM_ADAPTER").ok().filter(|s| !s.is_empty()),
                matmul: crate::MatmulOptions::from_env(),
                attention: crate::AttentionKernel::from_env(),
                shader_checks: crate::ShaderChecks::from_env(),
                max_pool: std::env::var("LAM_POOL_BYTES")
                    .ok()
                    .and_then(|v| v.parse().ok()),
                ..GpuOptions::default()
            };
            gpu_device(&opts)
        })
        .clone()
}

/// One device per distinct adapter (name and backend), opened once per
/// process, for running the conformance suite on every driver present.
/// Adapters that fail to open are reported on stderr and left out. The
/// matmul settings come from `LAM_MATMUL_KERNEL` and `LAM_MATMUL_PRECISION`
/// ([`crate::MatmulOptions::from_env`]), so the suite can run on each
/// matmul kernel in turn (adapters that lack the kernel are left out),
/// `LAM_ATTENTION=tiled` on the tiled attention kernels, and
/// `LAM_SHADER_CHECKS=no-loop-counters` on kernels without loop counters.
pub fn gpu_devices_for_tests() -> Vec<Device> {
    static DEVICES: OnceLock<Vec<Device>> = OnceLock::new();
    DEVICES
        .get_or_init(|| {
            // The fused attention kernels take every call they can, so the
            // conformance suite's small shapes exercise them: the per-row
            // ones, or the tiled ones with `LAM_ATTENTION=tiled`.
            let attention = match crate::AttentionKernel::from_env() {
                crate::AttentionKernel::Tiled => crate::AttentionKernel::Tiled,
                _ => crate::AttentionKernel::Fused,
            };
            let opts = GpuOptions {
                matmul: crate::MatmulOptions::from_env(),
                attention,
                shader_checks: crate::ShaderChecks::from_env(),
                ..GpuOptions::default()
            };
            let mut seen = Vec::new();
            let mut devices = Vec::new();
            for (info, nth) in survey(wgpu::Backends::all()) {
                let key = (info.name.clone(), info.backend);
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                match open(&info, nth, &opts) {
                    Ok(d) => devices.push(d),
                    Err(e) => eprintln!(
                        "lam-wgpu: skipping adapter {} ({:?}): {e}",
                        info.name, info.backend
                    ),
                }
            }
            devices
        })
        .clone()
}

/// A wgpu instance for `backends`, without validation layers unless asked
/// for through the `WGPU_*` environment variables.
fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    desc.flags = wgpu::InstanceFlags::empty().with_env();
    wgpu::Instance::new(desc)
}

/// Every adapter on `backends`, best first, each with its ordinal among
/// adapters of identical info (two identical GPUs).
///
/// Surveys go through one shared instance under a lock, and devices are
/// opened from instances of their own ([`open`]): wgpu's GL backend gives
/// every adapter of an instance the same EGL context, each adapter with its
/// own lock, so adapters or devices of one instance used (or dropped) on two
/// threads at once make that context current twice and wgpu panics.
fn survey(backends: wgpu::Backends) -> Vec<(wgpu::AdapterInfo, usize)> {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    static SURVEY: Mutex<()> = Mutex::new(());
    let _one_at_a_time = lock(&SURVEY);
    // `WGPU_BACKEND=vulkan` (say) narrows every survey, e.g. to test one API.
    let instance = INSTANCE.get_or_init(|| new_instance(wgpu::Backends::all().with_env()));
    let adapters = block_on(instance.enumerate_adapters(backends));
    let mut infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    drop(adapters); // still under the lock
                    // A stable sort keeps identical adapters in enumeration order.
    infos.sort_by_key(rank);
    let mut out: Vec<(wgpu::AdapterInfo, usize)> = Vec::with_capacity(infos.len());
    for info in infos {
        let nth = out.iter().filter(|(i, _)| *i == info).count();
        out.push((info, nth));
    }
    out
}
pub(crate) fn info_of(info: &wgpu::AdapterInfo) -> AdapterInfo {
    AdapterInfo {
        name: info.name.clone(),
        backend: info.backend,
        device_type: info.device_type,
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

/// Sort key: lower is better.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (kind, api)
}

/// Whether the adapter runs compute shaders at all, and has the limits
/// lam's kernels need ([`check_limits`]).
fn check_capable(adapter: &wgpu::Adapter) -> Result<()> {
    let flags = adapter.get_downlevel_capabilities().flags;
    if !flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
        return Err(Error::Device("no compute shader support".into()));
    }
    // The matmul kernels may widen halves with unpack2x16float (every
    // backend with compute shaders has it; WebGL 2 lacks it).
    if !flags.contains(wgpu::DownlevelFlags::SHADER_F16_IN_F32) {
        return Err(Error::Device(
            "no f16 packing in shaders (wgpu's SHADER_F16_IN_F32)".into(),
        ));
    }
    check_limits(&adapter.limits())
}

/// What lam's kernels need: 256-thread workgroups, 8 KiB of workgroup
/// memory (matmul tiles) and 4 storage buffers in one stage (select, Adam).
/// Fused kernels that bind more are declined on devices that allow fewer
/// (`Gpu::binds`), and lam-core composes those ops.
fn check_limits(l: &wgpu::Limits) -> Result<()> {
    let needs = [
        (
            "max_storage_buffers_per_shader_stage",
            l.max_storage_buffers_per_shader_stage,
            4,
        ),
        (
            "max_compute_invocations_per_workgroup",
            l.max_compute_invocations_per_workgroup,
            256,
        ),
        (
            "max_compute_workgroup_size_x",
            l.max_compute_workgroup_size_x,
            256,
        ),
        (
            "max_compute_workgroup_storage_size",
            l.max_compute_workgroup_storage_size,
            8192,
        ),
        (
            "max_compute_workgroups_per_dimension",
            l.max_compute_workgroups_per_dimension,
            65535,
        ),
    ];
    for (name, have, need) in needs {
        if have < need {
            return Err(Error::Device(format!("{name} is {have}, lam needs {need}")));
        }
    }
    Ok(())
}

/// Opens the `nth` adapter described by `info`, from an instance of its own
/// (see [`survey`]), with the adapter's own limits, as a lam device.
fn open(info: &wgpu::AdapterInfo, nth: usize, opts: &GpuOptions) -> Result<Device> {
    let backends = wgpu::Backends::from(info.backend);
    let instance = new_instance(backends);
    let adapter = block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .filter(|a| a.get_info() == *info)
        .nth(nth)
        .ok_or_else(|| Error::Device("the adapter disappeared while opening it".into()))?;
    check_capable(&adapter)?;
    let mut limits = adapter.limits();
    if let Some(most) = opts.max_storage_buffers {
        let l = &mut limits.max_storage_buffers_per_shader_stage;
        *l = (*l).min(most);
    }
    check_limits(&limits)?;
    // Timestamp queries cost nothing until the profiler uses them.
    let timestamps = adapter.features().contains(timing::FEATURES);
    // Faster matmul kernels, where the adapter offers their features.
    let matmul_features = crate::ops::matmul::features(&opts.matmul) & adapter.features();
    let coop_configs = if matmul_features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    {
        adapter.cooperative_matrix_properties()
    } else {
        Vec::new()
    };
    let desc = wgpu::DeviceDescriptor {
        label: Some("lam"),
        // SHADER_F16 wherever offered: what `native_f16` (the gate of
        // mixed precision's autocast) reports.
        required_features: matmul_features
            | (adapter.features() & wgpu::Features::SHADER_F16)
            | if timestamps {
                timing::FEATURES
            } else {
                wgpu::Features::empty()
            },
        required_limits: limits.clone(),
        experimental_features: if matmul_features
            .intersects(wgpu::Features::all_experimental_mask())
        {
            // SAFETY: wgpu asks callers of experimental features to accept
            // that their implementation may still have bugs. lam asks for
            // one (cooperative matrices), uses it in one kernel, and checks
            // that kernel's results against the f32 kernel before using it
            // (ops/matmul/coop.rs).
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        },
        ..Default::default()
    };
    // wgpu documents panics for impossible requests; ours never are, but a
    // driver bug must still not take the process down.
    let opened = catch_unwind(AssertUnwindSafe(|| block_on(adapter.request_device(&desc))))
        .map_err(|_| Error::Device("wgpu panicked while opening the device".into()))?;
    let (device, queue) =
        opened.map_err(|e| Error::Device(format!("opening the device failed: {e}")))?;
    let downlevel = adapter.get_downlevel_capabilities().flags;
    drop(adapter);
    let max_binding = limits.max_storage_buffer_binding_size;
    let gpu_limits = GpuLimits {
        max_binding: opts
            .max_storage_binding
            .map_or(max_binding, |m| m.min(max_binding)),
        max_buffer: limits.max_buffer_size,
        uniform_align: u64::from(limits.min_uniform_buffer_offset_alignment),
        upload_staging: opts
            .max_upload_staging
            .unwrap_or(crate::staging::WRITE_STAGING_BYTES),
        storage_buffers: limits.max_storage_buffers_per_shader_stage,
        pool: opts
            .max_pool
            .unwrap_or(crate::pool::BufferPool::cap_for(limits.max_buffer_size)),
    };
    let matmul = crate::ops::matmul::MatmulState::new(
        opts.matmul.clone(),
        info,
        device.features(),
        downlevel,
        &limits,
        &coop_configs,
    )?;
    let gpu = Gpu::new(
        instance,
        device,
        queue,
        info.clone(),
        gpu_limits,
        timestamps,
        matmul,
    )
    .with_attention(opts.attention)
    .with_shader_checks(opts.shader_checks);
    // Some drivers advertise compute but cannot compile it: NVIDIA's EGL
    // gives wgpu's GL backend a context whose GLSL version lacks compute
    // shaders and storage buffers. Building one small pipeline now turns
    // that into an error at open, so the adapter is passed over, instead of
    // every op failing later.
    gpu.pipelines
        .get(&gpu.device, crate::kernels::FILL, &[])
        .map_err(|e| Error::Device(format!("the adapter cannot build compute pipelines: {e}")))?;
    let timed = lock(&gpu.state).timer.is_some();
    lam_core::profile::note_device(&gpu.describe(), timing_note(timed));
    Ok(Device::new(Arc::new(WgpuBackend::new(Arc::new(gpu)))))
}

/// How the profiler's table measures this device.
fn timing_note(timestamps: bool) -> &'static str {
    if timestamps {
        "GPU time per kernel from timestamp queries; host time per op is encoding, \
         plus the wait for the GPU in read_*/synchronize"
    } else {
        "no timestamp queries on this adapter: host time only (encoding, \
         plus the wait for the GPU in read_*/synchronize)"
    }
}
