//! Fused cross-entropy (per-row losses and the gradient of their mean)
//! against the CPU's fused kernel, or an f64 reference built on softmax.rs's.

use lam_core::{Backend, Layout, Storage};

use super::softmax::{reference_softmax, SHAPES};
use super::{on_every_gpu, pair};
use crate::common::*;

#[test]
fn fused_cross_entropy_matches_cpu() {
    on_every_gpu("fused cross-entropy", |dev, cpu| {
        let gpu = dev.backend();
        for shape in SHAPES {
            for view in awkward_views(&shape) {
                let (g, c) = pair(gpu, cpu, &values(view.len, 91, -30.0, 30.0));
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

/// F16 logits, read as halves, give the bits of their F32 cast through the
/// same kernel (NaN and infinities among them); the CPU declines them.
#[test]
fn fused_cross_entropy_reads_halves_as_their_f32_cast() {
    on_every_gpu("fused cross-entropy f16", |dev, cpu| {
        let gpu = dev.backend();
        for shape in SHAPES {
            for view in awkward_views(&shape) {
                let mut x = values(view.len, 93, -30.0, 30.0);
                // A NaN and an infinity in some rows, 70000 (inf as a half) in another.
                for (i, v) in x.iter_mut().enumerate().filter(|(i, _)| i % 97 == 5) {
                    *v = [f32::NAN, f32::INFINITY, 70000.0][i % 3];
                }
                let all = Layout::contiguous(&[view.len]);
                let h = gpu
                    .cast((&up(gpu, &x), &all), lam_core::DType::F16)
                    .expect("to f16");
                let wide = gpu.cast((&h, &all), lam_core::DType::F32).expect("to f32");
                let (rows, cols) = (shape[0], shape[1]);
                let t = up_i(gpu, &indices(rows, 94, cols));
                let tl = Layout::contiguous(&[rows]);
                let run = |s: &Storage| {
                    let (l, g) = gpu
                        .fused_cross_entropy((s, &view.layout), (&t, &tl))
                        .expect("cross-entropy")
                        .expect("gpu fuses");
                    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    (bits(down(gpu, &l, &[rows])), bits(down(gpu, &g, &shape)))
                };
                let case = format!("cross-entropy f16 {shape:?} {}", view.name);
                assert!(run(&h) == run(&wide), "{case}: differs from the F32 cast");
            }
        }
        let h = cpu
            .cast(
                (&up(cpu, &[1.0, 2.0]), &Layout::contiguous(&[2])),
                lam_core::DType::F16,
            )
            .expect("to f16");
        let t = up_i(cpu, &[1]);
        let declined = cpu
            .fused_cross_entropy(
                (&h, &Layout::contiguous(&[1, 2])),
                (&t, &Layout::contiguous(&[1])),
            )
            .expect("no error");
        assert!(declined.is_none(), "lam-cpu declines F16 logits");
    });
}
