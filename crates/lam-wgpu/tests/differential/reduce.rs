//! Reductions over every axis set, ties for arg reductions, and rows long
//! enough for the multi-pass path, against the CPU.

use lam_core::backend::ReduceOp;
use lam_core::Layout;

use super::{on_every_gpu, pair};
use crate::common::*;

#[test]
fn reductions_match_cpu_over_any_axes() {
    let ops = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min];
    on_every_gpu("reduce", |dev, cpu| {
        let gpu = dev.backend();
        let shape = [3, 17, 129];
        for view in awkward_views(&shape) {
            // Coarse values make ties, so arg reductions must agree on
            // picking the first index.
            let data: Vec<f32> = values(view.len, 51, -4.0, 4.0)
                .iter()
                .map(|x| x.floor())
                .collect();
            let (g, c) = pair(gpu, cpu, &data);
            let axes_sets: [&[usize]; 7] = [&[0], &[1], &[2], &[0, 2], &[1, 2], &[0, 1, 2], &[]];
            for axes in axes_sets {
                let mut out_shape = shape.to_vec();
                for &a in axes {
                    out_shape[a] = 1;
                }
                for op in ops {
                    let got = gpu
                        .reduce(op, (&g, &view.layout), axes)
                        .expect("gpu reduce");
                    let want = cpu
                        .reduce(op, (&c, &view.layout), axes)
                        .expect("cpu reduce");
                    let case = format!("{op:?} over {axes:?} of {shape:?} {}", view.name);
                    assert_close(
                        &case,
                        &down(gpu, &got, &out_shape),
                        &down(cpu, &want, &out_shape),
                        1e-4,
                        1e-5,
                    );
                }
                if axes.len() == 1 {
                    for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
                        let got = gpu.reduce(op, (&g, &view.layout), axes).expect("gpu arg");
                        let want = cpu.reduce(op, (&c, &view.layout), axes).expect("cpu arg");
                        assert_eq!(
                            down_i(gpu, &got, &out_shape),
                            down_i(cpu, &want, &out_shape),
                            "{op:?} over {axes:?} of {}",
                            view.name
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn long_rows_reduce_in_several_passes() {
    // Rows longer than one 4096-element chunk reduce in two passes: 3 rows
    // of 20_003 (5 partials each) and one row of 2^20 + 5 (257 partials).
    on_every_gpu("reduce passes", |dev, cpu| {
        let gpu = dev.backend();
        for shape in [vec![3, 20_003], vec![(1 << 20) + 5]] {
            let n: usize = shape.iter().product();
            let mut data = values(n, 61, 0.0, 1.0);
            data[n - 2] = 7.0; // a late unique maximum
            data[1] = -1.0; // an early unique minimum
            let (g, c) = pair(gpu, cpu, &data);
            let l = Layout::contiguous(&shape);
            let axis = [shape.len() - 1];
            let mut out = shape.clone();
            out[axis[0]] = 1;
            for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
                let got = down(gpu, &gpu.reduce(op, (&g, &l), &axis).unwrap(), &out);
                let want = down(cpu, &cpu.reduce(op, (&c, &l), &axis).unwrap(), &out);
                assert_close(&format!("{op:?} of {shape:?}"), &got, &want, 1e-3, 1e-5);
            }
            for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
                let got = down_i(gpu, &gpu.reduce(op, (&g, &l), &axis).unwrap(), &out);
                let want = down_i(cpu, &cpu.reduce(op, (&c, &l), &axis).unwrap(), &out);
                assert_eq!(got, want, "{op:?} of {shape:?}");
            }
        }
    });
}

#[test]
fn nan_wins_reductions_as_on_the_cpu() {
    // Max/min propagate NaN; argmax/argmin point at the first NaN.
    let data = [1.0, f32::NAN, 3.0, -1.0, 2.0, 0.5, f32::NAN, -4.0, 9.0];
    let l = Layout::contiguous(&[3, 3]);
    on_every_gpu("nan reduce", |dev, cpu| {
        let gpu = dev.backend();
        let (g, c) = pair(gpu, cpu, &data);
        for axes in [[0], [1]] {
            let mut out = vec![3, 3];
            out[axes[0]] = 1;
            for op in [ReduceOp::Max, ReduceOp::Min, ReduceOp::Sum] {
                let got = down(gpu, &gpu.reduce(op, (&g, &l), &axes).unwrap(), &out);
                let want = down(cpu, &cpu.reduce(op, (&c, &l), &axes).unwrap(), &out);
                assert_close(
                    &format!("{op:?} over {axes:?} with NaN"),
                    &got,
                    &want,
                    1e-6,
                    1e-6,
                );
            }
            for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
                let got = down_i(gpu, &gpu.reduce(op, (&g, &l), &axes).unwrap(), &out);
                let want = down_i(cpu, &cpu.reduce(op, (&c, &l), &axes).unwrap(), &out);
                assert_eq!(got, want, "{op:?} over {axes:?} with NaN");
            }
        }
    });
}

#[test]
fn column_reductions_take_several_passes_with_ties_and_nan() {
    // Outputs that are one contiguous row of columns (a Linear's bias
    // gradient) reduce a thread per column, chunks of rows at a time, the
    // partials again as columns: 5,000 rows of 40 columns take three
    // passes, 300 of 600 two, and reducing dims 0 and 1 of [2, 700, 33]
    // folds two strided dims. Coarse values make ties; a NaN lands in a
    // late chunk of one column.
    on_every_gpu("column reduce", |dev, cpu| {
        let gpu = dev.backend();
        let cases: [(&[usize], &[usize]); 4] = [
            (&[5000, 40], &[0]),
            (&[300, 600], &[0]),
            (&[2, 700, 33], &[0, 1]),
            (&[37, 64], &[0]),
        ];
        for (shape, axes) in cases {
            let n: usize = shape.iter().product();
            let mut data: Vec<f32> = values(n, 71, -8.0, 8.0).iter().map(|x| x.floor()).collect();
            let last = shape[shape.len() - 1];
            data[n - 2 * last + 3] = f32::NAN;
            let (g, c) = pair(gpu, cpu, &data);
            let l = Layout::contiguous(shape);
            let mut out = shape.to_vec();
            for &a in axes {
                out[a] = 1;
            }
            for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
                let got = down(gpu, &gpu.reduce(op, (&g, &l), axes).unwrap(), &out);
                let want = down(cpu, &cpu.reduce(op, (&c, &l), axes).unwrap(), &out);
                assert_close(
                    &format!("{op:?} of {shape:?} over {axes:?}"),
                    &got,
                    &want,
                    1e-3,
                    1e-5,
                );
            }
            if axes.len() == 1 {
                for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
                    let got = down_i(gpu, &gpu.reduce(op, (&g, &l), axes).unwrap(), &out);
                    let want = down_i(cpu, &cpu.reduce(op, (&c, &l), axes).unwrap(), &out);
                    assert_eq!(got, want, "{op:?} of {shape:?}");
                }
            }
        }
    });
}
