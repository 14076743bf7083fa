//! BatchNorm's running-statistics update (`fused_batch_norm_running`)
//! against lam-cpu's, which computes lam-core's composition bit for bit:
//! statistics as rows of one buffer (at offsets) and as strided columns,
//! momenta 0.1, 1 and 0, with and without a batch count (at an offset
//! inside a larger buffer), one channel and 300 (more than a workgroup).

use lam_core::backend::BatchNormRunning;
use lam_core::{Backend, Layout};

use super::on_every_gpu;
use crate::common::*;

#[test]
fn running_statistics_update_matches_cpu_on_offset_and_strided_views() {
    on_every_gpu("batch_norm_running", |dev, cpu| {
        let gpu = dev.backend();
        for c in [1, 300] {
            // Running mean and variance as rows 1 and 3 of a [4, c] buffer;
            // the batch's mean and variance as columns 0 and 2 of [c, 3].
            let rows = values(4 * c, 41, 0.0, 2.0);
            let cols = values(3 * c, 42, 0.0, 2.0);
            let row = |r: usize| Layout::contiguous(&[4, c]).narrow(0, r, 1).unwrap();
            let row = |r: usize| row(r).reshape(&[c]).unwrap_or_else(|| panic!("row {r}"));
            let col = |k: usize| {
                let l = Layout::contiguous(&[c, 3]).narrow(1, k, 1).unwrap();
                Layout {
                    shape: vec![c],
                    strides: vec![3],
                    offset: l.offset,
                }
            };
            let views = [row(1), row(3), col(0), col(2)];
            let counts = [7, 41, -3];
            let count_at = Layout {
                shape: vec![],
                strides: vec![],
                offset: 1,
            };
            for (momentum, with_count) in [(0.1, true), (1.0, false), (0.0, true)] {
                let correction = 10.0 / 9.0;
                let run = |b: &dyn Backend| {
                    let (r, s) = (up(b, &rows), up(b, &cols));
                    let n = up_i(b, &counts);
                    let src = [&r, &r, &s, &s];
                    let v = |i: usize| (src[i], &views[i]);
                    let update = BatchNormRunning {
                        running_mean: v(0),
                        running_var: v(1),
                        mean: v(2),
                        var: v(3),
                        count: with_count.then_some((&n, &count_at)),
                        momentum,
                        correction,
                    };
                    let (m, v2, n) = b
                        .fused_batch_norm_running(update)
                        .expect("running update")
                        .expect("the backend fuses it");
                    let n = n.map(|n| down_i(b, &n, &[1]));
                    (down(b, &m, &[c]), down(b, &v2, &[c]), n)
                };
                let (got, want) = (run(gpu), run(cpu));
                let case = format!("{c} channels, momentum {momentum}");
                // A driver may fuse a product into the sum: one rounding
                // fewer, at most an ulp or so apart.
                assert_close(&format!("{case}: mean"), &got.0, &want.0, 0.0, 4e-7);
                assert_close(&format!("{case}: variance"), &got.1, &want.1, 0.0, 4e-7);
                assert_eq!(got.2, want.2, "{case}: count");
                assert_eq!(want.2, with_count.then_some(vec![42]), "{case}: count");
            }
        }
    });
}
