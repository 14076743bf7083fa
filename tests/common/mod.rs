//! Shared harness of the workspace tests: the devices to run on, and the
//! `conformance!` macro that instantiates one test body for the CPU and for
//! each GPU adapter (Vulkan and GL), and again for the unfused twin of each
//! (the same backend declining every optional fused op, so the composite
//! fallbacks are proven on every backend too).
//!
//! GPU tests never pass by not running: with `LAM_REQUIRE_GPU=1` (set by
//! `.ci/run`) a missing adapter fails the test; without it the test says on
//! the terminal that it skipped — written past the test harness's output
//! capture, so the notice shows beside the test's `ok` in a plain
//! `cargo test`.

#![allow(dead_code)]

pub mod fixture;

use std::sync::OnceLock;

use lam::Device;

/// The GPU device whose backend name starts with `api` ("vulkan" or "gl"),
/// or `None` (after printing a skip notice) when there is none and GPUs are
/// not required.
pub fn gpu(api: &str) -> Option<Device> {
    static DEVICES: OnceLock<Vec<Device>> = OnceLock::new();
    let devices = DEVICES.get_or_init(lam_wgpu::gpu_devices_for_tests);
    let found = devices
        .iter()
        .find(|d| d.name().to_lowercase().starts_with(api))
        .cloned();
    if found.is_none() {
        let names: Vec<String> = devices.iter().map(|d| d.name()).collect();
        if std::env::var("LAM_REQUIRE_GPU").as_deref() == Ok("1") {
            panic!("LAM_REQUIRE_GPU=1 but no {api} adapter was found (adapters: {names:?})");
        }
        skip_notice(&format!(
            "SKIPPED (no {api} adapter; found {names:?}; LAM_REQUIRE_GPU=1 makes this fail)"
        ));
    }
    found
}

/// Says that the current test did not run, where a person sees it: the
/// harness captures `eprintln!`, but not a direct write to the stderr handle.
pub fn skip_notice(why: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "\n{test}: {why}");
}

/// The unfused twin of `device` (see [`lam::testing::Unfused`]), one per
/// device per test binary, so tensors made by one test body share it.
pub fn unfused(device: &Device) -> Device {
    use std::sync::Mutex;
    static TWINS: OnceLock<Mutex<Vec<(Device, Device)>>> = OnceLock::new();
    let mut twins = TWINS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((_, twin)) = twins.iter().find(|(d, _)| d == device) {
        return twin.clone();
    }
    let twin = lam::testing::Unfused::device(device);
    twins.push((device.clone(), twin.clone()));
    twin
}

/// A fresh device on the adapter of `shared`.
pub fn private_device(shared: &Device) -> Device {
    let info = lam_wgpu::list_adapters()
        .into_iter()
        .find(|a| shared.name().ends_with(&a.name) && shared.name().starts_with(a.backend.to_str()))
        .expect("the shared device's adapter is listed");
    lam_wgpu::gpu_device(&lam_wgpu::GpuOptions {
        adapter: Some(info.name.clone()),
        backends: Some(info.backend.into()),
        ..lam_wgpu::GpuOptions::default()
    })
    .expect("a private device on the same adapter")
}

/// The GPU adapter `api` ("vulkan", "gl") opened with the tiled attention
/// kernels for every call (`AttentionKernel::Tiled`), one device per
/// adapter per test binary; `None` where [`gpu`] has none. The attention
/// tests and the differential suite's sequence family run on it too.
pub fn tiled_attention(api: &str) -> Option<Device> {
    use std::sync::Mutex;
    static DEVICES: OnceLock<Mutex<Vec<(String, Device)>>> = OnceLock::new();
    let shared = gpu(api)?;
    let mut devices = DEVICES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = devices.iter().find(|(a, _)| a == api) {
        return Some(d.clone());
    }
    let info = lam_wgpu::list_adapters()
        .into_iter()
        .find(|a| shared.name().ends_with(&a.name) && shared.name().starts_with(a.backend.to_str()))
        .expect("the shared device's adapter is listed");
    let device = lam_wgpu::gpu_device(&lam_wgpu::GpuOptions {
        adapter: Some(info.name.clone()),
        backends: Some(info.backend.into()),
        attention: lam_wgpu::AttentionKernel::Tiled,
        ..lam_wgpu::GpuOptions::default()
    })
    .expect("a device with the tiled attention kernels");
    devices.push((api.to_string(), device.clone()));
    Some(device)
}

/// The fused attention methods a [`composed_attention`] twin declines.
pub const FUSED_ATTENTION: &[&str] = &["fused_attention", "fused_attention_grad"];

/// The twin of `device` on which lam-core composes attention around the
/// backend's `fused_attention_weights` and `fused_attention_weights_grad`
/// (as a GPU does under `AttentionKernel::Auto` for scores of 1–64 MiB):
/// it declines [`FUSED_ATTENTION`] only. One per device per test binary.
pub fn composed_attention(device: &Device) -> Device {
    use std::sync::Mutex;
    static TWINS: OnceLock<Mutex<Vec<(Device, Device)>>> = OnceLock::new();
    let mut twins = TWINS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((_, twin)) = twins.iter().find(|(d, _)| d == device) {
        return twin.clone();
    }
    let twin = lam::testing::Declining::device(device, FUSED_ATTENTION);
    twins.push((device.clone(), twin.clone()));
    twin
}

