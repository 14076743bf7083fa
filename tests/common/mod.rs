//! Shared harness of the workspace tests: the devices to run on, and the
//! `conformance!` macro that instantiates one test body for the CPU and for
//! each GPU adapter (Vulkan and GL).
//!
//! GPU tests never pass by not running: with `LAM_REQUIRE_GPU=1` (set by
//! `.ci/run`) a missing adapter fails the test; without it the test prints
//! that it skipped.

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
        eprintln!(
            "skipped: no {api} adapter (found {names:?}); set LAM_REQUIRE_GPU=1 to make this fail"
        );
    }
    found
}

/// Every device to test: the CPU plus each GPU adapter found.
pub fn all_devices() -> Vec<Device> {
    use lam::DeviceExt;
    let mut out = vec![Device::cpu()];
    out.extend(gpu("vulkan"));
    out.extend(gpu("gl"));
    out
}

/// Elementwise closeness with an error message naming the first mismatch.
pub fn close(actual: &[f32], expected: &[f32], tol: f32) {
    if let Err(e) = lam::testing::assert_close(actual, expected, tol, tol) {
        panic!("{e}\nactual:   {actual:?}\nexpected: {expected:?}");
    }
}

/// One test body run on the CPU, the Vulkan adapter and the GL adapter:
/// `conformance!(name, |dev| { ...; Ok(()) });`
#[macro_export]
macro_rules! conformance {
    ($name:ident, |$dev:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($dev: &lam::Device) -> lam::Result<()> $body

            #[test]
            fn cpu() {
                use lam::DeviceExt;
                if let Err(e) = body(&lam::Device::cpu()) {
                    panic!("{e}");
                }
            }

            #[test]
            fn vulkan() {
                if let Some(d) = $crate::common::gpu("vulkan") {
                    if let Err(e) = body(&d) {
                        panic!("{e}");
                    }
                }
            }

            #[test]
            fn gl() {
                if let Some(d) = $crate::common::gpu("gl") {
                    if let Err(e) = body(&d) {
                        panic!("{e}");
                    }
                }
            }
        }
    };
}
