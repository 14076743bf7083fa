//! Tests of `matmul` and `fused_linear`: products through the backend
//! against the definition, with shapes and views chosen to take each path
//! `product` picks (row by row, transposed, bands of rows, a row-major copy
//! of the right operand, parallel over the batch), and the shape errors.
//! They sit apart from `matmul.rs` so that the product's code reads
//! without them.

use lam_core::{Backend, Layout};

use crate::test_util::*;

/// `[B, M, K] x [B, K, N]` by the definition, reading both views through
/// their offsets, in f64.
fn naive(a: &[f32], la: &Layout, b: &[f32], lb: &Layout) -> Vec<f32> {
    let (ia, ib): (Vec<usize>, Vec<usize>) = (la.offsets().collect(), lb.offsets().collect());
    let [batch, m, k] = [la.shape[0], la.shape[1], la.shape[2]];
    let n = lb.shape[2];
    let mut out = vec![0.0; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| {
                        let x = a[ia[(bi * m + i) * k + p]] as f64;
                        let y = b[ib[(bi * k + p) * n + j]] as f64;
                        x * y
                    })
                    .sum();
                out[(bi * m + i) * n + j] = dot as f32;
            }
        }
    }
    out
}

fn check(la: &Layout, lb: &Layout, a_len: usize, b_len: usize) {
    let be = backend();
    let (xa, xb) = (values(a_len, 3), values(b_len, 4));
    let (sa, _) = f32s(&xa, &[a_len]);
    let (sb, _) = f32s(&xb, &[b_len]);
    let r = be.matmul((&sa, la), (&sb, lb)).unwrap();
    let shape = [la.shape[0], la.shape[1], lb.shape[2]];
    assert_close(&read(&r, &shape), &naive(&xa, la, &xb, lb), 1e-4);
}

#[test]
fn matches_the_definition_for_awkward_sizes() {
    for &m in &[1, 3, 17, 129] {
        for &k in &[1, 3, 17, 129] {
            for &n in &[1, 3, 17, 129] {
                let (la, lb) = (
                    Layout::contiguous(&[2, m, k]),
                    Layout::contiguous(&[2, k, n]),
                );
                check(&la, &lb, 2 * m * k, 2 * k * n);
            }
        }
    }
}

#[test]
fn transposed_views_need_no_copy() {
    for &(m, k, n) in &[(3, 17, 129), (129, 129, 129), (1, 17, 3), (300, 64, 150)] {
        // One rhs for the whole batch (a Linear's weight): from
        // COPY_B_MIN_M rows copied row-major first.
        let la = Layout::contiguous(&[2, m, k]);
        let lb = Layout::contiguous(&[1, n, k + 2])
            .narrow(2, 1, k)
            .unwrap()
            .permute(&[0, 2, 1])
            .unwrap()
            .broadcast_to(&[2, k, n])
            .unwrap();
        check(&la, &lb, 2 * m * k, n * (k + 2));
        // lhs stored [B, K, M] and viewed as [B, M, K]; rhs stored [B, N, K].
        let la = Layout::contiguous(&[2, k, m]).permute(&[0, 2, 1]).unwrap();
        let lb = Layout::contiguous(&[2, n, k]).permute(&[0, 2, 1]).unwrap();
        check(&la, &lb, 2 * m * k, 2 * k * n);
        check(&la, &Layout::contiguous(&[2, k, n]), 2 * m * k, 2 * k * n);
    }
}

#[test]
fn bands_of_rows_match_the_definition() {
    // Past PAR_MIN_MACS with at most BANDS_MAX_M rows: one band of rows
    // per thread (odd row counts leave a short last band), with
    // row-major operands, a column-major lhs (a weight gradient's
    // `dyᵀ`), a column-major rhs below COPY_B_MIN_M rows (multiplied
    // transposed) and above it (copied row-major), and a batch of two.
    // Fewer rows than two bands, a column-major rhs: bands of the
    // transposed output's rows (SWAP_BAND), an odd count of them.
    let (m, k, n) = (100, 300, 300);
    let rhs_t = Layout::contiguous(&[2, n, k]).permute(&[0, 2, 1]).unwrap();
    check(
        &Layout::contiguous(&[2, m, k]),
        &rhs_t,
        2 * m * k,
        2 * k * n,
    );
    for &m in &[129, 255, 300] {
        let (k, n) = (300, 200);
        let rows = Layout::contiguous(&[2, m, k]);
        let cols = Layout::contiguous(&[2, k, m]).permute(&[0, 2, 1]).unwrap();
        let rhs = Layout::contiguous(&[2, k, n]);
        let rhs_t = Layout::contiguous(&[2, n, k]).permute(&[0, 2, 1]).unwrap();
        check(&rows, &rhs, 2 * m * k, 2 * k * n);
        check(&cols, &rhs, 2 * m * k, 2 * k * n);
        check(&rows, &rhs_t, 2 * m * k, 2 * k * n);
    }
}

