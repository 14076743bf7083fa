//! The cooperative-matrix kernels (matmul_coop.wgsl, `Coop` and `Coop128`):
//! whether a device can run them, and their check on first use.
//!
//! It needs, all at once: a device opened with `EXPERIMENTAL_COOPERATIVE_MATRIX`,
//! `SHADER_F16` and `SUBGROUP` (and the downlevel `SHADER_F16_IN_F32`); an adapter that reports a 16 x 16 x 16
//! configuration with f16 A and B and an f32 accumulator (the only one the
//! kernel uses); one subgroup size of 4 to 64 lanes (the kernel's `LANES`:
//! it gives each subgroup 32 rows of a tile and half its columns, so a
//! workgroup is 4 or 8 subgroups), with the workgroup within the device's
//! invocations; and, for `Coop128`, 26.5 KiB of workgroup memory (its
//! rows padded against bank conflicts).
//! Its inputs are rounded to f16, so products with an `F32` operand also
//! need [`super::MatmulPrecision::High`] (`choice.rs` checks that per
//! product). Since few test machines run it (of software adapters only
//! Mesa 26's lavapipe has the feature), the first product that would use it
//! on a device first runs small edge-checked products on it and on `Tile64` (F32 operands,
//! and F16 ones with subnormal halves): a mismatch beyond f16 rounding
//! disables it for that device, with the reason on stderr, and every
//! product keeps to the f32 kernels.

use std::sync::Arc;

use lam_core::backend::LinearActivation;
use lam_core::{DType, Layout, Result, Storage};

use super::choice::MatmulKernel;
use super::product;
use crate::context::Gpu;
use crate::ops::copy;

/// The device features the kernel needs.
pub(crate) const FEATURES: wgpu::Features = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

/// The fragment side (16, else 8) with which a device from an adapter
/// with `info` and `downlevel` flags, opened with `features` and
/// cooperative-matrix configurations `configs`, can run the kernel, or why
/// it cannot.
pub(crate) fn support(
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    downlevel: wgpu::DownlevelFlags,
    configs: &[wgpu::CooperativeMatrixProperties],
) -> std::result::Result<u32, String> {
    if !features.contains(FEATURES) {
        return Err(format!(
            "the device lacks {:?}",
            FEATURES.difference(features)
        ));
    }
    // The kernel converts F16 operands' words with unpack2x16float.
    if !downlevel.contains(wgpu::DownlevelFlags::SHADER_F16_IN_F32) {
        return Err("the adapter lacks wgpu's SHADER_F16_IN_F32 (unpack2x16float)".into());
    }
    let (min, max) = (info.subgroup_min_size, info.subgroup_max_size);
    if min != max || !min.is_power_of_two() || !(4..=64).contains(&min) {
        return Err(format!(
            "it needs one subgroup size, a power of two from 4 to 64 lanes; the adapter's are \
             {min} to {max} lanes"
        ));
    }
    let offered = |side: u32| {
        configs.iter().any(|c| {
            (c.m_size, c.n_size, c.k_size) == (side, side, side)
                && c.ab_type == wgpu::CooperativeScalarType::F16
                && c.cr_type == wgpu::CooperativeScalarType::F32
        })
    };
    match [16, 8].into_iter().find(|&side| offered(side)) {
        Some(side) => Ok(side),
        None => Err(format!(
            "the adapter reports no 16x16x16 or 8x8x8 f16 x f16 + f32 configuration (it \
             reports {configs:?})"
        )),
    }
}

/// The tile side of the kernel on fragments of side `frag`: 4 of them,
/// or 8 when `wide`.
pub(crate) fn tile(frag: u32, wide: bool) -> u32 {
    frag * if wide { 8 } else { 4 }
}

/// The subgroups of a workgroup: four for 64 x 64 tiles, eight for `wide`
/// 128 x 128 ones.
pub(crate) fn subgroups(wide: bool) -> u32 {
    if wide {
        8
    } else {
        4
    }
}

/// Whether the kernel on fragments of side `frag` (its subgroups of
/// `lanes` threads) fits the device's `limits`: its invocations, and its
/// workgroup memory (f16 A and B slabs of 2 `frag` deep, their rows padded
/// by 8 halves, and an f32 fragment of scratch per subgroup): for 16 x 16
/// fragments, 13.5 KiB for 64 x 64 tiles and 26.5 KiB for `wide` 128 x
/// 128 ones.
pub(crate) fn fits(
    frag: u32,
    wide: bool,
    lanes: u32,
    limits: &wgpu::Limits,
) -> std::result::Result<(), String> {
    let tile = tile(frag, wide);
    let threads = subgroups(wide) * lanes;
    // Each thread stages QUADS = tile · 2 frag / (4 threads) quads of A and
    // of B per K-slab (lib/matmul_coop_body.wgsl), in 1..=8 registers.
    let quads = tile * 2 * frag / (4 * threads);
    if quads == 0 || quads > 8 || quads * 4 * threads != tile * 2 * frag {
        return Err(format!(
            "{lanes}-lane subgroups do not divide its {tile} x {tile} tiles of {frag} x {frag} \
             fragments into 1 to 8 quads a thread"
        ));
    }
    let most = limits.max_compute_invocations_per_workgroup;
    if threads > most {
        return Err(format!(
            "its {tile} x {tile} tiles need {threads} threads a workgroup; the device allows {most}"
        ));
    }
    let depth = 2 * frag;
    let slabs = (tile * (depth + 8) + depth * (tile + 8)) * 2;
    let bytes = slabs + subgroups(wide) * frag * frag * 4;
    let limit = limits.max_compute_workgroup_storage_size;
    if bytes > limit {
        return Err(format!(
            "its {tile} x {tile} tiles need {bytes} bytes of workgroup memory; the device allows {limit}"
        ));
    }
    Ok(())
}

