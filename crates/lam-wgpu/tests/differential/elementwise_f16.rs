//! Elementwise ops reading and writing halves in one pass
//! (`fused_unary_f16`, `fused_binary_f16`) against the composition they
//! replace on the same device: each `F16` operand cast to `F32`, the `f32`
//! op, and for an `F16` result the cast back. Same kernels' math, same
//! rounding code, so the bits must agree exactly — for every op, every
//! mix of `F16` and `F32` operands and results, on awkward views (odd
//! offsets into half-packed words, transposed, broadcast) of odd sizes
//! (a last word holding one half), with NaN, infinities, signed zeros,
//! subnormal halves and results beyond f16's range.

use lam_core::backend::{BinaryOp, UnaryOp};
use lam_core::{Backend, DType, Device, Layout, Storage, Tensor};
use lam_wgpu::GpuOptions;

use super::elementwise::{BINARY_OPS, UNARY_OPS};
use super::on_every_gpu;
use crate::common::*;

/// Values a test data buffer of `n` holds: seeded values over `[lo, hi)`
/// with specials every few elements.
fn data(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    const SPECIAL: [f32; 9] = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        3.0e-6,  // a subnormal half
        -6.0e-8, // the least subnormal half, negative
        70000.0, // beyond f16's range: inf as a half
        65504.0, // f16's largest
    ];
    let mut v = values(n, seed, lo, hi);
    for (i, x) in v.iter_mut().enumerate() {
        if i % 5 == 3 {
            *x = SPECIAL[(i / 5 + seed as usize) % SPECIAL.len()];
        }
    }
    v
}

/// `values` on the device as `dtype` (F16 by the device's own cast).
fn upload(b: &dyn Backend, values: &[f32], dtype: DType) -> Storage {
    let s = up(b, values);
    if dtype == DType::F32 {
        return s;
    }
    b.cast((&s, &Layout::contiguous(&[values.len()])), dtype)
        .expect("cast")
}

/// The bits of a contiguous F16 or F32 buffer of `n`, widened to f32 bits.
fn bits(b: &dyn Backend, s: &Storage, n: usize) -> Vec<u32> {
    let l = Layout::contiguous(&[n]);
    let wide = if s.dtype() == DType::F16 {
        b.cast((s, &l), DType::F32).expect("cast")
    } else {
        s.clone()
    };
    down(b, &wide, &[n]).iter().map(|x| x.to_bits()).collect()
}

/// The composition: `view` as a contiguous F32 copy where it holds halves.
fn widened(b: &dyn Backend, s: &Storage, l: &Layout) -> (Storage, Layout) {
    if s.dtype() == DType::F32 {
        return (s.clone(), l.clone());
    }
    let copy = b.cast((s, l), DType::F32).expect("cast to f32");
    (copy, Layout::contiguous(&l.shape))
}

/// `out` (F32, contiguous `n`) as `to`.
fn finish(b: &dyn Backend, out: Storage, n: usize, to: DType) -> Storage {
    if to == DType::F32 {
        return out;
    }
    b.cast((&out, &Layout::contiguous(&[n])), to)
        .expect("cast to f16")
}

fn same_bits(case: &str, got: &[u32], want: &[u32]) {
    assert_eq!(got.len(), want.len(), "{case}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{case}: element {i} is {:#010x} ({}), the composition gives {:#010x} ({})",
            got[i],
            f32::from_bits(got[i]),
            want[i],
            f32::from_bits(want[i])
        );
    }
}

const FLOATS: [DType; 2] = [DType::F16, DType::F32];

#[test]
fn unary_ops_on_halves_are_the_composition_bit_for_bit() {
    on_every_gpu("fused_unary_f16", |dev, _| {
        let b = dev.backend();
        for shape in [vec![1], vec![3, 17], vec![5, 63]] {
            let n: usize = shape.iter().product();
            for view in awkward_views(&shape) {
                let wide = data(view.len, 41, -12.0, 12.0);
                for from in FLOATS {
                    let src = upload(b, &wide, from);
                    for to in FLOATS {
                        if from == DType::F32 && to == DType::F32 {
                            continue; // `unary` itself
                        }
                        for op in UNARY_OPS.into_iter().chain([UnaryOp::PowScalar(0.0)]) {
                            let case = format!(
                                "{op:?} {from}->{to} on {shape:?} {} ({})",
                                view.name,
                                dev.name()
                            );
                            let got = b
                                .fused_unary_f16(op, (&src, &view.layout), to)
                                .expect("fused_unary_f16")
                                .expect("the GPU runs it");
                            assert_eq!(got.dtype(), to, "{case}");
                            let (s, l) = widened(b, &src, &view.layout);
                            let want = b.unary(op, (&s, &l)).expect("unary");
                            let want = finish(b, want, n, to);
                            same_bits(&case, &bits(b, &got, n), &bits(b, &want, n));
                        }
                    }
                }
            }
        }
    });
}

