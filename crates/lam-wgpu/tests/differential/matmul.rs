//! Batched matmul on awkward shapes (1, 3, 17, 63, 129, tile multiples and
//! near misses, K = 0) with transposed, batch-broadcast and narrowed
//! operands, so every load mode and the edge paths run, against the CPU.

use lam_core::Layout;

use super::{on_every_gpu, pair};
use crate::common::*;

/// `[b, r, c]` views for matmul operands: plain, transposed storage, a
/// broadcast batch (stride 0), and an odd-offset narrowed view.
fn matmul_views(b: usize, r: usize, c: usize) -> Vec<ViewCase> {
    let mut cases = vec![ViewCase {
        name: "contiguous",
        layout: Layout::contiguous(&[b, r, c]),
        len: b * r * c,
    }];
    cases.push(ViewCase {
        name: "transposed",
        layout: Layout::contiguous(&[b, c, r]).permute(&[0, 2, 1]).unwrap(),
        len: b * r * c,
    });
    cases.push(ViewCase {
        name: "batch-broadcast",
        layout: Layout::contiguous(&[1, r, c])
            .broadcast_to(&[b, r, c])
            .unwrap(),
        len: r * c,
    });
    cases.push(ViewCase {
        name: "narrowed",
        layout: Layout::contiguous(&[b, r + 1, c + 3])
            .narrow(1, 1, r)
            .unwrap()
            .narrow(2, 1, c)
            .unwrap(),
        len: b * (r + 1) * (c + 3),
    });
    cases
}

#[test]
fn matmul_matches_cpu_on_awkward_shapes_and_strides() {
    // (batch, m, k, n): ones, primes, tile multiples and near-misses.
    let shapes = [
        (1, 1, 1, 1),
        (1, 3, 17, 5),
        (2, 17, 3, 129),
        (1, 64, 32, 64),
        (2, 63, 129, 65),
        (3, 129, 64, 17),
        (1, 128, 128, 128),
        (2, 68, 36, 44),
        (1, 7, 0, 9),
    ];
    on_every_gpu("matmul", |dev, cpu| {
        let gpu = dev.backend();
        for (batch, m, k, n) in shapes {
            let (avs, bvs) = (matmul_views(batch, m, k), matmul_views(batch, k, n));
            for (i, av) in avs.iter().enumerate() {
                // Every A view meets two B views, so all pairs of kinds occur.
                for bv in [&bvs[i], &bvs[(i + 1) % bvs.len()]] {
                    let (ga, ca) = pair(gpu, cpu, &values(av.len, 71, -1.0, 1.0));
                    let (gb, cb) = pair(gpu, cpu, &values(bv.len, 72, -1.0, 1.0));
                    let got = gpu
                        .matmul((&ga, &av.layout), (&gb, &bv.layout))
                        .expect("gpu matmul");
                    let want = cpu
                        .matmul((&ca, &av.layout), (&cb, &bv.layout))
                        .expect("cpu matmul");
                    let out = [batch, m, n];
                    let case = format!("matmul {batch}x{m}x{k}x{n} {} x {}", av.name, bv.name);
                    // Rounding grows with the reduction length K.
                    let atol = 1e-6 * (k.max(1) as f32) * 4.0;
                    assert_close(
                        &case,
                        &down(gpu, &got, &out),
                        &down(cpu, &want, &out),
                        atol,
                        1e-5,
                    );
                }
            }
        }
    });
}
