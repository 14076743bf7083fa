//! Fused softmax, log-softmax, cross-entropy and Adam against the CPU's
//! fused kernels (or an f64 reference where the CPU composes instead), and
//! zero-length tensors through every path.

use lam_core::backend::{AdamStep, Distribution, ReduceOp, UnaryOp};
use lam_core::{Backend, DType, Layout, Storage};

use super::{on_every_gpu, pair};
use crate::common::*;

#[test]
fn fused_softmax_and_cross_entropy_match_cpu() {
    on_every_gpu("fused softmax", |dev, cpu| {
        let gpu = dev.backend();
        for shape in [[1, 1], [3, 17], [17, 129], [2, 1000]] {
            for view in awkward_views(&shape) {
                let (g, c) = pair(gpu, cpu, &values(view.len, 91, -30.0, 30.0));
                for log in [false, true] {
                    let got = gpu
                        .fused_softmax((&g, &view.layout), log)
                        .unwrap()
                        .expect("gpu fuses");
                    let want = reference_softmax(cpu, &c, &view.layout, log);
                    let case = format!("softmax(log={log}) {shape:?} {}", view.name);
                    assert_close(&case, &down(gpu, &got, &shape), &want, 1e-6, 1e-5);
                }
                let (rows, cols) = (shape[0], shape[1]);
                let t = indices(rows, 92, cols);
                let (gt, ct) = (up_i(gpu, &t), up_i(cpu, &t));
                let tl = Layout::contiguous(&[rows]);
                let (gl, gg) = gpu
                    .fused_cross_entropy((&g, &view.layout), (&gt, &tl))
                    .unwrap()
                    .expect("gpu fuses");
                let (wl, wg) = reference_cross_entropy(cpu, (&c, &view.layout), (&ct, &tl));
                let case = format!("cross-entropy {shape:?} {}", view.name);
                assert_close(
                    &format!("{case} loss"),
                    &down(gpu, &gl, &[rows]),
                    &wl,
                    1e-5,
                    1e-5,
                );
                assert_close(
                    &format!("{case} grad"),
                    &down(gpu, &gg, &shape),
                    &wg,
                    1e-7,
                    1e-5,
                );
            }
        }
    });
}

/// The CPU's fused softmax, or its composite when the CPU does not fuse.
fn reference_softmax(cpu: &dyn Backend, s: &Storage, l: &Layout, log: bool) -> Vec<f32> {
    if let Some(out) = cpu.fused_softmax((s, l), log).unwrap() {
        return down(cpu, &out, &l.shape);
    }
    let x = cpu.read_f32((s, l)).unwrap();
    let cols = l.shape[1];
    x.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
            let sum: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            row.iter()
                .map(move |&v| {
                    let z = v as f64 - m;
                    (if log { z - sum.ln() } else { z.exp() / sum }) as f32
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The CPU's fused cross-entropy (loss, grad), or an f64 reference.
fn reference_cross_entropy(
    cpu: &dyn Backend,
    (s, l): (&Storage, &Layout),
    (t, tl): (&Storage, &Layout),
) -> (Vec<f32>, Vec<f32>) {
    if let Some((loss, grad)) = cpu.fused_cross_entropy((s, l), (t, tl)).unwrap() {
        return (down(cpu, &loss, &l.shape[..1]), down(cpu, &grad, &l.shape));
    }
    let (rows, cols) = (l.shape[0], l.shape[1]);
    let logp = reference_softmax(cpu, s, l, true);
    let targets = cpu.read_i32((t, tl)).unwrap();
    let loss = (0..rows)
        .map(|r| -logp[r * cols + targets[r] as usize])
        .collect();
    let grad = (0..rows * cols)
        .map(|i| {
            let hit = if i % cols == targets[i / cols] as usize {
                1.0
            } else {
                0.0
            };
            ((logp[i] as f64).exp() - hit) as f32 / rows as f32
        })
        .collect();
    (loss, grad)
}

#[test]
fn fused_adam_matches_cpu_for_adam_and_adamw() {
    on_every_gpu("fused adam", |dev, cpu| {
        let gpu = dev.backend();
        let n = 1000;
        for decoupled in [false, true] {
            let init = [values(n, 101, -1.0, 1.0), vec![0.0; n], vec![0.0; n]];
            let (gp, cp) = pair(gpu, cpu, &init[0]);
            let (gm, cm) = pair(gpu, cpu, &init[1]);
            let (gv, cv) = pair(gpu, cpu, &init[2]);
            for step in 1..=3u32 {
                let grad = values(n, 110 + u64::from(step), -0.5, 0.5);
                let (gg, cg) = pair(gpu, cpu, &grad);
                let s = AdamStep {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.05,
                    decoupled,
                    step,
                };
                assert!(
                    gpu.fused_adam(&gp, &gg, &gm, &gv, &s).unwrap(),
                    "gpu fuses adam"
                );
                if !cpu.fused_adam(&cp, &cg, &cm, &cv, &s).unwrap() {
                    eprintln!("fused adam: the CPU does not fuse Adam; comparing GPU runs only");
                    return;
                }
            }
            for (name, g, c) in [("param", &gp, &cp), ("m", &gm, &cm), ("v", &gv, &cv)] {
                let case = format!("adam (decoupled {decoupled}) {name}");
                assert_close(&case, &down(gpu, g, &[n]), &down(cpu, c, &[n]), 1e-6, 1e-5);
            }
        }
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
