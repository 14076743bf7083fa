//! Index checks on the device: every index kernel (index_select, gather,
//! both scatter_add paths, cross-entropy's targets) records an out-of-range
//! index instead of reading there, and the next readback or `synchronize`
//! returns it as `Error::OutOfRange` — without an extra submit — then the
//! device goes on working.
//!
//! Each test opens a private device per adapter: a fault belongs to the
//! device, and would otherwise surface in a test running beside it.

mod common;

use common::*;
use lam_core::{Backend, Device, Error, Layout, Storage};
use lam_wgpu::GpuOptions;

/// A private device per adapter found.
fn devices(test: &str) -> Vec<Device> {
    gpus(test)
        .iter()
        .map(|shared| private_device(shared, GpuOptions::default()))
        .collect()
}

/// Asserts that reading `s` fails with the device's report of `op` meeting
/// `index` in a dim of `size`, in exactly one submit.
fn read_fails(b: &dyn Backend, s: &Storage, len: usize, op: &str, index: i64, size: usize) {
    let before = b.stats().submits;
    let e = b
        .read_f32((s, &Layout::contiguous(&[len])))
        .expect_err("the readback reports the fault");
    assert_eq!(
        b.stats().submits,
        before + 1,
        "one submit for data and fault"
    );
    match &e {
        Error::OutOfRange {
            op: name,
            index: i,
            size: n,
        } => {
            assert!(name.starts_with(op), "{e}");
            assert_eq!((*i, *n), (index, size), "{e}");
        }
        _ => panic!("expected OutOfRange from {op}, got {e:?}"),
    }
    assert!(e.to_string().contains("device"), "{e}");
}

/// A fresh correct op on `b` reads back right: the fault is cleared.
fn still_works(b: &dyn Backend) {
    let x = up(b, &[1.0, 2.0, 3.0]);
    let i = up_i(b, &[2, 0]);
    let l = Layout::contiguous(&[3]);
    let y = b
        .index_select((&x, &l), 0, (&i, &Layout::contiguous(&[2])))
        .unwrap();
    assert_eq!(down(b, &y, &[2]), vec![3.0, 1.0]);
}

#[test]
fn each_index_op_reports_an_out_of_range_index_at_the_next_readback() {
    for dev in devices("range faults") {
        let b = dev.backend();
        let x = up(b, &values(12, 1, -1.0, 1.0));
        let l = Layout::contiguous(&[3, 4]);

        let i = up_i(b, &[0, 1000]);
        let y = b
            .index_select((&x, &l), 0, (&i, &Layout::contiguous(&[2])))
            .expect("recorded, not checked on the host");
        read_fails(b, &y, 8, "index_select", 1000, 3);
        still_works(b);

        let i = up_i(b, &[0, 1, -1, 3, 2, 1]);
        let y = b
            .gather((&x, &l), 1, (&i, &Layout::contiguous(&[3, 2])))
            .unwrap();
        read_fails(b, &y, 6, "gather", -1, 4);
        still_works(b);

        // scatter_add's general path (the index varies along both dims) ...
        let src = up(b, &[1.0; 6]);
        let i = up_i(b, &[0, 1, 2, 0, 5, 1]);
        let il = Layout::contiguous(&[2, 3]);
        let y = b.scatter_add(&[3, 3], 0, (&i, &il), (&src, &il)).unwrap();
        read_fails(b, &y, 9, "scatter_add", 5, 3);
        still_works(b);
        // ... and its row-list path (a 1-d index broadcast along dim 1).
        let i = up_i(b, &[0, 7]);
        let il = Layout::contiguous(&[2, 1]).broadcast_to(&[2, 3]).unwrap();
        let y = b
            .scatter_add(&[3, 3], 0, (&i, &il), (&src, &Layout::contiguous(&[2, 3])))
            .unwrap();
        read_fails(b, &y, 9, "scatter_add", 7, 3);
        still_works(b);
        // Into an empty dim, where no output element exists to scan the index.
        let y = b
            .scatter_add(&[0, 3], 0, (&i, &il), (&src, &Layout::contiguous(&[2, 3])))
            .unwrap();
        b.synchronize()
            .expect_err("every index is outside an empty dim");
        assert_eq!(y.len(), 0);
        still_works(b);

        let t = up_i(b, &[0, 7, 1]);
        let (loss, _) = b
            .fused_cross_entropy(
                (&x, &Layout::contiguous(&[3, 4])),
                (&t, &Layout::contiguous(&[3])),
            )
            .unwrap()
            .expect("the GPU fuses cross-entropy");
        read_fails(b, &loss, 3, "cross_entropy", 7, 4);
        still_works(b);
    }
}

#[test]
fn the_first_fault_survives_later_faults_and_submits() {
    for dev in devices("several faults") {
        let b = dev.backend();
        let x = up(b, &[1.0, 2.0, 3.0]);
        let l = Layout::contiguous(&[3]);
        let il = Layout::contiguous(&[4]);
        // Every element of one dispatch faults, then a second op faults too.
        let bad = up_i(b, &[3, 4, 5, -6]);
        b.index_select((&x, &l), 0, (&bad, &il)).unwrap();
        let t = up_i(b, &[9]);
        b.fused_cross_entropy(
            (&x, &Layout::contiguous(&[1, 3])),
            (&t, &Layout::contiguous(&[1])),
        )
        .unwrap();
        // Past the dispatch threshold the queue submits without a readback;
        // the words stay recorded across those submits.
        let before = b.stats().submits;
        let mut y = up(b, &[0.0]);
        for _ in 0..600 {
            y = b
                .unary(
                    lam_core::backend::UnaryOp::Neg,
                    (&y, &Layout::contiguous(&[1])),
                )
                .unwrap();
        }
        assert!(
            b.stats().submits > before,
            "600 dispatches submit by themselves"
        );
        let e = b.synchronize().expect_err("the fault survives the submits");
        let Error::OutOfRange { op, index, size } = e else {
            panic!("expected OutOfRange, got {e:?}");
        };
        assert!(
            op.starts_with("index_select"),
            "the first fault is kept: {op}"
        );
        assert!(
            (3..=6).contains(&index.abs()) && size == 3,
            "{index} {size}"
        );
        // Reported once, then cleared.
        b.synchronize().expect("cleared after the report");
        assert_eq!(down(b, &y, &[1]), vec![0.0]);
        still_works(b);
    }
}

#[test]
fn valid_indices_cost_no_extra_submit() {
    for dev in devices("no fault") {
        let b = dev.backend();
        let x = up(b, &values(12, 2, -1.0, 1.0));
        let l = Layout::contiguous(&[3, 4]);
        let i = up_i(b, &[2, 0, 1]);
        let before = b.stats().submits;
        let y = b
            .index_select((&x, &l), 0, (&i, &Layout::contiguous(&[3])))
            .unwrap();
        let t = up_i(b, &[3, 0, 2]);
        let (loss, _) = b
            .fused_cross_entropy((&y, &l), (&t, &Layout::contiguous(&[3])))
            .unwrap()
            .unwrap();
        assert_eq!(b.stats().submits, before, "ops alone submit nothing");
        assert_eq!(down(b, &loss, &[3]).len(), 3);
        assert_eq!(b.stats().submits, before + 1, "one readback, one submit");
    }
}
