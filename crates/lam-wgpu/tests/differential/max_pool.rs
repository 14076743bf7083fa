//! max_pool and max_pool_grad against the CPU on awkward views and the
//! window geometries of window.rs. The input has ties (values on a coarse
//! grid) so the first-maximum rule is compared too.

use lam_core::Layout;

use super::window::{geometry, GEOMETRIES};
use super::{on_every_gpu, pair};
use crate::common::*;

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
