//! Row-major matrix transposes (`dst[c][r] = src[r][c]`), which the
//! products that want a row-major operand (a `Linear`'s transposed weight
//! from 256 rows on), `w.t().contiguous()` and the convolution's weight
//! gradient copy through.
//!
//! Squares move through vector registers: 16 × 16 where the processor has
//! AVX-512 (sixteen loads, 64 shuffles, sixteen stores), 8 × 8 with AVX,
//! single elements otherwise and in the strips at the edges that no square
//! fits. With 16 × 16 squares every cache line a square reads or writes is
//! read or written whole, at once: 8 × 8 squares wrote half lines, whose
//! other halves came several squares later, by when a matrix whose rows
//! are a power of two apart (a `[512, 8192]` transpose's rows are 32 KiB
//! apart, all in one set of the 8-way L1 cache) had evicted them.
//!
//! The squares go band by band: for each chunk of [`ROWS_PER_CHUNK`]
//! source rows, every band of source columns, down the chunk. A band's
//! destination rows are then written sequentially, and the chunk's source
//! pages stay in the TLB across the bands. On one Zen 4 core, best of 200
//! (`[rows, cols]` of `src`; hot in cache, and after a 64 MiB flush): `[1536,
//! 512]` 274 → 129 µs and 976 → 562 µs, `[8192, 512]` 4.2 → 2.4 ms and 4.4
//! → 2.5 ms, against 2.0 ms for a copy of the same bytes after the flush.

use rayon::prelude::*;

/// Elements from which [`transpose_into_parallel`] splits a transpose.
const PARALLEL_MIN: usize = 256 * 1024;

/// Source rows per chunk of bands (a multiple of every square's side).
const ROWS_PER_CHUNK: usize = 256;

/// `dst[c][r] = src[r][c]` for `src` `[rows, cols]` and `dst` `[cols, rows]`,
/// both row-major.
pub(crate) fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_rows_into(src, rows, cols, cols, dst);
}

/// [`transpose_into`] across the pool for big matrices: each thread moves
/// a band of the source's columns (the destination's rows), whole squares
/// wide, in chunks as [`transpose_into`] does. Below [`PARALLEL_MIN`]
/// elements waking the pool costs what it saves (`[384, 128]`: 8.3 µs on
/// one thread); `[2048, 512]` took 383 µs on one thread, 217 on two.
pub(crate) fn transpose_into_parallel(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let n = rows * cols;
    let threads = rayon::current_num_threads();
    if n < PARALLEL_MIN || threads < 2 {
        transpose_into(src, rows, cols, dst);
        return;
    }
    let band = cols.div_ceil(threads).next_multiple_of(16);
    dst[..n]
        .par_chunks_mut(band * rows)
        .enumerate()
        .for_each(|(i, part)| {
            let c0 = i * band;
            let width = part.len() / rows;
            transpose_rows_into(&src[c0..], rows, width, cols, part);
        });
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
    let m = Matrices {
        rows,
        cols,
        ld,
        src,
        dst,
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F, checked just above, and
            // `src` and `dst` hold the rows asserted above.
            unsafe { squares_avx512(m) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: as above, for AVX.
            unsafe { squares_avx(m) };
            return;
        }
    }
    let mut m = m;
    cover(&mut m, [0, rows, 0, cols], &[], &mut |_, _, _, _| {});
}

/// The operands of one transpose: `src` `[rows, cols]` with rows `ld`
/// apart, `dst` `[cols, rows]` row-major.
struct Matrices<'a> {
    rows: usize,
    cols: usize,
    ld: usize,
    src: &'a [f32],
    dst: &'a mut [f32],
}

