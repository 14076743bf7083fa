//! Batched matmul on awkward shapes (1, 3, 17, 63, 129, tile multiples and
//! near misses, K = 0) with transposed, batch-broadcast and narrowed
//! operands, so every load mode and the edge paths run, against the CPU:
//! on each device's own choice of kernel, then on every kernel forced in
//! turn where the device can run it (split-K on the unbatched products long
//! along K, which it takes, and on the others, which fall back).

use lam_core::backend::LinearActivation;
use lam_core::{Backend, Device, Layout};
use lam_wgpu::{GpuOptions, MatmulKernel, MatmulOptions, MatmulPrecision};

use super::{on_every_gpu, pair};
use crate::common::*;

/// Runs `check(device, cpu, f16)` on a private device per GPU that forces
/// each kernel in `kernels` (with `MatmulPrecision::High` for the
/// cooperative one, whose inputs are f16: `f16` is then true). Kernels a
/// device cannot run are reported and skipped.
pub(crate) fn on_every_kernel(
    test: &str,
    kernels: &[MatmulKernel],
    check: impl Fn(&Device, &dyn Backend, bool),
) {
    on_every_gpu(test, |shared, cpu| {
        for &kernel in kernels {
            let f16 = matches!(kernel, MatmulKernel::Coop | MatmulKernel::Coop128);
            let opts = GpuOptions {
                matmul: MatmulOptions {
                    kernel: Some(kernel),
                    precision: if f16 {
                        MatmulPrecision::High
                    } else {
                        MatmulPrecision::Highest
                    },
                    ..MatmulOptions::default()
                },
                ..GpuOptions::default()
            };
            match try_private_device(shared, opts) {
                Ok(dev) => {
                    eprintln!("{test}: kernel {} on {}", kernel.name(), dev.name());
                    check(&dev, cpu, f16);
                }
                Err(e) => eprintln!("{test}: kernel {} skipped: {e}", kernel.name()),
            }
        }
    });
}

/// `[b, r, c]` views for matmul operands: plain, transposed storage, a
/// broadcast batch (stride 0), and an odd-offset narrowed view.
pub(crate) fn matmul_views(b: usize, r: usize, c: usize) -> Vec<ViewCase> {
    let mut cases = vec![ViewCase {
        name: "contiguous",
        layout: Layout::contiguous(&[b, r, c]),
        len: b * r * c,
    }];
    cases.push(ViewCase {
        name: "transposed",
        layout: Layout::contiguous(&[b, c, r]).permute(&[0, 2, 1]).unwrap(),
        len: b * r * c,
    });
    cases.push(ViewCase {
        name: "batch-broadcast",
        layout: Layout::contiguous(&[1, r, c])
            .broadcast_to(&[b, r, c])
            .unwrap(),
        len: r * c,
    });
    cases.push(ViewCase {
        name: "narrowed",
        layout: Layout::contiguous(&[b, r + 1, c + 3])
            .narrow(1, 1, r)
            .unwrap()
            .narrow(2, 1, c)
            .unwrap(),
        len: b * (r + 1) * (c + 3),
    });
    cases
}

#[test]
fn matmul_matches_cpu_on_awkward_shapes_and_strides() {
    on_every_gpu("matmul", |dev, cpu| awkward_shapes(dev, cpu, false));
}

#[test]
fn every_kernel_forced_matches_cpu_on_awkward_shapes_and_strides() {
    // Tile128 and Tile128x64 run only tile-aligned products (their own
    // tests below), and fall back to Tile64 on these.
    let kernels = [
        MatmulKernel::Tile32,
        MatmulKernel::Subgroup,
        MatmulKernel::Coop,
        MatmulKernel::Coop128,
        MatmulKernel::SplitK64,
        MatmulKernel::SplitK128,
    ];
    on_every_kernel("matmul (forced kernels)", &kernels, awkward_shapes);
}

