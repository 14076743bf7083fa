//! Elementwise family: unary ops, broadcasting binary ops and select, each
//! over awkward views, against the CPU.

use lam_core::backend::{BinaryOp, UnaryOp};
use lam_core::Layout;

use super::{on_every_gpu, pair};
use crate::common::*;

pub(crate) const UNARY_OPS: [UnaryOp; 27] = [
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Square,
    UnaryOp::Recip,
    UnaryOp::Sin,
    UnaryOp::Cos,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Relu,
    UnaryOp::LeakyRelu(0.1),
    UnaryOp::Elu(1.3),
    UnaryOp::Gelu,
    UnaryOp::Silu,
    UnaryOp::Softplus,
    UnaryOp::Clamp(-0.5, 0.75),
    UnaryOp::Sign,
    UnaryOp::Step,
    UnaryOp::AddScalar(1.5),
    UnaryOp::MulScalar(-2.5),
    UnaryOp::PowScalar(3.0),
    UnaryOp::GtScalar(0.25),
    UnaryOp::LtScalar(-0.25),
    UnaryOp::GeluGrad,
    UnaryOp::InRange(-1.0, 0.5),
];

#[test]
fn unary_ops_match_cpu_on_strided_views() {
    on_every_gpu("unary", |dev, cpu| {
        let gpu = dev.backend();
        for shape in [vec![1], vec![3, 17], vec![63, 129]] {
            for view in awkward_views(&shape) {
                // Inputs span the interesting range, including large |x| for
                // the saturating ops; log and sqrt get positive inputs.
                let wide = values(view.len, 11, -12.0, 12.0);
                let positive: Vec<f32> = values(view.len, 12, 0.01, 20.0);
                let (gw, cw) = pair(gpu, cpu, &wide);
                let (gp, cp) = pair(gpu, cpu, &positive);
                for op in UNARY_OPS {
                    let needs_positive =
                        matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::PowScalar(_));
                    let (g, c) = if needs_positive {
                        (&gp, &cp)
                    } else {
                        (&gw, &cw)
                    };
                    let got = gpu.unary(op, (g, &view.layout)).expect("gpu unary");
                    let want = cpu.unary(op, (c, &view.layout)).expect("cpu unary");
                    let case = format!("{op:?} on {shape:?} {}", view.name);
                    let (atol, rtol) = match op {
                        // exp/pow grow fast; their relative error is what matters.
                        UnaryOp::Exp | UnaryOp::PowScalar(_) => (1e-6, 2e-5),
                        _ => (2e-6, 1e-5),
                    };
                    assert_close(
                        &case,
                        &down(gpu, &got, &shape),
                        &down(cpu, &want, &shape),
                        atol,
                        rtol,
                    );
                }
            }
        }
    });
}

pub(crate) const BINARY_OPS: [BinaryOp; 15] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::ReluGrad,
    BinaryOp::GeluGrad,
];

#[test]
fn binary_ops_match_cpu_with_broadcasting() {
    on_every_gpu("binary", |dev, cpu| {
        let gpu = dev.backend();
        for shape in [vec![1], vec![17, 3], vec![3, 63, 129]] {
            let views = awkward_views(&shape);
            // lhs walks every awkward view; rhs the next one round, so the
            // pair mixes layouts (e.g. transposed + broadcast).
            for (i, lv) in views.iter().enumerate() {
                let rv = &views[(i + 1) % views.len()];
                // Coarse values make the comparisons hit equality often;
                // positive bases keep Pow real.
                let a: Vec<f32> = values(lv.len, 21, 0.0, 4.0)
                    .iter()
                    .map(|x| x.floor() + 0.5)
                    .collect();
                let b: Vec<f32> = values(rv.len, 22, 0.0, 4.0)
                    .iter()
                    .map(|x| x.floor() + 0.5)
                    .collect();
                let (ga, ca) = pair(gpu, cpu, &a);
                let (gb, cb) = pair(gpu, cpu, &b);
                for op in BINARY_OPS {
                    let got = gpu
                        .binary(op, (&ga, &lv.layout), (&gb, &rv.layout))
                        .expect("gpu binary");
                    let want = cpu
                        .binary(op, (&ca, &lv.layout), (&cb, &rv.layout))
                        .expect("cpu binary");
                    let case = format!("{op:?} on {shape:?} {} x {}", lv.name, rv.name);
                    assert_close(
                        &case,
                        &down(gpu, &got, &shape),
                        &down(cpu, &want, &shape),
                        1e-6,
                        1e-5,
                    );
                }
            }
        }
    });
}