#[test]
fn binary_ops_on_halves_are_the_composition_bit_for_bit() {
    on_every_gpu("fused_binary_f16", |dev, _| {
        let b = dev.backend();
        for shape in [vec![1], vec![17, 3], vec![3, 5, 13]] {
            let n: usize = shape.iter().product();
            let views = awkward_views(&shape);
            for (i, lv) in views.iter().enumerate() {
                let rv = &views[(i + 1) % views.len()];
                // Coarse values meet each other often (comparisons, maximum).
                let coarse = |v: Vec<f32>| -> Vec<f32> {
                    v.iter()
                        .map(|x| {
                            if x.is_finite() && x.abs() < 8.0 {
                                x.floor() + 0.5
                            } else {
                                *x
                            }
                        })
                        .collect()
                };
                let a = coarse(data(lv.len, 42, -4.0, 4.0));
                let c = coarse(data(rv.len, 43, -4.0, 4.0));
                for (da, db) in [
                    (DType::F16, DType::F16),
                    (DType::F16, DType::F32),
                    (DType::F32, DType::F16),
                ] {
                    let (sa, sb) = (upload(b, &a, da), upload(b, &c, db));
                    for to in FLOATS {
                        for op in BINARY_OPS {
                            let case = format!(
                                "{op:?} {da}x{db}->{to} on {shape:?} {} x {} ({})",
                                lv.name,
                                rv.name,
                                dev.name()
                            );
                            let got = b
                                .fused_binary_f16(op, (&sa, &lv.layout), (&sb, &rv.layout), to)
                                .expect("fused_binary_f16")
                                .expect("the GPU runs it");
                            assert_eq!(got.dtype(), to, "{case}");
                            let (xa, la) = widened(b, &sa, &lv.layout);
                            let (xb, lb) = widened(b, &sb, &rv.layout);
                            let want = b.binary(op, (&xa, &la), (&xb, &lb)).expect("binary");
                            let want = finish(b, want, n, to);
                            same_bits(&case, &bits(b, &got, n), &bits(b, &want, n));
                        }
                    }
                }
            }
        }
    });
}

#[test]
fn refused_dtypes_are_errors_that_name_them() {
    on_every_gpu("fused_unary_f16 dtypes", |dev, _| {
        let b = dev.backend();
        let l = Layout::contiguous(&[3]);
        let ints = up_i(b, &[1, 2, 3]);
        let halves = upload(b, &[1.0, 2.0, 3.0], DType::F16);
        let err = b
            .fused_unary_f16(UnaryOp::Neg, (&ints, &l), DType::F16)
            .expect_err("i32 input");
        assert!(err.to_string().contains("int32"), "{err}");
        let err = b
            .fused_binary_f16(BinaryOp::Add, (&halves, &l), (&halves, &l), DType::I32)
            .expect_err("i32 output");
        assert!(err.to_string().contains("int32"), "{err}");
    });
}

/// Through lam-core: a GELU on halves and a sum of two halves are one
/// kernel each, with no casts around them, and cross-entropy reads F16
/// logits without a cast (a private device counts only its own dispatches).
#[test]
fn ops_on_halves_are_one_dispatch() {
    on_every_gpu("one dispatch", |shared, _| {
        let dev: Device = private_device(shared, GpuOptions::default());
        let x = Tensor::from_slice(&data(1001, 44, -3.0, 3.0), &[7, 143], &dev)
            .and_then(|t| t.to_dtype(DType::F16))
            .expect("halves");
        let y = x.t().expect("view");
        let dispatches = || dev.stats().dispatches;
        let before = dispatches();
        let g = y.gelu().expect("gelu");
        assert_eq!(g.dtype(), DType::F16);
        assert_eq!(dispatches() - before, 1, "a GELU on halves");
        let before = dispatches();
        let s = g.add(&y).expect("add");
        assert_eq!(s.dtype(), DType::F16);
        assert_eq!(dispatches() - before, 1, "a sum of halves");
        // A comparison of halves returns F32 in the same single pass.
        let before = dispatches();
        let m = s.gt(&g).expect("gt");
        assert_eq!(m.dtype(), DType::F32);
        assert_eq!(dispatches() - before, 1, "a comparison of halves");
        // Cross-entropy reads F16 logits as they are: no more dispatches
        // than for F32 logits (a cast would be one more).
        let targets =
            Tensor::from_vec_i32((0..143).map(|i| i % 7).collect(), &[143], &dev).expect("targets");
        let count = |logits: &Tensor| {
            let before = dispatches();
            logits.cross_entropy(&targets).expect("cross-entropy");
            dispatches() - before
        };
        let wide = s.to_dtype(DType::F32).expect("f32");
        assert_eq!(count(&s), count(&wide), "cross-entropy of halves");
    });
}