/// True for a device whose backend runs the fused attention: neither an
/// unfused twin nor a [`composed_attention`] one.
pub fn fuses_attention(device: &Device) -> bool {
    !is_unfused(device) && !device.name().contains("(without fused_attention")
}

/// True for the unfused twin of a device (see [`unfused`]).
pub fn is_unfused(device: &Device) -> bool {
    device.name().ends_with("(unfused)")
}

/// Every device to test: the CPU plus each GPU adapter found, each followed
/// by its unfused twin.
pub fn all_devices() -> Vec<Device> {
    use lam::DeviceExt;
    let mut out = vec![Device::cpu()];
    out.extend(gpu("vulkan"));
    out.extend(gpu("gl"));
    out.into_iter().flat_map(|d| [unfused(&d), d]).collect()
}

/// The rounds a fuzz suite runs: `LAM_FUZZ_ROUNDS` when set (a deeper
/// search, run by hand: `LAM_FUZZ_ROUNDS=200 cargo test --release --test
/// view_fuzz`), else the suite's own `default`, sized for CI.
pub fn fuzz_rounds(default: u64) -> u64 {
    std::env::var("LAM_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Added to every fuzz seed: `LAM_FUZZ_SEED` when set, else 0 (the seeds CI
/// runs), so that a deeper search can cover new cases. A failure names its
/// seed; the same `LAM_FUZZ_SEED` and `LAM_FUZZ_ROUNDS` reproduce it.
pub fn fuzz_seed_base() -> u64 {
    std::env::var("LAM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Elementwise closeness with an error message naming the first mismatch.
pub fn close(actual: &[f32], expected: &[f32], tol: f32) {
    if let Err(e) = lam::testing::assert_close(actual, expected, tol, tol) {
        panic!("{e}\nactual:   {actual:?}\nexpected: {expected:?}");
    }
}

/// One test body run on the CPU, the Vulkan adapter and the GL adapter, and
/// on the unfused twin of each:
/// `conformance!(name, |dev| { ...; Ok(()) });`
#[macro_export]
macro_rules! conformance {
    ($name:ident, |$dev:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($dev: &lam::Device) -> lam::Result<()> $body

            fn run(device: Option<lam::Device>, unfused: bool) {
                let Some(device) = device else { return };
                let device = if unfused {
                    $crate::common::unfused(&device)
                } else {
                    device
                };
                if let Err(e) = body(&device) {
                    panic!("on {}: {e}", device.name());
                }
            }

            #[test]
            fn cpu() {
                use lam::DeviceExt;
                run(Some(lam::Device::cpu()), false);
            }

            #[test]
            fn cpu_unfused() {
                use lam::DeviceExt;
                run(Some(lam::Device::cpu()), true);
            }

            #[test]
            fn vulkan() {
                run($crate::common::gpu("vulkan"), false);
            }

            #[test]
            fn vulkan_unfused() {
                run($crate::common::gpu("vulkan"), true);
            }

            #[test]
            fn gl() {
                run($crate::common::gpu("gl"), false);
            }

            #[test]
            fn gl_unfused() {
                run($crate::common::gpu("gl"), true);
            }
        }
    };
}

/// True when `dev` may multiply `F16` operands on cooperative matrices
/// (tensor cores; lavapipe from Mesa 26 has them too), whose f32 sums come
/// in an order of their own: a sum then rounded to f16 can land on the
/// neighbouring half of what the f32 kernels' order gives (see
/// [`assert_same_halves`]).
pub fn f16_products_reassociate(dev: &Device) -> bool {
    use lam_wgpu::MatmulKernel;
    dev.is_gpu()
        && lam_wgpu::matmul_kernels(dev).is_ok_and(|kernels| {
            kernels
                .iter()
                .any(|k| matches!(k, MatmulKernel::Coop | MatmulKernel::Coop128))
        })
}

/// Asserts that f32 values `got` and `want` have the same bits, except
/// where `reassociate` (see [`f16_products_reassociate`]): then two halves
/// (values f16 holds exactly: sums rounded to f16) may be neighbours, one
/// unit in the last place of f16 apart on the same side of zero, and other
/// values (f32 sums of halves) may differ by 1e-5 of the largest `want`,
/// a sum's error in another order; a NaN may be a NaN of the other sign.
pub fn assert_same_halves(got: &[f32], want: &[f32], reassociate: bool, what: &str) {
    use lam::f16;
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let half = |x: f32| {
        let h = f16::from_f32(x);
        (h.to_f32().to_bits() == x.to_bits()).then_some(h.to_bits())
    };
    let finite = want.iter().filter(|w| w.is_finite());
    let scale = finite.fold(0f32, |m, w| m.max(w.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.to_bits() == w.to_bits() {
            continue;
        }
        let close = match (half(g), half(w)) {
            _ if g.is_nan() => w.is_nan(), // of either sign
            (Some(a), Some(b)) => (a ^ b) & 0x8000 == 0 && a.abs_diff(b) == 1,
            _ => (g - w).abs() <= 1e-5 * scale,
        };
        assert!(
            reassociate && close,
            "{what}: element {i} is {g:e} ({:#010x}) where {w:e} ({:#010x}) was expected",
            g.to_bits(),
            w.to_bits()
        );
    }
}
