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