/// Moves source rows `r0..r1`, columns `c0..c1`: the squares of side
/// `sides[0]` that fit, in chunks of bands, each by `square(m, side, r, c)`
/// (the square whose top left source element is at row `r`, column `c`);
/// then the strips below and to the right of them, with the smaller sides
/// that follow and at the end element by element.
fn cover(
    m: &mut Matrices,
    [r0, r1, c0, c1]: [usize; 4],
    sides: &[usize],
    square: &mut dyn FnMut(&mut Matrices, usize, usize, usize),
) {
    let Some((&side, smaller)) = sides.split_first() else {
        for r in r0..r1 {
            for c in c0..c1 {
                m.dst[c * m.rows + r] = m.src[r * m.ld + c];
            }
        }
        return;
    };
    let r_end = r0 + (r1 - r0) / side * side;
    let c_end = c0 + (c1 - c0) / side * side;
    for chunk in (r0..r_end).step_by(ROWS_PER_CHUNK) {
        for c in (c0..c_end).step_by(side) {
            for r in (chunk..(chunk + ROWS_PER_CHUNK).min(r_end)).step_by(side) {
                square(m, side, r, c);
            }
        }
    }
    cover(m, [r_end, r1, c0, c1], smaller, square);
    cover(m, [r0, r_end, c_end, c1], smaller, square);
}

/// [`cover`] with 16 × 16 squares, then 8 × 8 ones, in registers.
///
/// # Safety
/// The processor must have AVX-512F, and `m` hold the rows its sizes say.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn squares_avx512(mut m: Matrices) {
    let (rows, cols) = (m.rows, m.cols);
    cover(
        &mut m,
        [0, rows, 0, cols],
        &[16, 8],
        &mut |m, side, r, c| {
            let (s, d) = (m.src.as_ptr(), m.dst.as_mut_ptr());
            // SAFETY: `cover` asks only for squares inside the matrices (r +
            // side ≤ rows, c + side ≤ cols), so every row read from `src` (r..,
            // columns c..c + side) and written to `dst` (c.., columns r..r +
            // side) lies within them; the processor has AVX-512F (this
            // function's contract), and so AVX.
            unsafe {
                let (s, d) = (s.add(r * m.ld + c), d.add(c * m.rows + r));
                if side == 16 {
                    square16_avx512(s, m.ld, d, m.rows);
                } else {
                    square_avx(s, m.ld, d, m.rows);
                }
            }
        },
    );
}

/// [`cover`] with 8 × 8 squares in registers.
///
/// # Safety
/// The processor must have AVX, and `m` hold the rows its sizes say.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn squares_avx(mut m: Matrices) {
    let (rows, cols) = (m.rows, m.cols);
    cover(&mut m, [0, rows, 0, cols], &[8], &mut |m, _, r, c| {
        // SAFETY: as in `squares_avx512`, for 8 × 8 squares and AVX.
        unsafe {
            square_avx(
                m.src.as_ptr().add(r * m.ld + c),
                m.ld,
                m.dst.as_mut_ptr().add(c * m.rows + r),
                m.rows,
            )
        };
    });
}

