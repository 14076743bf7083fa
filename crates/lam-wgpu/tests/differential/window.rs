//! unfold and fold against the CPU on awkward views (transposed, narrowed
//! with an odd offset, broadcast along the batch) and awkward geometries
//! (unequal axes, stride, dilation, padding, windows that overlap and
//! windows that skip pixels), which max_pool.rs reuses.

use lam_core::backend::WindowGeometry;

use super::{on_every_gpu, pair};
use crate::common::*;

/// `[kernel, stride, padding, dilation]`, each `[h, w]`.
pub(crate) const GEOMETRIES: [[[usize; 2]; 4]; 4] = [
    [[3, 2], [1, 2], [1, 1], [1, 2]],
    [[2, 2], [2, 2], [0, 0], [1, 1]],
    [[1, 3], [3, 1], [0, 1], [1, 1]],
    [[3, 3], [2, 3], [1, 1], [2, 1]],
];

pub(crate) fn geometry(dims: &[usize], [k, s, p, d]: [[usize; 2]; 4]) -> WindowGeometry {
    let out = |a: usize| (dims[2 + a] + 2 * p[a] - d[a] * (k[a] - 1) - 1) / s[a] + 1;
    WindowGeometry {
        n: dims[0],
        c: dims[1],
        h: dims[2],
        w: dims[3],
        kernel: k,
        stride: s,
        padding: p,
        dilation: d,
        out: [out(0), out(1)],
    }
}

#[test]
fn unfold_and_fold_match_cpu() {
    let dims = [3, 2, 9, 7];
    on_every_gpu("window", |dev, cpu| {
        let gpu = dev.backend();
        for view in awkward_views(&dims) {
            let (gs, cs) = pair(gpu, cpu, &values(view.len, 91, -1.0, 1.0));
            for (gi, &geo) in GEOMETRIES.iter().enumerate() {
                let g = geometry(&dims, geo);
                let case = format!("unfold geometry {gi} of {}", view.name);
                let got = gpu.unfold((&gs, &view.layout), &g, -2.5).unwrap();
                let want = cpu.unfold((&cs, &view.layout), &g, -2.5).unwrap();
                let cols = g.cols_shape();
                // A copy: exact.
                assert_close(
                    &case,
                    &down(gpu, &got, &cols),
                    &down(cpu, &want, &cols),
                    0.0,
                    0.0,
                );

                // fold of columns given as an awkward view of their own.
                for cview in awkward_views(&cols) {
                    let (gc, cc) = pair(gpu, cpu, &values(cview.len, 92, -1.0, 1.0));
                    let got = gpu.fold((&gc, &cview.layout), &g).unwrap();
                    let want = cpu.fold((&cc, &cview.layout), &g).unwrap();
                    let case = format!("fold geometry {gi} of {} columns", cview.name);
                    let img = g.image_shape();
                    assert_close(
                        &case,
                        &down(gpu, &got, &img),
                        &down(cpu, &want, &img),
                        1e-5,
                        1e-5,
                    );
                }
            }
        }
    });
}
