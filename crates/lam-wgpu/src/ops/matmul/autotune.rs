//! Autotuning: time every kernel that can run a product and keep the
//! fastest per shape class, once per adapter.
//!
//! A shape class groups products that should favour the same kernel: M, N,
//! K and the batch rounded up to powers of two, the operands' load modes
//! (which dim is contiguous, vec4 or scalar), whether `Tile128` (or only
//! `Tile128x64`) can run it, and whether both operands are `F16` (which the cooperative kernels
//! take at any precision). A class is timed on its first product (outside any later, timed
//! step), or ahead of time by [`autotune_matmul`]; the choice goes to the
//! in-memory table and the adapter's cache file (`cache.rs`), so the next
//! process does not time it again.
//!
//! Timing is wall-clock around submit-and-wait, after one untimed run that
//! builds the pipeline: a first run sizes the repetitions (about 5 ms of
//! work, at most 20), then the mean of those counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lam_core::backend::LinearActivation;
use lam_core::{DType, Device, Error, Layout, Result};

use super::choice::{self, MatmulKernel, MatmulOptions};
use super::{fits_large, fits_narrow, launch, prepare, variant, Job};
use crate::context::Gpu;
use crate::ops::copy;
use crate::params::MatmulParams;
use crate::storage::GpuStorage;

/// Time each class's candidates for contiguous `[batch, m, k] x [batch, k, n]`
/// products, one per `[batch, m, k, n]` in `shapes`, on `device`; keep the
/// fastest for products of the same class, in memory and in the adapter's
/// cache file. Returns each shape's class and kernel. A warm-up before
/// timed training steps: products then never pause to tune. With
/// `LAM_AUTOTUNE=0` nothing is timed and the answer is the size rule's.
pub fn autotune_matmul(
    device: &Device,
    shapes: &[[usize; 4]],
) -> Result<Vec<(String, MatmulKernel)>> {
    let gpu = gpu_of(device)?;
    let mut out = Vec::with_capacity(shapes.len());
    for &[batch, m, k, n] in shapes {
        let p = contiguous_params(batch, m, k, n)?;
        let class = shape_class(&p, false);
        if env_disabled() {
            let kernel = choice::matmul_kernel_for(device, DType::F32, [batch, m, k, n])?;
            out.push((class, kernel));
            continue;
        }
        let too_large = || Error::TooLarge {
            op: "autotune_matmul",
            bytes: u64::MAX,
            limit: gpu.limits.max_binding,
        };
        let len = |r: usize, c: usize| batch.checked_mul(r)?.checked_mul(c);
        let a = copy::zeros(&gpu, len(m, k).ok_or_else(too_large)?, DType::F32)?;
        let b = copy::zeros(&gpu, len(k, n).ok_or_else(too_large)?, DType::F32)?;
        let (la, lb) = (
            Layout::contiguous(&[batch, m, k]),
            Layout::contiguous(&[batch, k, n]),
        );
        let job = prepare(
            &gpu,
            (&a, &la),
            (&b, &lb),
            None,
            LinearActivation::Identity,
            DType::F32,
        )?;
        let best = if job.empty {
            MatmulKernel::Tile64
        } else {
            measure(&gpu, &job)?
        };
        choice::remember(&gpu.matmul, &class, best);
        out.push((class, best));
    }
    Ok(out)
}

/// True when `LAM_AUTOTUNE=0` turns autotuning off.
pub(crate) fn env_disabled() -> bool {
    disabled_by(std::env::var("LAM_AUTOTUNE").ok().as_deref())
}

/// True when `LAM_AUTOTUNE` set to `value` turns autotuning off.
fn disabled_by(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim() == "0")
}

/// Whether products on a device opened with `options` from an adapter
/// with `info` are autotuned (see [`MatmulOptions::autotune`]).
pub(crate) fn enabled(options: &MatmulOptions, info: &wgpu::AdapterInfo) -> bool {
    enabled_with(options, info, env_disabled())
}

/// [`enabled`], with `LAM_AUTOTUNE=0` given as `off`.
fn enabled_with(options: &MatmulOptions, info: &wgpu::AdapterInfo, off: bool) -> bool {
    options
        .autotune
        .unwrap_or(!off && info.device_type != wgpu::DeviceType::Cpu)
}

/// The shape class of a product (module docs), of two `F16` operands when
/// `halves`, as the cache file keys it.
pub(crate) fn shape_class(p: &MatmulParams, halves: bool) -> String {
    let log2 = |x: u32| x.max(1).next_power_of_two().trailing_zeros();
    let v = variant(p);
    format!(
        "m{}-n{}-k{}-b{}-modes{}{}-{}{}",
        log2(p.m),
        log2(p.n),
        log2(p.k),
        log2(p.batch),
        v.a_mode,
        v.b_mode,
        if fits_large(p, &v) {
            "t128"
        } else if fits_narrow(p, &v) {
            "t128x64"
        } else {
            "any"
        },
        if halves { "-f16" } else { "" }
    )
}

