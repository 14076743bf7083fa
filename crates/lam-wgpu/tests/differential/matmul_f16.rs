//! `F16` products (`fused_matmul_f16`: the matmul kernels reading halves)
//! on every view and awkward size, on each device's own kernel choice and
//! on every kernel forced in turn, against the sums computed on the host
//! and rounded to f16 once.
//!
//! The operands are multiples of 1/16 of at most 4 in magnitude, so every
//! product and every partial sum is exact in f32 whatever the order of the
//! additions: each output must then have exactly the bits of the exact sum
//! rounded to f16, on every kernel. Further cases hold NaN, infinities and
//! subnormal halves, and sums beyond f16's range (which round to infinity).
//!
//! `fused_linear_f16` (the same kernels, rounding each sum to f16 before
//! adding an F32 bias and applying a ReLU) must give the bits of the
//! composition it replaces on the same device: the F16 product, its cast
//! to F32, the broadcast add and the ReLU.

use lam_core::backend::{BinaryOp, LinearActivation, UnaryOp};
use lam_core::{f16, Backend, DType, Device, Layout, Storage};
use lam_wgpu::MatmulKernel;

use super::matmul::{matmul_views, on_every_kernel};
use super::on_every_gpu;
use crate::common::*;

#[test]
fn f16_products_are_exact_sums_rounded_once_on_awkward_shapes_and_views() {
    on_every_gpu("matmul_f16", |dev, _| {
        awkward_shapes(dev);
        special_values(dev);
        large_products(dev, 16);
    });
}

/// The first product of halves on a device decides whether its kernels
/// widen halves by hardware (checked bit for bit against lam's integer
/// conversion, subnormals, infinities and NaN included); the products above
/// run either way. Mesa's lavapipe (Vulkan) widens them as lam does; its
/// GL driver, llvmpipe, changes NaN bits in Mesa 26, so there lam keeps its
/// own conversion.
#[test]
fn the_first_product_of_halves_decides_the_hardware_conversion() {
    on_every_gpu("matmul_f16 (hardware conversion)", |dev, _| {
        let gpu = dev.backend();
        let la = Layout::contiguous(&[1, 2, 4]);
        let lb = Layout::contiguous(&[1, 4, 2]);
        let values = [2f32.powi(-24), 1.0, -0.5, 3.0, 2.0, 1.0, 0.25, -1.0];
        let (a, b) = (to_half(gpu, &values), to_half(gpu, &values));
        gpu.fused_matmul_f16((&a, &la), (&b, &lb), DType::F32)
            .expect("an F16 product");
        let decided = lam_wgpu::matmul_widens_halves_by_hardware(dev).expect("a GPU");
        eprintln!("{dev}: widens halves by hardware: {decided:?}");
        let lavapipe = dev.to_string().starts_with("vulkan: llvmpipe");
        assert!(
            decided.is_some(),
            "{dev}: undecided after a product of halves"
        );
        assert!(!lavapipe || decided == Some(true), "{dev}: {decided:?}");
    });
}

#[test]
fn every_kernel_forced_reads_halves() {
    let kernels = [
        MatmulKernel::Tile64,
        MatmulKernel::Tile32,
        MatmulKernel::Tile128,
        MatmulKernel::Tile128x64,
        MatmulKernel::Subgroup,
        MatmulKernel::Coop,
        MatmulKernel::Coop128,
        MatmulKernel::SplitK64,
        MatmulKernel::SplitK128,
    ];
    // One batch of the large products is enough for a forced Tile128.
    on_every_kernel("matmul_f16 (forced kernels)", &kernels, |dev, _, _| {
        awkward_shapes(dev);
        special_values(dev);
        large_products(dev, 1);
    });
}

#[test]
fn linear_f16_is_the_composed_ops_bit_for_bit_on_every_kernel() {
    let kernels = [
        MatmulKernel::Tile64,
        MatmulKernel::Tile32,
        MatmulKernel::Tile128,
        MatmulKernel::Tile128x64,
        MatmulKernel::Subgroup,
        MatmulKernel::Coop,
        MatmulKernel::Coop128,
        MatmulKernel::SplitK64,
        MatmulKernel::SplitK128,
    ];
    on_every_gpu("fused_linear_f16", |dev, _| linear_f16_cases(dev));
    on_every_kernel(
        "fused_linear_f16 (forced kernels)",
        &kernels,
        |dev, _, _| linear_f16_cases(dev),
    );
}

