//! The cooperative-matrix kernels (matmul_coop.wgsl, `Coop` and `Coop128`):
//! whether a device can run them, and their check on first use.
//!
//! It needs, all at once: [`MatmulPrecision::High`] (its inputs are rounded
//! to f16); a device opened with `EXPERIMENTAL_COOPERATIVE_MATRIX`,
//! `SHADER_F16` and `SUBGROUP`; an adapter that reports a 16 x 16 x 16
//! configuration with f16 A and B and an f32 accumulator (the only one the
//! kernel uses); 32-lane subgroups (it gives each subgroup 32 rows of a tile
//! and half its columns); and, for `Coop128`, 24 KiB of workgroup memory. Since no test machine runs it (software adapters
//! lack the feature), the first product that would use it on a device first
//! runs a small edge-checked product on it and on `Tile64`: a mismatch
//! beyond f16 rounding disables it for that device, with the reason on
//! stderr, and every product keeps to the f32 kernels.

use std::sync::Arc;

use lam_core::backend::LinearActivation;
use lam_core::{DType, Layout, Result};

use super::choice::{MatmulKernel, MatmulOptions, MatmulPrecision};
use super::product;
use crate::context::Gpu;
use crate::ops::copy;

/// The device features the kernel needs.
pub(crate) const FEATURES: wgpu::Features = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

/// Whether a device with these options, adapter `info`, opened `features`
/// and cooperative-matrix configurations `configs` can run the kernel, or
/// why not.
pub(crate) fn support(
    options: &MatmulOptions,
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    configs: &[wgpu::CooperativeMatrixProperties],
) -> std::result::Result<(), String> {
    if options.precision != MatmulPrecision::High {
        return Err("it rounds inputs to f16, which needs MatmulPrecision::High".into());
    }
    if !features.contains(FEATURES) {
        return Err(format!(
            "the device lacks {:?}",
            FEATURES.difference(features)
        ));
    }
    if (info.subgroup_min_size, info.subgroup_max_size) != (32, 32) {
        return Err(format!(
            "it needs 32-lane subgroups; the adapter's are {} to {} lanes",
            info.subgroup_min_size, info.subgroup_max_size
        ));
    }
    let wanted = |c: &&wgpu::CooperativeMatrixProperties| {
        (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
            && c.ab_type == wgpu::CooperativeScalarType::F16
            && c.cr_type == wgpu::CooperativeScalarType::F32
    };
    if !configs.iter().any(|c| wanted(&c)) {
        return Err(format!(
            "the adapter reports no 16x16x16 f16 x f16 + f32 configuration (it reports {configs:?})"
        ));
    }
    Ok(())
}

/// Whether the kernel's workgroup memory (f16 A and B slabs of 32 deep,
/// a 16 x 16 f32 scratch tile per 32 threads) fits the device's `limit`:
/// 12 KiB for 64 x 64 tiles, 24 KiB for `wide` 128 x 128 ones.
pub(crate) fn fits(wide: bool, limit: u32) -> std::result::Result<(), String> {
    let (tile, threads) = if wide { (128, 256) } else { (64, 128) };
    let bytes = 2 * tile * 32 * 2 + threads / 32 * 256 * 4;
    if bytes > limit {
        return Err(format!(
            "its {tile} x {tile} tiles need {bytes} bytes of workgroup memory; the device allows {limit}"
        ));
    }
    Ok(())
}

/// Runs a small product (sizes off the tiles, so the edges run too) on
/// `kernel` (`Coop` or `Coop128`) and on `Tile64`; `Ok(false)` with the
/// reason on stderr when they differ by more than f16 rounding of the
/// inputs explains.
pub(crate) fn self_check(gpu: &Arc<Gpu>, kernel: MatmulKernel) -> Result<bool> {
    let (m, k, n) = (140, 40, 136);
    let values = |len: usize, seed: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 + seed) % 101) as f32 / 50.0 - 1.0)
            .collect()
    };
    let a = copy::upload(gpu, bytemuck::cast_slice(&values(m * k, 1)), DType::F32)?;
    let b = copy::upload(gpu, bytemuck::cast_slice(&values(k * n, 2)), DType::F32)?;
    let (la, lb, lc) = (
        Layout::contiguous(&[m, k]),
        Layout::contiguous(&[k, n]),
        Layout::contiguous(&[m, n]),
    );
    let run = |kernel| -> Result<Vec<f32>> {
        let c = product(
            gpu,
            (&a, &la),
            (&b, &lb),
            None,
            LinearActivation::Identity,
            Some(kernel),
        )?;
        let bytes = copy::read(gpu, (&c, &lc), DType::F32)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    };
    let want = run(MatmulKernel::Tile64)?;
    let got = run(kernel)?;
    match compare(&want, &got, k) {
        Ok(()) => Ok(true),
        Err(why) => {
            eprintln!(
                "lam-wgpu: matmul kernel {} disabled on {}: a {m}x{k}x{n} check {why}",
                kernel.name(),
                gpu.info.name
            );
            Ok(false)
        }
    }
}

