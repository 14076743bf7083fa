//! `lam-wgpu`: lam's WebGPU backend. Every op is a WGSL compute shader
//! (`shaders/*.wgsl`), run through wgpu on Vulkan, Metal, DX12 or GL, so lam
//! trains on any laptop GPU.
//!
//! - [`gpu_device`] / [`default_gpu`]: pick an adapter and open it as a lam
//!   [`lam_core::Device`]; [`list_adapters`] shows what wgpu sees.
//! - [`WgpuBackend`]: the [`lam_core::Backend`] implementation.
//!
//! Inside: `device.rs` (adapter choice), `context.rs` (per-device state),
//! `pool.rs` (size-class buffer pool), `staging.rs` (the reused buffers
//! that carry uploads, readbacks and kernel parameters), `queue.rs` (the
//! lazy command encoder: one submit per readback), `pipeline.rs` (pipeline cache), `kernels.rs`
//! (the only file naming shaders), `wgsl.rs` (the `// #include` lines that
//! share snippets of `shaders/lib/` between shaders), `params.rs` (uniform
//! blocks) and `ops/` (one module per op family, named as its shaders),
//! `timing.rs` (GPU time per kernel from timestamp queries, for
//! `lam_core::profile`).
//!
//! Execution is lazy: ops record dispatches and return immediately; the
//! GPU is waited on only when data is read back or `synchronize` is called.
//! Index ops check their indices on the device and report an out-of-range
//! one at the next readback or `synchronize` (`fault.rs`).

mod backend;
mod context;
mod device;
mod fault;
mod kernels;
mod ops;
mod params;
mod pipeline;
mod pool;
mod queue;
mod staging;
mod storage;
mod timing;
mod wgsl;

pub use backend::WgpuBackend;
pub use device::{
    default_gpu, gpu_device, gpu_devices_for_tests, list_adapters, AdapterInfo, GpuOptions,
};
#[doc(hidden)]
pub use kernels::{shader_sources, ShaderSource};
pub use ops::attention::AttentionKernel;
pub use ops::matmul::{
    autotune_matmul, matmul_kernel_for, matmul_kernels, matmul_widens_halves_by_hardware,
    MatmulKernel, MatmulOptions, MatmulPrecision,
};
pub use pipeline::ShaderChecks;
pub use storage::{simulate_device_loss, GpuStorage};
pub use wgpu;