/// The kernel of the candidates that runs `job` fastest.
pub(crate) fn measure(gpu: &Arc<Gpu>, job: &Job) -> Result<MatmulKernel> {
    // Time the kernels as they will run (`autotune_matmul` may come first).
    super::halves::decide(gpu, job)?;
    let mut best: Option<(Duration, MatmulKernel)> = None;
    for kernel in gpu.matmul.candidates() {
        if !choice::runnable(gpu, kernel, &job.p, job.exact_f16())? {
            continue;
        }
        let time = match time_kernel(gpu, job, kernel) {
            Ok(t) => t,
            // A lost device fails every candidate; anything else (a driver
            // that cannot build this pipeline) only rules this one out.
            Err(e) if gpu.check_fault().is_err() => return Err(e),
            Err(e) => {
                eprintln!(
                    "lam-wgpu: autotune: matmul kernel {} failed on {}: {e}",
                    kernel.name(),
                    gpu.info.name
                );
                continue;
            }
        };
        if best.is_none_or(|(t, _)| time < t) {
            best = Some((time, kernel));
        }
    }
    Ok(best.map_or(MatmulKernel::Tile64, |(_, k)| k))
}

/// Mean time of one run of `job` on `kernel`.
fn time_kernel(gpu: &Arc<Gpu>, job: &Job, kernel: MatmulKernel) -> Result<Duration> {
    // Builds the pipeline and settles earlier work.
    launch(gpu, job, kernel)?;
    gpu.synchronize()?;
    let start = Instant::now();
    launch(gpu, job, kernel)?;
    gpu.synchronize()?;
    let once = start.elapsed();
    let reps = (Duration::from_millis(5).as_secs_f64() / once.as_secs_f64().max(1e-6))
        .clamp(1.0, 20.0) as u32;
    let start = Instant::now();
    for _ in 0..reps {
        launch(gpu, job, kernel)?;
    }
    gpu.synchronize()?;
    Ok(start.elapsed() / reps)
}

/// The device behind a lam [`Device`], or an error if it is not a GPU.
pub(crate) fn gpu_of(device: &Device) -> Result<Arc<Gpu>> {
    let probe = device.backend().zeros(1, DType::F32)?;
    let s = probe
        .as_any()
        .downcast_ref::<GpuStorage>()
        .ok_or_else(|| Error::Device(format!("{device} is not a lam-wgpu device")))?;
    Ok(Arc::clone(s.gpu()))
}

/// The parameters of a contiguous `[batch, m, k] x [batch, k, n]` product.
pub(crate) fn contiguous_params(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
) -> Result<MatmulParams> {
    let u = |x: usize| crate::params::to_u32("matmul", x);
    let many = batch > 1;
    Ok(MatmulParams {
        m: u(m)?,
        n: u(n)?,
        k: u(k)?,
        batch: u(batch)?,
        a_sb: if many { u(m.saturating_mul(k))? } else { 0 },
        a_sm: if m > 1 { u(k)? } else { 0 },
        a_sk: u(usize::from(k > 1))?,
        b_sb: if many { u(k.saturating_mul(n))? } else { 0 },
        b_sk: if k > 1 { u(n)? } else { 0 },
        b_sn: u(usize::from(n > 1))?,
        ..MatmulParams::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autotuning_is_on_for_gpus_unless_turned_off() {
        let gpu = wgpu::AdapterInfo::new(wgpu::DeviceType::DiscreteGpu, wgpu::Backend::Vulkan);
        let cpu = wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, wgpu::Backend::Vulkan);
        let default = MatmulOptions::default();
        assert!(enabled_with(&default, &gpu, false));
        assert!(!enabled_with(&default, &gpu, true), "LAM_AUTOTUNE=0");
        assert!(
            !enabled_with(&default, &cpu, false),
            "CPU adapters keep the size rule"
        );
        let on = MatmulOptions {
            autotune: Some(true),
            ..MatmulOptions::default()
        };
        assert!(enabled_with(&on, &cpu, true), "an explicit option wins");
        assert!(disabled_by(Some(" 0 ")) && !disabled_by(Some("1")) && !disabled_by(None));
    }

    #[test]
    fn shape_classes_round_sizes_and_keep_layouts_apart() {
        let p = |b, m, k, n| contiguous_params(b, m, k, n).unwrap();
        let shape_class_of = |p: &MatmulParams| shape_class(p, false);
        assert_eq!(
            shape_class_of(&p(1, 4096, 4096, 4096)),
            "m12-n12-k12-b0-modes22-t128"
        );
        // Same powers of two, same class; not a multiple of 128: another.
        assert_eq!(
            shape_class_of(&p(1, 3000, 3000, 3000)),
            "m12-n12-k12-b0-modes22-any"
        );
        assert_eq!(
            shape_class_of(&p(1, 3000, 3000, 3000)),
            shape_class_of(&p(1, 2049, 4092, 2100))
        );
        assert_eq!(shape_class_of(&p(3, 17, 1, 5)), "m5-n3-k0-b2-modes00-any");
        // Columns a multiple of 64, not 128: Tile128x64's class.
        assert_eq!(
            shape_class_of(&p(1, 4096, 512, 192)),
            "m12-n8-k9-b0-modes22-t128x64"
        );
        let mut t = p(1, 256, 256, 256);
        (t.a_sm, t.a_sk) = (1, 256);
        assert_eq!(shape_class_of(&t), "m8-n8-k8-b0-modes32-t128");
        // Products of halves are classes of their own.
        assert_eq!(shape_class(&t, true), "m8-n8-k8-b0-modes32-t128-f16");
    }
}
