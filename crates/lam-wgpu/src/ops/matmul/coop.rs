//! The cooperative-matrix kernel (matmul_coop.wgsl): whether a device can
//! run it, and its check on first use.
//!
//! It needs, all at once: [`MatmulPrecision::High`] (its inputs are rounded
//! to f16); a device opened with `EXPERIMENTAL_COOPERATIVE_MATRIX`,
//! `SHADER_F16` and `SUBGROUP`; an adapter that reports a 16 x 16 x 16
//! configuration with f16 A and B and an f32 accumulator (the only one the
//! kernel uses); and 32-lane subgroups (it splits a workgroup of 128 threads
//! into four subgroups). Since no test machine runs it (software adapters
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

/// Runs a small product (sizes off the tiles, so the edges run too) on the
/// kernel and on `Tile64`; `Ok(false)` with the reason on stderr when they
/// differ by more than f16 rounding of the inputs explains.
pub(crate) fn self_check(gpu: &Arc<Gpu>) -> Result<bool> {
    let (m, k, n) = (70, 40, 36);
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
    let got = run(MatmulKernel::Coop)?;
    // Each input is off by at most 2^-11 relative; with |values| <= 1 a sum
    // of k products is off by at most about k * 2^-10.
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
    let worst = want
        .iter()
        .zip(&got)
        .map(error)
        .enumerate()
        .fold((0, 0f32), |acc, x| if x.1 > acc.1 { x } else { acc });
    if got.len() != want.len() || worst.1 > tol {
        eprintln!(
            "lam-wgpu: cooperative-matrix matmul disabled on {}: a {m}x{k}x{n} check differs from the f32 kernel by {} at element {} (tolerance {tol})",
            gpu.info.name, worst.1, worst.0
        );
        return Ok(false);
    }
    Ok(true)
}