#[test]
fn batch_broadcast_offsets_and_narrowed_views() {
    // rhs [K, N] shared by a batch of 5 (batch stride 0); big enough to
    // take the parallel-over-batch path.
    let (m, k, n) = (40, 50, 60);
    let la = Layout::contiguous(&[5, m, k]);
    let lb = Layout::contiguous(&[1, k, n])
        .broadcast_to(&[5, k, n])
        .unwrap();
    check(&la, &lb, 5 * m * k, k * n);
    // Columns 2..2+k of a wider [B, M, K+7] buffer, at an offset; and a
    // row broadcast (stride 0 along M).
    let wide = Layout::contiguous(&[3, m, k + 7]).narrow(2, 2, k).unwrap();
    let row = Layout::contiguous(&[3, 1, k])
        .broadcast_to(&[3, m, k])
        .unwrap();
    let lb = Layout::contiguous(&[3, k, n]);
    check(&wide, &lb, 3 * m * (k + 7), 3 * k * n);
    check(&row, &lb, 3 * k, 3 * k * n);
    // Many tiny products, parallel over the batch.
    let (la, lb) = (
        Layout::contiguous(&[4000, 3, 4]),
        Layout::contiguous(&[4000, 4, 2]),
    );
    check(&la, &lb, 4000 * 12, 4000 * 8);
}

#[test]
fn rows_by_a_transposed_operand_run_row_by_row_or_transposed() {
    // Up to ROW_BY_ROW_MAX_M rows times a column-major rhs take one gemm
    // call per row; at offsets, with a row stride wider than K, a
    // broadcast batch, and one row past the limit for the other path;
    // and a narrow rhs past COPY_B_NARROW_MIN_MK, copied row-major once
    // for the broadcast batch.
    use super::ROW_BY_ROW_MAX_M as MAX;
    for (m, k, n) in [
        (2, 37, 19),
        (5, 37, 19),
        (MAX, 37, 19),
        (MAX + 1, 37, 19),
        (64, 300, 10),
    ] {
        let la = Layout::contiguous(&[3, m, k + 4]).narrow(2, 3, k).unwrap();
        let lb = Layout::contiguous(&[1, n, k])
            .permute(&[0, 2, 1])
            .unwrap()
            .broadcast_to(&[3, k, n])
            .unwrap();
        check(&la, &lb, 3 * m * (k + 4), n * k);
    }
    // fused_linear: bias rows and ReLU on the same path, and on the
    // transposed one (more rows: `bᵀ aᵀ`, the bias as columns); big
    // products of few terms in bands of rows (FEW_TERMS: 2048 rows in
    // bands of 409, 600 in two), and big ones of more terms (one band
    // of rows per thread up to BANDS_MAX_M rows, transposed below
    // COPY_B_MIN_M).
    use lam_core::backend::LinearActivation::Relu;
    let be = backend();
    for (m, k, n) in [
        (3, 5, 4),
        (20, 5, 37),
        (70, 33, 40),
        (2048, 32, 160),
        (600, 64, 200),
        (512, 100, 160),
        (200, 300, 160),
        (100, 300, 250),
        (128, 256, 10),
    ] {
        let (xa, xw, xb) = (values(m * k, 3), values(n * k, 4), values(n, 5));
        let (sa, la) = f32s(&xa, &[m, k]);
        let (sw, _) = f32s(&xw, &[n * k]);
        let (sb, lbias) = f32s(&xb, &[n]);
        let lw = Layout::contiguous(&[n, k]).permute(&[1, 0]).unwrap();
        let r = be
            .fused_linear((&sa, &la), (&sw, &lw), Some((&sb, &lbias)), Relu)
            .unwrap()
            .unwrap();
        let want: Vec<f32> = (0..m * n)
            .map(|i| {
                let (p, c) = (i / n, i % n);
                let dot: f32 = (0..k).map(|q| xa[p * k + q] * xw[c * k + q]).sum();
                (dot + xb[c]).max(0.0)
            })
            .collect();
        assert_close(&read(&r, &[m, n]), &want, 1e-5);
    }
}

#[test]
fn empty_inner_dim_gives_zeros_and_bad_shapes_are_errors() {
    let be = backend();
    let (s, _) = f32s(&[1.0; 6], &[6]);
    let r = be
        .matmul(
            (&s, &Layout::contiguous(&[1, 2, 0])),
            (&s, &Layout::contiguous(&[1, 0, 3])),
        )
        .unwrap();
    assert_eq!(read(&r, &[1, 2, 3]), vec![0.0; 6]);
    let two = Layout::contiguous(&[2, 3]);
    assert!(be.matmul((&s, &two), (&s, &two)).is_err());
    let (a, b) = (
        Layout::contiguous(&[1, 2, 3]),
        Layout::contiguous(&[1, 2, 3]),
    );
    assert!(be.matmul((&s, &a), (&s, &b)).is_err());
    let too_big = Layout::contiguous(&[1, 3, 3]);
    assert!(be.matmul((&s, &too_big), (&s, &too_big)).is_err());
}

#[test]
fn fused_linear_rejects_operands_that_are_not_matrices() {
    use lam_core::backend::LinearActivation::Relu;
    let be = backend();
    let (s, _) = f32s(&[1.0; 12], &[12]);
    let (m, batched) = (Layout::contiguous(&[2, 3]), Layout::contiguous(&[2, 2, 3]));
    let k_by_n = Layout::contiguous(&[3, 2]);
    let err = be.fused_linear((&s, &batched), (&s, &k_by_n), None, Relu);
    assert!(matches!(
        err,
        Err(lam_core::Error::RankMismatch { found: 3, .. })
    ));
    assert!(be
        .fused_linear((&s, &m), (&s, &batched), None, Relu)
        .is_err());
    let ok = be
        .fused_linear((&s, &m), (&s, &k_by_n), None, Relu)
        .unwrap();
    assert_eq!(read(&ok.unwrap(), &[2, 2]), vec![3.0; 4]);
}
