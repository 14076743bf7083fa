//! index_select, gather and scatter_add along every dim of awkward views,
//! with repeated indices (scatter collisions), against the CPU; scatter_add
//! through both its general path and its per-row-list path (an index that
//! varies only along `dim`, as in every index_select gradient).

use lam_core::Layout;

use super::{on_every_gpu, pair};
use crate::common::*;

#[test]
fn index_select_gather_scatter_add_match_cpu() {
    on_every_gpu("index", |dev, cpu| {
        let gpu = dev.backend();
        let shape = [3, 17, 5];
        for view in awkward_views(&shape) {
            let (gs, cs) = pair(gpu, cpu, &values(view.len, 81, -1.0, 1.0));
            for dim in 0..3 {
                // index_select with repeats, through a narrowed index view.
                let idx = indices(9, 82 + dim as u64, shape[dim]);
                let (gi, ci) = (up_i(gpu, &idx), up_i(cpu, &idx));
                let il = Layout::contiguous(&[9]).narrow(0, 2, 6).unwrap();
                let mut out = shape.to_vec();
                out[dim] = 6;
                let got = gpu
                    .index_select((&gs, &view.layout), dim, (&gi, &il))
                    .unwrap();
                let want = cpu
                    .index_select((&cs, &view.layout), dim, (&ci, &il))
                    .unwrap();
                let case = format!("index_select dim {dim} of {}", view.name);
                assert_close(
                    &case,
                    &down(gpu, &got, &out),
                    &down(cpu, &want, &out),
                    0.0,
                    0.0,
                );

                // gather with an index smaller than src off `dim`.
                let mut ishape = vec![2, 9, 4];
                ishape[dim] = 7;
                let n: usize = ishape.iter().product();
                let idx = indices(n, 83 + dim as u64, shape[dim]);
                let (gi, ci) = (up_i(gpu, &idx), up_i(cpu, &idx));
                let il = Layout::contiguous(&ishape);
                let got = gpu.gather((&gs, &view.layout), dim, (&gi, &il)).unwrap();
                let want = cpu.gather((&cs, &view.layout), dim, (&ci, &il)).unwrap();
                let case = format!("gather dim {dim} of {}", view.name);
                assert_close(
                    &case,
                    &down(gpu, &got, &ishape),
                    &down(cpu, &want, &ishape),
                    0.0,
                    0.0,
                );

                // scatter_add of that index (many collisions) with src
                // taken from the view being tested, narrowed to ishape.
                let mut sl = view.layout.clone();
                for (d, &size) in ishape.iter().enumerate() {
                    sl = sl.narrow(d, 0, size.min(shape[d])).unwrap();
                }
                if sl.shape != ishape {
                    continue; // the view is smaller than the index along dim
                }
                let got = gpu
                    .scatter_add(&shape, dim, (&gi, &il), (&gs, &sl))
                    .unwrap();
                let want = cpu
                    .scatter_add(&shape, dim, (&ci, &il), (&cs, &sl))
                    .unwrap();
                let case = format!("scatter_add dim {dim} from {}", view.name);
                assert_close(
                    &case,
                    &down(gpu, &got, &shape),
                    &down(cpu, &want, &shape),
                    1e-6,
                    1e-6,
                );
            }
        }
    });
}

#[test]
fn scatter_add_of_a_broadcast_index_matches_cpu() {
    // The gradient of index_select (embeddings): a 1-d
    // index, here narrowed to an offset, broadcast (stride 0) along the other
    // dims. It takes the per-row list path; repeats must sum in index order.
    let shape = [5, 17, 6];
    on_every_gpu("scatter rows", |dev, cpu| {
        let gpu = dev.backend();
        for dim in 0..3 {
            let len = 40;
            let idx = indices(len + 3, 131 + dim as u64, shape[dim]);
            let (gi, ci) = (up_i(gpu, &idx), up_i(cpu, &idx));
            // One dim smaller than the output, so part of the output gets nothing.
            let mut ishape = shape.to_vec();
            ishape[dim] = len;
            let other = (dim + 1) % 3;
            ishape[other] -= 1;
            let mut strides = vec![0; 3];
            strides[dim] = 1;
            let il = Layout {
                shape: ishape.clone(),
                strides,
                offset: 3,
            };
            for sv in awkward_views(&ishape) {
                let (gs, cs) = pair(gpu, cpu, &values(sv.len, 132, -1.0, 1.0));
                let got = gpu
                    .scatter_add(&shape, dim, (&gi, &il), (&gs, &sv.layout))
                    .unwrap();
                let want = cpu
                    .scatter_add(&shape, dim, (&ci, &il), (&cs, &sv.layout))
                    .unwrap();
                let case = format!("scatter_add (broadcast index) dim {dim} from {}", sv.name);
                assert_close(
                    &case,
                    &down(gpu, &got, &shape),
                    &down(cpu, &want, &shape),
                    1e-6,
                    1e-6,
                );
            }
        }
        // A convolution-sized inversion: 3 images of 785 columns gathered by
        // 9 taps x 784 positions (every column hit about 9 times).
        let (rows, len) = (785, 9 * 784);
        let idx = indices(len, 133, rows);
        let (gi, ci) = (up_i(gpu, &idx), up_i(cpu, &idx));
        let il = Layout::contiguous(&[len]).broadcast_to(&[3, len]).unwrap();
        let sl = Layout::contiguous(&[3, len]);
        let (gs, cs) = pair(gpu, cpu, &values(3 * len, 134, -1.0, 1.0));
        let got = gpu
            .scatter_add(&[3, rows], 1, (&gi, &il), (&gs, &sl))
            .unwrap();
        let want = cpu
            .scatter_add(&[3, rows], 1, (&ci, &il), (&cs, &sl))
            .unwrap();
        assert_close(
            "im2col-sized scatter_add",
            &down(gpu, &got, &[3, rows]),
            &down(cpu, &want, &[3, rows]),
            1e-5,
            1e-5,
        );
    });
}
