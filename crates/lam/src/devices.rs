//! Device selection: the constructors `lam-core` cannot have because they
//! name concrete backends.
//!
//! `LAM_DEVICE=cpu|gpu|auto` overrides what [`DeviceExt::auto`] picks (any
//! other value is an error, not a silent `auto`), and
//! `LAM_ADAPTER=<name substring>` chooses among GPU adapters. A software
//! renderer (lavapipe, llvmpipe, WARP) is used only when asked for, and is
//! then named as one.

use std::sync::Once;

use lam_core::{Device, Error, Result};

/// What a GPU adapter is: name, graphics API and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// The graphics API: "Vulkan", "Metal", "Dx12" or "Gl".
    pub backend: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" or "Other".
    pub device_type: String,
}

/// Constructors for [`Device`] (bring into scope with `use lam::prelude::*`).
pub trait DeviceExt: Sized {
    /// The CPU (one shared device per process).
    fn cpu() -> Device;
    /// The best GPU adapter, or an error listing what was tried.
    fn gpu() -> Result<Device>;
    /// The GPU if one works, else the CPU; says once on stderr which it chose.
    /// `LAM_DEVICE=cpu|gpu` forces a choice; another value of `LAM_DEVICE`
    /// is an error.
    fn auto() -> Result<Device>;
    /// Every GPU adapter wgpu can see.
    fn list() -> Vec<AdapterInfo>;
    /// The device `LAM_DEVICE` asks for (`auto` when unset); unlike
    /// [`DeviceExt::auto`], a requested GPU that cannot start is an error.
    fn from_env() -> Result<Device>;
}

impl DeviceExt for Device {
    fn cpu() -> Device {
        lam_cpu::device()
    }

    fn gpu() -> Result<Device> {
        #[cfg(feature = "wgpu")]
        {
            lam_wgpu::default_gpu()
        }
        #[cfg(not(feature = "wgpu"))]
        {
            Err(Error::Device(
                "lam was built without the `wgpu` feature".into(),
            ))
        }
    }

    fn auto() -> Result<Device> {
        static ANNOUNCE: Once = Once::new();
        let wanted = requested()?;
        // A software rasteriser (lavapipe, llvmpipe, WARP) runs shaders on the
        // CPU far slower than lam's own CPU backend, so `auto` only takes one
        // when asked to explicitly (LAM_DEVICE=gpu or LAM_ADAPTER=...).
        let explicit = wanted == "gpu" || std::env::var_os("LAM_ADAPTER").is_some();
        let (device, note) = match wanted {
            "cpu" => (Device::cpu(), "LAM_DEVICE=cpu".to_string()),
            _ => match Device::gpu() {
                Ok(d) if !is_software(&d) => (d, "GPU adapter found".to_string()),
                Ok(d) if explicit => (d, software_note()),
                Ok(d) => (
                    Device::cpu(),
                    format!("the only GPU adapter, {d}, is a software renderer; LAM_DEVICE=gpu uses it anyway"),
                ),
                Err(e) => (Device::cpu(), format!("no usable GPU ({e}); falling back to the CPU")),
            },
        };
        ANNOUNCE.call_once(|| eprintln!("lam: using device {device} ({note})"));
        Ok(device)
    }

    fn list() -> Vec<AdapterInfo> {
        #[cfg(feature = "wgpu")]
        {
            lam_wgpu::list_adapters()
                .into_iter()
                .map(|a| AdapterInfo {
                    name: a.name,
                    backend: format!("{:?}", a.backend),
                    device_type: format!("{:?}", a.device_type),
                })
                .collect()
        }
        #[cfg(not(feature = "wgpu"))]
        {
            Vec::new()
        }
    }

    fn from_env() -> Result<Device> {
        match requested()? {
            "cpu" => Ok(Device::cpu()),
            "gpu" => {
                let device = Device::gpu()?;
                if is_software(&device) {
                    static ANNOUNCE: Once = Once::new();
                    let note = software_note();
                    ANNOUNCE.call_once(|| eprintln!("lam: using device {device} ({note})"));
                }
                Ok(device)
            }
            _ => Device::auto(),
        }
    }
}

/// `LAM_DEVICE` as one of `cpu`, `gpu`, `auto` (unset or empty is `auto`),
/// or an error naming the value found.
fn requested() -> Result<&'static str> {
    parse_device(&std::env::var("LAM_DEVICE").unwrap_or_default())
}

fn parse_device(value: &str) -> Result<&'static str> {
    match value.trim().to_ascii_lowercase().as_str() {
        "cpu" => Ok("cpu"),
        "gpu" => Ok("gpu"),
        "" | "auto" => Ok("auto"),
        _ => Err(Error::invalid(
            "LAM_DEVICE",
            format!("expected cpu, gpu or auto (or unset), found {value:?}"),
        )),
    }
}

/// What is said when a software renderer was asked for and is used.
fn software_note() -> String {
    "as asked; it is a software renderer, which runs shaders on the CPU, slower than \
     lam's own CPU backend (LAM_DEVICE=cpu)"
        .to_string()
}

/// True when `device` runs on an adapter of type "Cpu" (a software renderer).
fn is_software(device: &Device) -> bool {
    let name = device.name();
    Device::list()
        .iter()
        .any(|a| a.device_type == "Cpu" && name.contains(&a.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lam_device_is_cpu_gpu_or_auto() {
        assert_eq!(parse_device("cpu").ok(), Some("cpu"));
        assert_eq!(parse_device(" GPU ").ok(), Some("gpu"));
        assert_eq!(parse_device("").ok(), Some("auto"));
        assert_eq!(parse_device("auto").ok(), Some("auto"));
        let err = parse_device("cuda").expect_err("not a device");
        assert_eq!(
            err.to_string(),
            "LAM_DEVICE: invalid argument: expected cpu, gpu or auto (or unset), found \"cuda\""
        );
    }
}
