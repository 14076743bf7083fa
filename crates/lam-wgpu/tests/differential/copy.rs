//! Copy family: copies and casts between awkward views, a copy within one
//! buffer, and zero-length tensors through every path, against the CPU.

use lam_core::backend::{Distribution, ReduceOp, UnaryOp};
use lam_core::{DType, Layout};

use super::{on_every_gpu, pair};
use crate::common::*;

#[test]
fn copy_and_cast_match_cpu_between_views() {
    on_every_gpu("copy/cast", |dev, cpu| {
        let gpu = dev.backend();
        let shape = [17, 129];
        let views = awkward_views(&shape);
        for sv in &views {
            let data = values(sv.len, 41, -5.0, 5.0);
            let (gs, cs) = pair(gpu, cpu, &data);
            // Copy into a narrowed (gapped) destination: untouched gaps stay zero.
            let dv = &views[2];
            let (gd, cd) = (
                gpu.zeros(dv.len, DType::F32).unwrap(),
                cpu.zeros(dv.len, DType::F32).unwrap(),
            );
            gpu.copy((&gs, &sv.layout), (&gd, &dv.layout))
                .expect("gpu copy");
            cpu.copy((&cs, &sv.layout), (&cd, &dv.layout))
                .expect("cpu copy");
            let case = format!("copy {} -> narrowed", sv.name);
            assert_close(
                &case,
                &down(gpu, &gd, &[dv.len]),
                &down(cpu, &cd, &[dv.len]),
                0.0,
                0.0,
            );

            // f32 -> i32 truncates toward zero; i32 -> f32 back.
            let gi = gpu.cast((&gs, &sv.layout), DType::I32).expect("gpu cast");
            let ci = cpu.cast((&cs, &sv.layout), DType::I32).expect("cpu cast");
            let (got, want) = (down_i(gpu, &gi, &shape), down_i(cpu, &ci, &shape));
            assert_eq!(got, want, "cast to i32 of {}", sv.name);
            let t = Layout::contiguous(&[129, 17]).permute(&[1, 0]).unwrap();
            let gf = gpu.cast((&gi, &t), DType::F32).expect("gpu cast back");
            let cf = cpu.cast((&ci, &t), DType::F32).expect("cpu cast back");
            let case = format!("cast i32 -> f32 (transposed) of {}", sv.name);
            assert_close(
                &case,
                &down(gpu, &gf, &shape),
                &down(cpu, &cf, &shape),
                0.0,
                0.0,
            );
        }
        // A copy within one buffer: row 0 of a [2, 8] buffer onto row 1.
        let data = values(16, 42, 0.0, 1.0);
        let (g, c) = pair(gpu, cpu, &data);
        let l = Layout::contiguous(&[2, 8]);
        let (row0, row1) = (l.narrow(0, 0, 1).unwrap(), l.narrow(0, 1, 1).unwrap());
        gpu.copy((&g, &row0), (&g, &row1)).expect("gpu self copy");
        cpu.copy((&c, &row0), (&c, &row1)).expect("cpu self copy");
        assert_close(
            "copy within one buffer",
            &down(gpu, &g, &[16]),
            &down(cpu, &c, &[16]),
            0.0,
            0.0,
        );
    });
}

#[test]
fn zero_length_tensors_work_everywhere() {
    on_every_gpu("empty", |dev, cpu| {
        let gpu = dev.backend();
        let e = gpu.from_f32(&[]).unwrap();
        assert!(gpu
            .read_f32((&e, &Layout::contiguous(&[0])))
            .unwrap()
            .is_empty());
        let z = gpu.zeros(0, DType::I32).unwrap();
        assert!(gpu
            .read_i32((&z, &Layout::contiguous(&[0, 4])))
            .unwrap()
            .is_empty());
        let l = Layout::contiguous(&[0, 3]);
        let u = gpu.unary(UnaryOp::Exp, (&e, &l)).unwrap();
        assert_eq!(u.len(), 0);
        // Reducing an empty axis gives 0 (sum), -inf (max), +inf (min), as on the CPU.
        let el = Layout::contiguous(&[3, 0]);
        let ce = cpu.from_f32(&[]).unwrap();
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
            let s = gpu.reduce(op, (&e, &el), &[1]).unwrap();
            let cs = cpu.reduce(op, (&ce, &el), &[1]).unwrap();
            assert_eq!(
                down(gpu, &s, &[3, 1]),
                down(cpu, &cs, &[3, 1]),
                "{op:?} of nothing"
            );
        }
        let r = gpu
            .fill_random(
                0,
                Distribution::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
                1,
            )
            .unwrap();
        assert_eq!(r.len(), 0);
    });
}