/// The awkward shapes and views on `dev`'s kernel choice, against `cpu`,
/// with tolerances for f16 inputs if `f16`.
fn awkward_shapes(dev: &Device, cpu: &dyn Backend, f16: bool) {
    // (batch, m, k, n): ones, primes, tile multiples and near-misses.
    let shapes = [
        (1, 1, 1, 1),
        (1, 3, 17, 5),
        (2, 17, 3, 129),
        (1, 64, 32, 64),
        (2, 63, 129, 65),
        (3, 129, 64, 17),
        (1, 128, 128, 128),
        (2, 68, 36, 44),
        (1, 7, 0, 9),
        // Long along K, unbatched: split-K's products (16, 8 and 2 slices).
        (1, 63, 1024, 65),
        (1, 128, 512, 128),
        (1, 17, 128, 5),
    ];
    {
        let gpu = dev.backend();
        for (batch, m, k, n) in shapes {
            let (avs, bvs) = (matmul_views(batch, m, k), matmul_views(batch, k, n));
            for (i, av) in avs.iter().enumerate() {
                // Every A view meets two B views, so all pairs of kinds occur.
                for bv in [&bvs[i], &bvs[(i + 1) % bvs.len()]] {
                    let (ga, ca) = pair(gpu, cpu, &values(av.len, 71, -1.0, 1.0));
                    let (gb, cb) = pair(gpu, cpu, &values(bv.len, 72, -1.0, 1.0));
                    let got = gpu
                        .matmul((&ga, &av.layout), (&gb, &bv.layout))
                        .expect("gpu matmul");
                    let want = cpu
                        .matmul((&ca, &av.layout), (&cb, &bv.layout))
                        .expect("cpu matmul");
                    let out = [batch, m, n];
                    let case = format!("matmul {batch}x{m}x{k}x{n} {} x {}", av.name, bv.name);
                    let (atol, rtol) = tolerances(k, f16);
                    assert_close(
                        &case,
                        &down(gpu, &got, &out),
                        &down(cpu, &want, &out),
                        atol,
                        rtol,
                    );
                }
            }
        }
    }
}

#[test]
fn large_tile_matmul_matches_cpu_for_every_load_mode() {
    on_every_gpu("matmul (large tiles)", |dev, cpu| {
        large_products(dev, cpu, false)
    });
}

#[test]
fn every_kernel_forced_matches_cpu_on_large_products_and_epilogues() {
    let kernels = [
        MatmulKernel::Tile64,
        MatmulKernel::Tile32,
        MatmulKernel::Tile128x64,
        MatmulKernel::Subgroup,
        MatmulKernel::Coop,
        MatmulKernel::Coop128,
        MatmulKernel::SplitK64,
        MatmulKernel::SplitK128,
    ];
    on_every_kernel(
        "matmul (forced kernels, large)",
        &kernels,
        |dev, cpu, f16| {
            large_products(dev, cpu, f16);
            fused_linear_epilogues(dev, cpu, f16);
        },
    );
}

/// Absolute and relative tolerances for a reduction of length `k` over
/// values in [-1, 1]: f32 rounding, or f16 inputs (off by up to 2^-11 each).
fn tolerances(k: usize, f16: bool) -> (f32, f32) {
    if f16 {
        (2f32.powi(-10) * k.max(1) as f32 * 4.0, 1e-2)
    } else {
        (1e-6 * k.max(1) as f32 * 4.0, 1e-5)
    }
}

/// Products of 64 tiles of 128 x 128, and of 128 x 64 tiles only, with
/// each operand plain or transposed.
fn large_products(dev: &Device, cpu: &dyn Backend, f16: bool) {
    // 16 batches of 256 x 256 give 64 tiles of 128 x 128, enough for the
    // large kernel (matmul_large.wgsl); 192 columns fit its NARROW tiles
    // (Tile128x64) only.
    for (batch, m, k, n) in [(16, 256, 48, 256), (2, 128, 32, 192)] {
        large_product(dev, cpu, f16, [batch, m, k, n]);
    }
}

