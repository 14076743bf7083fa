//! Fused softmax and log-softmax against the CPU's fused kernel (or an f64
//! reference where the CPU composes instead), on awkward views of short,
//! odd and long rows.

use lam_core::{Backend, Layout, Storage};

use super::{on_every_gpu, pair};
use crate::common::*;

/// `[rows, cols]` shapes: one element, odd sizes, rows longer than a workgroup.
pub(crate) const SHAPES: [[usize; 2]; 4] = [[1, 1], [3, 17], [17, 129], [2, 1000]];

#[test]
fn fused_softmax_matches_cpu() {
    on_every_gpu("fused softmax", |dev, cpu| {
        let gpu = dev.backend();
        for shape in SHAPES {
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
            }
        }
    });
}

/// The CPU's fused softmax, or its composite when the CPU does not fuse.
pub(crate) fn reference_softmax(cpu: &dyn Backend, s: &Storage, l: &Layout, log: bool) -> Vec<f32> {
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