#[test]
fn select_matches_cpu_for_f32_and_i32_conditions() {
    on_every_gpu("select", |dev, cpu| {
        let gpu = dev.backend();
        let shape = [17, 63];
        let views = awkward_views(&shape);
        for (i, cv) in views.iter().enumerate() {
            let av = &views[(i + 1) % views.len()];
            let bv = &views[(i + 2) % views.len()];
            // About a third zeros, including -0.0, which must count as zero.
            let cond: Vec<f32> = values(cv.len, 31, -1.0, 2.0)
                .iter()
                .map(|x| if x.floor() == 0.0 { -0.0 } else { x.floor() })
                .collect();
            let cond_i: Vec<i32> = cond.iter().map(|&x| x as i32).collect();
            let (gc, cc) = pair(gpu, cpu, &cond);
            let (gci, cci) = (up_i(gpu, &cond_i), up_i(cpu, &cond_i));
            let (ga, ca) = pair(gpu, cpu, &values(av.len, 32, -1.0, 1.0));
            let (gb, cb) = pair(gpu, cpu, &values(bv.len, 33, 5.0, 6.0));
            for (name, g, c) in [("f32 cond", &gc, &cc), ("i32 cond", &gci, &cci)] {
                let got = gpu
                    .select((g, &cv.layout), (&ga, &av.layout), (&gb, &bv.layout))
                    .expect("gpu select");
                let want = cpu
                    .select((c, &cv.layout), (&ca, &av.layout), (&cb, &bv.layout))
                    .expect("cpu select");
                let case = format!("select {name} {} {} {}", cv.name, av.name, bv.name);
                assert_close(
                    &case,
                    &down(gpu, &got, &shape),
                    &down(cpu, &want, &shape),
                    0.0,
                    0.0,
                );
            }
        }
    });
}

#[test]
fn nan_follows_the_cpu() {
    // NaN must survive relu, clamp, max and the like (drivers may drop it),
    // and comparisons with NaN are false (Ne true). Signed zeros are inputs
    // too, but their sign is not checked: WGSL does not preserve it (Mesa's
    // GL compiler, for one, turns relu's select into a max).
    let x = [f32::NAN, -0.0, 0.0, 1.5, -2.0, f32::NAN, 0.25, -0.75];
    let y = [0.0, f32::NAN, -0.0, f32::NAN, -2.0, 1.0, 0.5, f32::NAN];
    let l = Layout::contiguous(&[8]);
    on_every_gpu("nan", |dev, cpu| {
        let gpu = dev.backend();
        let (gx, cx) = pair(gpu, cpu, &x);
        let (gy, cy) = pair(gpu, cpu, &y);
        for op in UNARY_OPS.into_iter().chain([UnaryOp::PowScalar(0.0)]) {
            let got = down(gpu, &gpu.unary(op, (&gx, &l)).unwrap(), &[8]);
            let want = down(cpu, &cpu.unary(op, (&cx, &l)).unwrap(), &[8]);
            assert_close(
                &format!("{op:?} of NaN and ±0 on {}", dev.name()),
                &got,
                &want,
                2e-6,
                1e-5,
            );
        }
        for op in BINARY_OPS {
            let got = down(gpu, &gpu.binary(op, (&gx, &l), (&gy, &l)).unwrap(), &[8]);
            let want = down(cpu, &cpu.binary(op, (&cx, &l), (&cy, &l)).unwrap(), &[8]);
            assert_close(
                &format!("{op:?} with NaN on {}", dev.name()),
                &got,
                &want,
                1e-6,
                1e-5,
            );
        }
    });
}