/// `fused_linear_f16` as a Linear calls it (the weight `[n, k]` seen as
/// `[k, n]`, the bias a narrowed view) against the composed backend ops,
/// with and without ReLU: sizes 1, 3, 17, 65 and 128 (the large kernel's
/// tile), NaN and sums beyond f16's range of both signs; and its F16
/// output (written as halves for an even N) against the F32 one's cast.
fn linear_f16_cases(dev: &Device) {
    let gpu = dev.backend();
    for (m, k, n) in [
        (1, 1, 1),
        (3, 17, 5),
        (65, 3, 17),
        (128, 16, 128),
        (3, 512, 66),
        (128, 512, 128),
    ] {
        let mut x = values(m * k, 21, -2.0, 2.0);
        let w = values(n * k, 22, -2.0, 2.0);
        if m == 3 && k == 17 {
            x[0] = f32::NAN;
            x[k..3 * k].iter_mut().for_each(|v| *v = v.signum() * 6e4);
        }
        let b = values(n + 3, 23, -1.0, 1.0);
        let (gx, gw, gb) = (to_half(gpu, &x), to_half(gpu, &w), up(gpu, &b));
        let lx = Layout::contiguous(&[m, k]);
        let lw = Layout::contiguous(&[n, k]).permute(&[1, 0]).unwrap();
        let lb = Layout::contiguous(&[n + 3]).narrow(0, 3, n).unwrap();
        let out = Layout::contiguous(&[m, n]);
        for act in [LinearActivation::Identity, LinearActivation::Relu] {
            let case = format!("fused_linear_f16 {m}x{k}x{n} {act:?}");
            let linear = |to: DType| {
                gpu.fused_linear_f16((&gx, &lx), (&gw, &lw), (&gb, &lb), act, to)
                    .expect("fused_linear_f16")
                    .expect("the gpu fuses")
            };
            let got = linear(DType::F32);
            // The F16 output is the F32 one's cast, bit for bit.
            let halves = gpu
                .cast((&linear(DType::F16), &out), DType::F32)
                .expect("cast");
            let rounded = gpu.cast((&got, &out), DType::F16).expect("cast");
            let rounded = gpu.cast((&rounded, &out), DType::F32).expect("cast");
            let p = gpu
                .fused_matmul_f16((&gx, &lx), (&gw, &lw), DType::F16)
                .expect("matmul_f16")
                .expect("the gpu multiplies halves");
            let p = gpu.cast((&p, &out), DType::F32).expect("cast");
            let rows = Layout {
                shape: vec![m, n],
                strides: vec![0, 1],
                offset: 3,
            };
            let mut want = gpu
                .binary(BinaryOp::Add, (&p, &out), (&gb, &rows))
                .expect("add");
            if act == LinearActivation::Relu {
                want = gpu.unary(UnaryOp::Relu, (&want, &out)).expect("relu");
            }
            let bits = |s: &Storage| -> Vec<u32> {
                down(gpu, s, &[m, n]).iter().map(|v| v.to_bits()).collect()
            };
            assert_eq!(bits(&halves), bits(&rounded), "{case} to F16");
            let (got, want) = (bits(&got), bits(&want));
            assert_eq!(got, want, "{case}");
            if m == 3 && k == 17 {
                let y: Vec<f32> = got.iter().map(|&b| f32::from_bits(b)).collect();
                assert!(y.iter().any(|v| v.is_nan()), "{case}: a NaN");
                assert!(y.iter().any(|v| v.is_infinite()), "{case}: inf");
            }
        }
    }
    // F32 operands are refused, and so are F16 ones by the f32
    // `fused_linear`.
    let (half, wide) = (to_half(gpu, &[1.0; 4]), up(gpu, &[1.0; 4]));
    let (l, lb) = (Layout::contiguous(&[2, 2]), Layout::contiguous(&[2]));
    let relu = LinearActivation::Relu;
    for (a, b) in [(&wide, &half), (&half, &wide)] {
        let err = gpu
            .fused_linear_f16((a, &l), (b, &l), (&wide, &lb), relu, DType::F32)
            .expect_err("an F32 operand is refused");
        assert!(err.to_string().contains("float16"), "{err}");
    }
    let err = gpu
        .fused_linear((&half, &l), (&half, &l), None, relu)
        .expect_err("fused_linear takes F32 operands");
    assert!(err.to_string().contains("float32"), "{err}");
}

#[test]
fn only_f16_operands_are_taken() {
    on_every_gpu("matmul_f16 (dtypes)", |dev, cpu| {
        let gpu = dev.backend();
        let l = Layout::contiguous(&[1, 2, 2]);
        let wide = up(gpu, &[1.0; 4]);
        let half = to_half(gpu, &[1.0; 4]);
        for (a, b) in [(&wide, &half), (&half, &wide), (&wide, &wide)] {
            let err = gpu
                .fused_matmul_f16((a, &l), (b, &l), DType::F16)
                .expect_err("an F32 operand is refused");
            assert!(err.to_string().contains("float16"), "{err}");
        }
        // The CPU declines: lam-core multiplies its halves as f32.
        let c = to_half(cpu, &[1.0; 4]);
        assert!(cpu
            .fused_matmul_f16((&c, &l), (&c, &l), DType::F16)
            .expect("cpu")
            .is_none());
    });
}