/// One `[batch, m, k] x [batch, k, n]` product of [`large_products`].
fn large_product(dev: &Device, cpu: &dyn Backend, f16: bool, [batch, m, k, n]: [usize; 4]) {
    let plain = |r: usize, c: usize| Layout::contiguous(&[batch, r, c]);
    let transposed = |r: usize, c: usize| {
        Layout::contiguous(&[batch, c, r])
            .permute(&[0, 2, 1])
            .unwrap()
    };
    {
        let gpu = dev.backend();
        let (ga, ca) = pair(gpu, cpu, &values(batch * m * k, 81, -1.0, 1.0));
        let (gb, cb) = pair(gpu, cpu, &values(batch * k * n, 82, -1.0, 1.0));
        for (an, la) in [("A", plain(m, k)), ("Aᵀ", transposed(m, k))] {
            for (bn, lb) in [("B", plain(k, n)), ("Bᵀ", transposed(k, n))] {
                let got = gpu.matmul((&ga, &la), (&gb, &lb)).expect("gpu matmul");
                let want = cpu.matmul((&ca, &la), (&cb, &lb)).expect("cpu matmul");
                let out = [batch, m, n];
                let (atol, rtol) = tolerances(k, f16);
                assert_close(
                    &format!("large matmul {an} x {bn} of {m} x {k} x {n}"),
                    &down(gpu, &got, &out),
                    &down(cpu, &want, &out),
                    atol,
                    rtol,
                );
            }
        }
    }
}

#[test]
fn fused_linear_epilogues_match_cpu_on_both_kernels() {
    on_every_gpu("fused_linear", |dev, cpu| {
        fused_linear_epilogues(dev, cpu, false)
    });
}

/// `fused_linear` with and without bias and ReLU: an edge-checked small
/// product, one of 8 x 8 tiles of 128 (64 tiles: the large kernel), and
/// two long along K (split-K's, whose second kernel applies the epilogue).
fn fused_linear_epilogues(dev: &Device, cpu: &dyn Backend, f16: bool) {
    {
        let gpu = dev.backend();
        for (m, k, n) in [
            (37, 20, 51),
            (1024, 32, 1024),
            (37, 1024, 51),
            (128, 512, 256),
        ] {
            let (gx, cx) = pair(gpu, cpu, &values(m * k, 91, -1.0, 1.0));
            // The weight as a Linear passes it: [n, k] stored, seen as [k, n].
            let (gw, cw) = pair(gpu, cpu, &values(n * k, 92, -1.0, 1.0));
            // A bias at an offset inside a larger buffer.
            let (gb, cb) = pair(gpu, cpu, &values(n + 4, 93, -1.0, 1.0));
            let lx = Layout::contiguous(&[m, k]);
            let lw = Layout::contiguous(&[n, k]).permute(&[1, 0]).unwrap();
            let lb = Layout::contiguous(&[n + 4]).narrow(0, 4, n).unwrap();
            for act in [LinearActivation::Identity, LinearActivation::Relu] {
                for with_bias in [true, false] {
                    let (gbias, cbias) = if with_bias {
                        (Some((&gb, &lb)), Some((&cb, &lb)))
                    } else {
                        (None, None)
                    };
                    let got = gpu
                        .fused_linear((&gx, &lx), (&gw, &lw), gbias, act)
                        .expect("gpu fused_linear")
                        .expect("the gpu fuses");
                    let want = cpu
                        .fused_linear((&cx, &lx), (&cw, &lw), cbias, act)
                        .expect("cpu fused_linear")
                        .expect("the cpu fuses");
                    let (atol, rtol) = tolerances(k, f16);
                    assert_close(
                        &format!("fused_linear {m}x{k}x{n} {act:?} bias {with_bias}"),
                        &down(gpu, &got, &[m, n]),
                        &down(cpu, &want, &[m, n]),
                        atol,
                        rtol,
                    );
                }
            }
        }
    }
}