/// Whether `got` matches `want`, a product of length-`k` reductions over
/// values in [-1, 1], up to f16 rounding of the inputs: each is off by at
/// most 2^-11 relative, so a sum of k products by about k * 2^-10.
fn compare(want: &[f32], got: &[f32], k: usize) -> std::result::Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("gave {} values for {}", got.len(), want.len()));
    }
    let tol = k as f32 * 2f32.powi(-10);
    // NaN counts as infinitely wrong.
    let error = |(w, g): (&f32, &f32)| {
        let e = (w - g).abs();
        if e.is_nan() {
            f32::INFINITY
        } else {
            e
        }
    };
    let (at, worst) = want
        .iter()
        .zip(got)
        .map(error)
        .enumerate()
        .fold((0, 0f32), |acc, x| if x.1 > acc.1 { x } else { acc });
    if worst > tol {
        return Err(format!(
            "differs from the f32 kernel by {worst} at element {at} (tolerance {tol})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(min: u32, max: u32) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            subgroup_min_size: min,
            subgroup_max_size: max,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::DiscreteGpu, wgpu::Backend::Vulkan)
        }
    }

    fn config(m: u32, ab: wgpu::CooperativeScalarType) -> wgpu::CooperativeMatrixProperties {
        wgpu::CooperativeMatrixProperties {
            m_size: m,
            n_size: m,
            k_size: m,
            ab_type: ab,
            cr_type: wgpu::CooperativeScalarType::F32,
            saturating_accumulation: false,
        }
    }

    #[test]
    fn support_needs_precision_features_subgroups_and_a_configuration() {
        use wgpu::CooperativeScalarType::{F16, F32};
        let high = MatmulOptions {
            precision: MatmulPrecision::High,
            ..MatmulOptions::default()
        };
        let good = [config(8, F32), config(16, F16)];
        assert_eq!(support(&high, &info(32, 32), FEATURES, &good), Ok(()));
        let why = |o: &MatmulOptions, i, f, c: &[_]| support(o, &i, f, c).unwrap_err();
        let highest = MatmulOptions::default();
        assert!(why(&highest, info(32, 32), FEATURES, &good).contains("High"));
        assert!(why(&high, info(32, 32), wgpu::Features::SUBGROUP, &good).contains("lacks"));
        assert!(why(&high, info(32, 64), FEATURES, &good).contains("32 to 64"));
        assert!(why(&high, info(32, 32), FEATURES, &good[..1]).contains("no 16x16x16"));
    }

    #[test]
    fn workgroup_memory_decides_the_wide_tiles() {
        assert_eq!(fits(false, 16384), Ok(()));
        assert!(fits(true, 16384).unwrap_err().contains("24576"));
        assert_eq!(fits(true, 24576), Ok(()));
    }

    #[test]
    fn the_check_tolerates_f16_rounding_only() {
        let want = [1.0, -2.0, 0.5];
        assert_eq!(compare(&want, &[1.01, -2.0, 0.5], 40), Ok(()));
        assert!(compare(&want, &[1.1, -2.0, 0.5], 40)
            .unwrap_err()
            .contains("element 0"));
        assert!(compare(&want, &[1.0, -2.0, f32::NAN], 40)
            .unwrap_err()
            .contains("element 2"));
        assert!(compare(&want, &[1.0, -2.0], 40).is_err());
    }
}