/// (batch, m, k, n): ones, the odd sizes 3, 17, 65, 130, sizes whose rows
/// start at multiples of 4 halves but not 8 (36, 44, 68), K = 0 and empty
/// dims, each with every pairing of plain, transposed, broadcast and
/// narrowed views.
fn awkward_shapes(dev: &Device) {
    let shapes = [
        (1, 1, 1, 1),
        (1, 3, 17, 5),
        (2, 17, 3, 130),
        (1, 65, 130, 3),
        (3, 130, 65, 17),
        (2, 68, 36, 44),
        (1, 64, 32, 64),
        (1, 7, 0, 9),
        (2, 0, 5, 3),
        (1, 4, 3, 0),
        // Long along K, unbatched: split-K's products.
        (1, 65, 1024, 6),
        (1, 128, 512, 128),
    ];
    let gpu = dev.backend();
    for (batch, m, k, n) in shapes {
        let (avs, bvs) = (matmul_views(batch, m, k), matmul_views(batch, k, n));
        for (i, av) in avs.iter().enumerate() {
            for bv in [&bvs[i], &bvs[(i + 1) % bvs.len()]] {
                let a = sixteenths(av.len, 11);
                let b = sixteenths(bv.len, 12);
                let case = format!("f16 matmul {batch}x{m}x{k}x{n} {} x {}", av.name, bv.name);
                check(gpu, &case, (&a, &av.layout), (&b, &bv.layout));
            }
        }
    }
}

/// NaN and infinities in the operands, and sums beyond f16's range.
fn special_values(dev: &Device) {
    let gpu = dev.backend();
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    // A [4, 3] x B [3, 4]: rows of A meet B's columns of ones, of
    // infinities, of finite values and of a NaN; 300 + 2 · 300 · 200 =
    // 120,300 overflows f16 (65504) although every operand and product
    // fits it.
    let a = [
        1.0, 2.0, 3.0, //
        inf, 1.0, 0.0, //
        nan, 1.0, 1.0, //
        300.0, 300.0, 300.0,
    ];
    let b = [
        1.0, inf, 1.0, 0.0, //
        1.0, 0.0, 200.0, nan, //
        1.0, -inf, 200.0, 0.0,
    ];
    let (la, lb) = (
        Layout::contiguous(&[1, 4, 3]),
        Layout::contiguous(&[1, 3, 4]),
    );
    check(
        gpu,
        "f16 matmul of NaN and infinities",
        (&a[..], &la),
        (&b[..], &lb),
    );
    // The same, transposed and at an odd offset.
    let mut at = vec![0.5; 1];
    at.extend((0..3).flat_map(|c| (0..4).map(move |r| a[r * 3 + c])));
    let la = Layout {
        shape: vec![1, 4, 3],
        strides: vec![12, 1, 4],
        offset: 1,
    };
    check(
        gpu,
        "f16 matmul of NaN and infinities, Aᵀ",
        (&at, &la),
        (&b[..], &lb),
    );
    // Subnormal halves (multiples of 2^-24, below f16's least normal
    // 2^-14) are read exactly, whatever the kernel converts them with:
    // times 1,024 their sum is normal, times one it stays subnormal.
    let tiny = 2f32.powi(-24);
    let a = [
        tiny,
        3.0 * tiny,
        -5.0 * tiny,
        1000.0 * tiny, //
        1.0,
        0.5,
        tiny,
        -tiny,
    ];
    let b = [
        1024.0, 1.0, //
        1024.0, 1.0, //
        1024.0, 0.0, //
        1024.0, 0.0,
    ];
    check(
        gpu,
        "f16 matmul of subnormal halves",
        (&a[..], &Layout::contiguous(&[1, 2, 4])),
        (&b[..], &Layout::contiguous(&[1, 4, 2])),
    );
    // Large negative and positive sums: -inf and +inf.
    let big = [-60000.0, -60000.0, 60000.0, 60000.0];
    let l = Layout::contiguous(&[1, 2, 2]);
    check(
        gpu,
        "f16 matmul beyond f16's range",
        (&big[..], &l),
        (&[1.0; 4][..], &l),
    );
}