/// Runs a small product (sizes off the tiles, so the edges run too) on
/// `kernel` (`Coop` or `Coop128`) and on `Tile64`, of F32 operands and
/// then of F16 ones with subnormal halves; `Ok(false)` with the reason on
/// stderr when the first differ by more than f16 rounding of the inputs
/// explains, or the second (exact sums) by a bit.
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
    let run = |kernel, (a, b): (&Storage, &Storage)| -> Result<Vec<f32>> {
        let c = product(
            gpu,
            (a, &la),
            (b, &lb),
            None,
            LinearActivation::Identity,
            Some(kernel),
        )?;
        let bytes = copy::read(gpu, (&c, &lc), DType::F32)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    };
    let want = run(MatmulKernel::Tile64, (&a, &b))?;
    let got = run(kernel, (&a, &b))?;
    let mut verdict = compare(&want, &got, k);
    if verdict.is_ok() {
        // F16 operands, as mixed precision's products bring them: the
        // kernel converts their words with the hardware's conversion, which
        // must keep subnormal halves. A's halves are multiples of 2^-24
        // below 2^-14 (all subnormal), B's integers of at most 16, so every
        // sum is exact in f32 and both kernels must give the same bits.
        let halves = |len: usize, value: &dyn Fn(usize) -> f32| -> Result<Storage> {
            let h: Vec<u16> = (0..len)
                .map(|i| lam_core::f16::from_f32(value(i)).to_bits())
                .collect();
            copy::upload(gpu, bytemuck::cast_slice(&h), DType::F16)
        };
        let tiny = 2f32.powi(-24);
        let a = halves(m * k, &|i| ((i * 37 + 1) % 1023 + 1) as f32 * tiny)?;
        let b = halves(k * n, &|i| ((i * 13 + 2) % 33) as f32 - 16.0)?;
        let want = run(MatmulKernel::Tile64, (&a, &b))?;
        let got = run(kernel, (&a, &b))?;
        if let Some(i) = (0..want.len()).find(|&i| want[i].to_bits() != got[i].to_bits()) {
            verdict = Err(format!(
                "of subnormal F16 operands gave {} at {i} where tile64 gave {}",
                got[i], want[i]
            ));
        }
    }
    match verdict {
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

    const ALL: wgpu::DownlevelFlags = wgpu::DownlevelFlags::all();

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
    fn support_needs_features_subgroups_and_a_configuration() {
        use wgpu::CooperativeScalarType::{F16, F32};
        let good = [config(8, F32), config(16, F16)];
        assert_eq!(support(&info(32, 32), FEATURES, ALL, &good), Ok(16));
        let why = |i, f, c: &[_]| support(&i, f, ALL, c).unwrap_err();
        assert!(why(info(32, 32), wgpu::Features::SUBGROUP, &good).contains("lacks"));
        assert_eq!(
            support(&info(8, 8), FEATURES, ALL, &good),
            Ok(16),
            "lavapipe's 8 lanes"
        );
        assert!(why(info(32, 64), FEATURES, &good).contains("32 to 64"));
        assert!(why(info(128, 128), FEATURES, &good).contains("128 to 128"));
        // lavapipe's fragments: 8 x 8 x 8, f16 x f16 + f32 (and + f16).
        let small = [config(8, F16), config(16, F32)];
        assert_eq!(support(&info(8, 8), FEATURES, ALL, &small), Ok(8));
        assert!(support(
            &info(32, 32),
            FEATURES,
            wgpu::DownlevelFlags::empty(),
            &good
        )
        .unwrap_err()
        .contains("SHADER_F16_IN_F32"));
        assert!(why(info(32, 32), FEATURES, &good[..1]).contains("no 16x16x16"));
    }

    #[test]
    fn workgroup_memory_decides_the_wide_tiles() {
        let limits = |storage, invocations| wgpu::Limits {
            max_compute_workgroup_storage_size: storage,
            max_compute_invocations_per_workgroup: invocations,
            ..wgpu::Limits::default()
        };
        assert_eq!(fits(16, false, 32, &limits(16384, 256)), Ok(()));
        assert!(fits(16, true, 32, &limits(16384, 256))
            .unwrap_err()
            .contains("27136"));
        assert_eq!(fits(16, true, 32, &limits(27136, 256)), Ok(()));
        assert!(fits(16, true, 64, &limits(32768, 256))
            .unwrap_err()
            .contains("512 threads"));
        // 8 x 8 fragments: 64 x 64 wide tiles in 7.25 KiB.
        assert_eq!(fits(8, true, 8, &limits(7424, 256)), Ok(()));
        assert!(fits(8, true, 8, &limits(7423, 256)).is_err());
        // Staging: 16 x 16 fragments on 8 lanes would need 16 quads a
        // thread; 8 x 8 ones on 64 lanes half a quad.
        assert!(fits(16, false, 8, &limits(24576, 256))
            .unwrap_err()
            .contains("quads"));
        assert!(fits(8, false, 64, &limits(24576, 256))
            .unwrap_err()
            .contains("quads"));
        assert_eq!(fits(16, false, 16, &limits(24576, 256)), Ok(()));
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
