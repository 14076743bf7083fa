//! unfold, fold, max_pool and max_pool_grad against the CPU on awkward
//! views (transposed, narrowed with an odd offset, broadcast along the
//! batch) and awkward geometries (unequal axes, stride, dilation, padding,
//! windows that overlap and windows that skip pixels). max_pool's input has
//! ties (values on a coarse grid) so the first-maximum rule is compared too.

use lam_core::backend::WindowGeometry;
use lam_core::Layout;

use super::{on_every_gpu, pair};
use crate::common::*;

/// `[kernel, stride, padding, dilation]`, each `[h, w]`.
const GEOMETRIES: [[[usize; 2]; 4]; 4] = [
    [[3, 2], [1, 2], [1, 1], [1, 2]],
    [[2, 2], [2, 2], [0, 0], [1, 1]],
    [[1, 3], [3, 1], [0, 1], [1, 1]],
    [[3, 3], [2, 3], [1, 1], [2, 1]],
];

fn geometry(dims: &[usize], [k, s, p, d]: [[usize; 2]; 4]) -> WindowGeometry {
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

#[test]
fn max_pool_and_its_gradient_match_cpu() {
    let dims = [2, 3, 8, 9];
    on_every_gpu("max_pool", |dev, cpu| {
        let gpu = dev.backend();
        for view in awkward_views(&dims) {
            // Coarse values: many ties, so the first maximum must win.
            let data: Vec<f32> = values(view.len, 93, -3.0, 3.0)
                .into_iter()
                .map(f32::round)
                .collect();
            let (gs, cs) = pair(gpu, cpu, &data);
            for (gi, &geo) in GEOMETRIES.iter().enumerate() {
                let g = geometry(&dims, geo);
                let out = g.out_shape();
                let (gv, gt) = gpu.max_pool((&gs, &view.layout), &g).unwrap();
                let (cv, ct) = cpu.max_pool((&cs, &view.layout), &g).unwrap();
                let case = format!("max_pool geometry {gi} of {}", view.name);
                assert_close(
                    &case,
                    &down(gpu, &gv, &out),
                    &down(cpu, &cv, &out),
                    0.0,
                    0.0,
                );
                assert_eq!(
                    down_i(gpu, &gt, &out),
                    down_i(cpu, &ct, &out),
                    "{case}: taps"
                );

                // The gradient through a transposed view of the upstream
                // gradient and of the taps.
                let n: usize = out.iter().product();
                let mut stored = out;
                stored.swap(2, 3);
                let tl = Layout::contiguous(&stored).permute(&[0, 1, 3, 2]).unwrap();
                let taps_t: Vec<i32> = {
                    // The CPU's taps rewritten in the transposed storage order.
                    let t = down_i(cpu, &ct, &out);
                    (0..n)
                        .map(|e| {
                            let (p, x, y) =
                                (e / (out[2] * out[3]), e / out[2] % out[3], e % out[2]);
                            t[(p * out[2] + y) * out[3] + x]
                        })
                        .collect()
                };
                let (gtt, ctt) = (up_i(gpu, &taps_t), up_i(cpu, &taps_t));
                let (gg, cg) = pair(gpu, cpu, &values(n, 94, -1.0, 1.0));
                let got = gpu.max_pool_grad((&gg, &tl), (&gtt, &tl), &g).unwrap();
                let want = cpu.max_pool_grad((&cg, &tl), (&ctt, &tl), &g).unwrap();
                let img = g.image_shape();
                let case = format!("max_pool_grad geometry {gi} of {}", view.name);
                assert_close(
                    &case,
                    &down(gpu, &got, &img),
                    &down(cpu, &want, &img),
                    1e-6,
                    1e-6,
                );
            }
        }
    });
}
