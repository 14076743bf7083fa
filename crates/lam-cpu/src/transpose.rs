//! Row-major matrix transposes (`dst[c][r] = src[r][c]`), which the
//! convolution's weight gradient and the products that want a row-major
//! operand copy through: in cache-sized blocks, each 8 × 8 square of a block
//! moved through AVX registers (eight loads, 24 shuffles, eight stores)
//! where the processor has AVX, and element by element otherwise and at the
//! edges. Element by element, each store went to another cache line; the
//! weight gradients of a small ResNet spent 4% of a training step there.

/// Side of the square blocks in which [`transpose_into`] copies.
const BLOCK: usize = 32;

/// `dst[c][r] = src[r][c]` for `src` `[rows, cols]` and `dst` `[cols, rows]`,
/// both row-major.
pub(crate) fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_rows_into(src, rows, cols, cols, dst);
}

/// [`transpose_into`] of a `src` whose rows are `ld >= cols` floats apart
/// (a block of columns of a wider matrix, or rows of one).
pub(crate) fn transpose_rows_into(
    src: &[f32],
    rows: usize,
    cols: usize,
    ld: usize,
    dst: &mut [f32],
) {
    let n = rows * cols;
    let needed = if n == 0 { 0 } else { (rows - 1) * ld + cols };
    assert!(
        ld >= cols && src.len() >= needed && dst.len() >= n,
        "transpose_into: [{rows}, {cols}] (rows {ld} apart) from {} into {} values",
        src.len(),
        dst.len()
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor has AVX, checked just above, and `src`
        // and `dst` hold the rows asserted above.
        unsafe { blocks_avx(src, rows, cols, ld, dst) };
        return;
    }
    blocks(src, rows, cols, ld, dst, &mut |_, _| false);
}

/// The blocked copy; `square(r, c)` may move the 8 × 8 square at row `r`,
/// column `c` (returning true) where one fits, else it goes element by
/// element.
fn blocks(
    src: &[f32],
    rows: usize,
    cols: usize,
    ld: usize,
    dst: &mut [f32],
    square: &mut dyn FnMut(usize, usize) -> bool,
) {
    for r0 in (0..rows).step_by(BLOCK) {
        let r_end = (r0 + BLOCK).min(rows);
        for c0 in (0..cols).step_by(BLOCK) {
            let c_end = (c0 + BLOCK).min(cols);
            for r in (r0..r_end).step_by(8) {
                for c in (c0..c_end).step_by(8) {
                    if r + 8 <= r_end && c + 8 <= c_end && square(r, c) {
                        continue;
                    }
                    for rr in r..(r + 8).min(r_end) {
                        let src_row = &src[rr * ld..rr * ld + cols];
                        for cc in c..(c + 8).min(c_end) {
                            dst[cc * rows + rr] = src_row[cc];
                        }
                    }
                }
            }
        }
    }
}

/// [`blocks`] with the 8 × 8 squares in AVX registers.
///
/// # Safety
/// The processor must have AVX, `src` holds `rows` rows of `cols` values
/// `ld` apart and `dst` `rows · cols` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn blocks_avx(src: &[f32], rows: usize, cols: usize, ld: usize, dst: &mut [f32]) {
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    blocks(src, rows, cols, ld, dst, &mut |r, c| {
        // SAFETY: `blocks` asks only for squares inside the matrices
        // (r + 8 ≤ rows, c + 8 ≤ cols), so every row read from `src`
        // (r.., columns c..c + 8) and written to `dst` (c.., columns
        // r..r + 8) lies within them; AVX is there (this function's
        // contract).
        unsafe { square_avx(s.add(r * ld + c), ld, d.add(c * rows + r), rows) };
        true
    });
}

/// Transposes the 8 × 8 square at `src` (rows `src_stride` apart) into
/// `dst` (rows `dst_stride` apart).
///
/// # Safety
/// AVX, and 8 rows of 8 values readable at `src` and writable at `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn square_avx(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract covers every row read and written.
    unsafe {
        let row = |i: usize| _mm256_loadu_ps(src.add(i * src_stride));
        let [r0, r1, r2, r3, r4, r5, r6, r7] = [0, 1, 2, 3, 4, 5, 6, 7].map(row);
        // Pairs of rows interleaved, then quads, then the 128-bit halves
        // swapped: the standard 8 × 8 transpose.
        let t0 = _mm256_unpacklo_ps(r0, r1);
        let t1 = _mm256_unpackhi_ps(r0, r1);
        let t2 = _mm256_unpacklo_ps(r2, r3);
        let t3 = _mm256_unpackhi_ps(r2, r3);
        let t4 = _mm256_unpacklo_ps(r4, r5);
        let t5 = _mm256_unpackhi_ps(r4, r5);
        let t6 = _mm256_unpacklo_ps(r6, r7);
        let t7 = _mm256_unpackhi_ps(r6, r7);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let out = [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ];
        for (i, v) in out.into_iter().enumerate() {
            _mm256_storeu_ps(dst.add(i * dst_stride), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_apart_from_a_wider_matrix_match_the_definition() {
        for (rows, cols, ld) in [(9, 17, 20), (16, 24, 1024), (3, 8, 8), (33, 40, 41)] {
            let src: Vec<f32> = (0..(rows - 1) * ld + cols).map(|i| i as f32).collect();
            let mut dst = vec![-1.0; rows * cols];
            transpose_rows_into(&src, rows, cols, ld, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * ld + c],
                        "[{rows}, {cols}] ld {ld}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_shape_matches_the_definition() {
        for rows in [0, 1, 3, 7, 8, 9, 16, 17, 31, 32, 33, 40, 64, 65] {
            for cols in [0, 1, 5, 8, 15, 16, 24, 33, 100, 1024] {
                let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
                let mut dst = vec![-1.0; rows * cols];
                transpose_into(&src, rows, cols, &mut dst);
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(
                            dst[c * rows + r],
                            src[r * cols + c],
                            "[{rows}, {cols}] at ({r}, {c})"
                        );
                    }
                }
            }
        }
    }
}