/// Products of `batch` x 4 tiles of 128 x 128 (16 batches: enough for the
/// size rule's `Tile128`), and of 128 x 64 tiles only (`Tile128x64`'s),
/// each operand plain or transposed.
fn large_products(dev: &Device, batch: usize) {
    for (m, k, n) in [(256, 48, 256), (128, 32, 192)] {
        large_product(dev, [batch, m, k, n]);
    }
}

/// One `[batch, m, k] x [batch, k, n]` product of [`large_products`].
fn large_product(dev: &Device, [batch, m, k, n]: [usize; 4]) {
    let gpu = dev.backend();
    let plain = |r: usize, c: usize| Layout::contiguous(&[batch, r, c]);
    let transposed = |r: usize, c: usize| {
        Layout::contiguous(&[batch, c, r])
            .permute(&[0, 2, 1])
            .unwrap()
    };
    let a = sixteenths(batch * m * k, 21);
    let b = sixteenths(batch * k * n, 22);
    for (an, la) in [("A", plain(m, k)), ("Aᵀ", transposed(m, k))] {
        for (bn, lb) in [("B", plain(k, n)), ("Bᵀ", transposed(k, n))] {
            let case = format!("large f16 matmul {an} x {bn} of {m} x {k} x {n}");
            check(gpu, &case, (&a, &la), (&b, &lb));
        }
    }
}

/// Runs the product of the views `a` and `b` (host buffers of halves,
/// given as f32) on `gpu` as `F16` and compares its bits with the sums of
/// the views' elements computed on the host and rounded to f16 once.
fn check(gpu: &dyn Backend, case: &str, a: (&[f32], &Layout), b: (&[f32], &Layout)) {
    let (ga, gb) = (to_half(gpu, a.0), to_half(gpu, b.0));
    let run = |to: DType| {
        let out = gpu
            .fused_matmul_f16((&ga, a.1), (&gb, b.1), to)
            .unwrap_or_else(|e| panic!("{case}: {e}"))
            .unwrap_or_else(|| panic!("{case}: the GPU declined an F16 product"));
        assert_eq!(out.dtype(), to, "{case}: dtype");
        out
    };
    let (batch, m, n) = (a.1.shape[0], a.1.shape[1], b.1.shape[2]);
    let got = from_half(gpu, &run(DType::F16), batch * m * n);
    // As F32: the same halves, widened.
    let widened = down(gpu, &run(DType::F32), &[batch * m * n]);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let halves: Vec<f32> = got.iter().map(|h| h.to_f32()).collect();
    assert_eq!(bits(&widened), bits(&halves), "{case}: the F32 output");
    let want = host_product(a, b);
    assert_eq!(got.len(), want.len(), "{case}: length");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(
            same,
            "{case}: element {i} (of [{batch}, {m}, {n}]) is {g} ({:#06x}), expected {w} ({:#06x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// `[B, M, N]` sums of the views `a` `[B, M, K]` and `b` `[B, K, N]`, in
/// f32 (exact for the operands used here), rounded to f16 once.
fn host_product(a: (&[f32], &Layout), b: (&[f32], &Layout)) -> Vec<f16> {
    let at = |(data, l): (&[f32], &Layout), i: usize, j: usize, t: usize| {
        data[l.offset + i * l.strides[0] + j * l.strides[1] + t * l.strides[2]]
    };
    let (batch, m, k, n) = (a.1.shape[0], a.1.shape[1], a.1.shape[2], b.1.shape[2]);
    let mut out = Vec::with_capacity(batch * m * n);
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let sum = (0..k).fold(0.0f32, |s, t| s + at(a, bi, i, t) * at(b, bi, t, j));
                out.push(f16::from_f32(sum));
            }
        }
    }
    out
}

/// `len` multiples of 1/16 in [-4, 4], a pure function of `seed`: exact in
/// f16, and their products and sums (up to K = 130) exact in f32.
fn sixteenths(len: usize, seed: u64) -> Vec<f32> {
    values(len, seed, -64.0, 65.0)
        .into_iter()
        .map(|x| x.floor() / 16.0)
        .collect()
}

/// An `F16` buffer of `data` (halves given as f32) on `b`.
fn to_half(b: &dyn Backend, data: &[f32]) -> Storage {
    let wide = up(b, data);
    b.cast((&wide, &Layout::contiguous(&[data.len()])), DType::F16)
        .expect("cast to F16")
}

/// The `len` halves of a contiguous `F16` buffer.
fn from_half(b: &dyn Backend, s: &Storage, len: usize) -> Vec<f16> {
    let wide = b
        .cast((s, &Layout::contiguous(&[len])), DType::F32)
        .expect("cast from F16");
    down(b, &wide, &[len])
        .into_iter()
        .map(f16::from_f32)
        .collect()
}