/// Transposes the 16 × 16 square at `src` (rows `src_stride` apart) into
/// `dst` (rows `dst_stride` apart): pairs of rows interleaved, then quads,
/// then 128-bit lanes twice.
///
/// # Safety
/// AVX-512F, and 16 rows of 16 values readable at `src` and writable at
/// `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn square16_avx512(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract covers every row read and written.
    unsafe {
        let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * src_stride)));
        // t[2i], t[2i + 1]: rows 2i and 2i + 1 interleaved, in each 128-bit
        // lane (columns 4k..4k + 3): [a0 b0 a1 b1], [a2 b2 a3 b3].
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // s[4j + m], lane k: rows 4j..4j + 3 at column 4k + m.
        let mut s = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            let q = 4 * j;
            s[q] = _mm512_shuffle_ps::<0x44>(t[q], t[q + 2]);
            s[q + 1] = _mm512_shuffle_ps::<0xEE>(t[q], t[q + 2]);
            s[q + 2] = _mm512_shuffle_ps::<0x44>(t[q + 1], t[q + 3]);
            s[q + 3] = _mm512_shuffle_ps::<0xEE>(t[q + 1], t[q + 3]);
        }
        // Column 4k + m is lane k of s[m], s[4 + m], s[8 + m], s[12 + m]:
        // gathered by two rounds of 128-bit lane shuffles (0x88 takes lanes
        // 0 and 2 of each operand, 0xDD lanes 1 and 3).
        for m in 0..4 {
            let u0 = _mm512_shuffle_f32x4::<0x88>(s[m], s[4 + m]);
            let u1 = _mm512_shuffle_f32x4::<0xDD>(s[m], s[4 + m]);
            let v0 = _mm512_shuffle_f32x4::<0x88>(s[8 + m], s[12 + m]);
            let v1 = _mm512_shuffle_f32x4::<0xDD>(s[8 + m], s[12 + m]);
            let out = |col: usize, v| _mm512_storeu_ps(dst.add(col * dst_stride), v);
            out(m, _mm512_shuffle_f32x4::<0x88>(u0, v0));
            out(4 + m, _mm512_shuffle_f32x4::<0x88>(u1, v1));
            out(8 + m, _mm512_shuffle_f32x4::<0xDD>(u0, v0));
            out(12 + m, _mm512_shuffle_f32x4::<0xDD>(u1, v1));
        }
    }
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

    /// A transpose under test: `f(src, rows, cols, ld, dst)`.
    type Transpose = fn(&[f32], usize, usize, usize, &mut [f32]);

    /// Runs `f` and checks `dst` element by element.
    fn check(rows: usize, cols: usize, ld: usize, f: Transpose) {
        let len = if rows == 0 { 0 } else { (rows - 1) * ld + cols };
        let src: Vec<f32> = (0..len).map(|i| i as f32).collect();
        let mut dst = vec![-1.0; rows * cols];
        f(&src, rows, cols, ld, &mut dst);
        for r in 0..rows {
            for c in 0..cols {
                let at = (r, c);
                assert_eq!(
                    dst[c * rows + r],
                    src[r * ld + c],
                    "[{rows}, {cols}] ld {ld} at {at:?}"
                );
            }
        }
    }

    /// Shapes with every mix of whole 16 × 16 and 8 × 8 squares, strips
    /// of each width, and more rows than a chunk.
    const SIDES: [usize; 14] = [0, 1, 3, 7, 8, 9, 15, 16, 17, 24, 33, 40, 65, 300];

    #[test]
    fn rows_apart_from_a_wider_matrix_match_the_definition() {
        for (rows, cols, ld) in [
            (9, 17, 20),
            (16, 24, 1024),
            (3, 8, 8),
            (33, 40, 41),
            (300, 33, 48),
        ] {
            check(rows, cols, ld, transpose_rows_into);
        }
    }

    #[test]
    fn every_shape_matches_the_definition() {
        for rows in SIDES {
            for cols in SIDES.into_iter().chain([1024]) {
                check(rows, cols, cols, transpose_rows_into);
            }
        }
    }

    #[test]
    fn the_parallel_transpose_matches_the_definition() {
        fn parallel(src: &[f32], rows: usize, cols: usize, _: usize, dst: &mut [f32]) {
            transpose_into_parallel(src, rows, cols, dst);
        }
        // Two bands (on two threads or more), the last narrower, neither a
        // whole number of squares wide; and matrices too small to split.
        for (rows, cols) in [(300, 1030), (2000, 201), (1536, 40), (17, 17), (0, 5000)] {
            check(rows, cols, cols, parallel);
        }
    }

    /// The AVX and element-by-element paths, which a processor with
    /// AVX-512 never takes by itself.
    #[test]
    fn every_path_matches_the_definition() {
        fn scalar(src: &[f32], rows: usize, cols: usize, ld: usize, dst: &mut [f32]) {
            let mut m = Matrices {
                rows,
                cols,
                ld,
                src,
                dst,
            };
            cover(&mut m, [0, rows, 0, cols], &[], &mut |_, _, _, _| {});
        }
        let mut paths: Vec<Transpose> = vec![scalar];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            fn avx(src: &[f32], rows: usize, cols: usize, ld: usize, dst: &mut [f32]) {
                // SAFETY: the processor has AVX (checked before this is
                // listed); `check` passes matrices of the sizes it says.
                unsafe {
                    squares_avx(Matrices {
                        rows,
                        cols,
                        ld,
                        src,
                        dst,
                    })
                }
            }
            paths.push(avx);
        }
        for f in paths {
            for rows in SIDES {
                for cols in SIDES {
                    check(rows, cols, cols + 3, f);
                }
            }
        }
    }
}
