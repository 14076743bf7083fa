//! The ops that only move data (Backend `read_f32`, `read_i32`, `copy`,
//! `cast`; `zeros`, `from_f32` and `from_i32` are one line each in
//! `lib.rs`): reading a view row-major, writing one view into another, and
//! converting between `F32`, `I32` and `F16` (`half`'s conversions: round to
//! nearest even, IEEE overflow, subnormals and NaN).

use lam_core::backend::View;
use lam_core::{DType, Error, Layout, Result};

use crate::parallel::{for_chunks, CHUNK, PAR_MIN_WORK};
use crate::pool;
use crate::storage::{check_bounds, cpu, dtype_error, same_buffer, Data, ReadLocks};
use crate::strided::{coalesce, gather, gather_f32_into, Rows};

/// The elements of an `F32` view, row-major.
pub(crate) fn read_f32(src: View) -> Result<Vec<f32>> {
    let locks = ReadLocks::new("read_f32", &[src.0])?;
    let v = gather(locks.f32(0, src.1)?, src.1)?.into_owned();
    Ok(v)
}

/// The elements of an `I32` view, row-major.
pub(crate) fn read_i32(src: View) -> Result<Vec<i32>> {
    let locks = ReadLocks::new("read_i32", &[src.0])?;
    let v = gather(locks.i32(0, src.1)?, src.1)?.into_owned();
    Ok(v)
}

/// Writes the elements of `src` into the view `dst` (same shape and dtype).
pub(crate) fn copy(src: View, dst: View) -> Result<()> {
    const OP: &str = "copy";
    if src.1.shape != dst.1.shape {
        return Err(Error::shape(OP, format!("{:?}", src.1.shape), &dst.1.shape));
    }
    if fill_copy(src, dst)? || direct_copy(src, dst)? || runs_copy(src, dst)? {
        return Ok(());
    }
    // Gather first and release the source, so copying within one buffer
    // (or two copies in opposite directions) never holds two locks.
    let values = {
        let locks = ReadLocks::new(OP, &[src.0])?;
        match locks.data(0, src.1)? {
            Data::F32(v) => {
                let mut values = pool::take(src.1.numel())?;
                gather_f32_into(v, src.1, &mut values);
                Data::F32(values)
            }
            Data::I32(v) => Data::I32(gather(v, src.1)?.into_owned()),
            Data::F16(v) => Data::F16(gather(v, src.1)?.into_owned()),
        }
    };
    let mut guard = cpu(dst.0)?.write();
    check_bounds(OP, dst.1, guard.len())?;
    match (&mut *guard, values) {
        (Data::F32(out), Data::F32(values)) => {
            scatter(out, dst.1, &values);
            pool::give(values);
        }
        (Data::I32(out), Data::I32(values)) => scatter(out, dst.1, &values),
        (Data::F16(out), Data::F16(values)) => scatter(out, dst.1, &values),
        (out, values) => return Err(dtype_error(OP, out.dtype(), values.dtype())),
    }
    Ok(())
}

/// [`copy`] of one `F32` value broadcast (every stride 0: the zeros a
/// slice's gradient is padded with) into any view: the view's runs are
/// filled, with no scratch vector. Returns false, having done nothing, for
/// any other copy.
fn fill_copy(src: View, dst: View) -> Result<bool> {
    if src.1.numel() == 0 || src.1.strides.iter().any(|&s| s != 0) {
        return Ok(false);
    }
    let value = {
        let locks = ReadLocks::new("copy", &[src.0])?;
        match locks.data(0, src.1)? {
            Data::F32(v) => v[src.1.offset],
            _ => return Ok(false),
        }
    };
    let mut guard = cpu(dst.0)?.write();
    check_bounds("copy", dst.1, guard.len())?;
    let Data::F32(out) = &mut *guard else {
        return Err(dtype_error("copy", DType::F32, guard.dtype()));
    };
    let [merged] = coalesce([dst.1]);
    let rows = Rows::of(&merged);
    for &start in &rows.starts {
        if rows.stride == 1 {
            out[start..start + rows.len].fill(value);
        } else {
            (0..rows.len).for_each(|j| out[start + j * rows.stride] = value);
        }
    }
    Ok(true)
}

/// [`copy`] of an `F32` view into a contiguous view of another buffer,
/// gathered straight into place (one pass, where going through a scratch
/// vector took two): `cat` and the gradients of slices write such views.
/// Returns false, having done nothing, for any other copy. The two locks
/// are taken in the buffers' address order, so two such copies in
/// opposite directions cannot deadlock.
fn direct_copy(src: View, dst: View) -> Result<bool> {
    if same_buffer(src.0, dst.0) || !dst.1.is_contiguous() {
        return Ok(false);
    }
    with_both(src, dst, |v, out| {
        let n = dst.1.numel();
        gather_split(v, src.1, &mut out[dst.1.offset..dst.1.offset + n])
    })
}

/// `gather_f32_into` of a big view split along its first dim across the
/// pool: one thread moved 2 MiB in 220-310 µs, and transposed a weight's
/// 1 MiB gradient in 130-190 µs.
fn gather_split(v: &[f32], layout: &Layout, out: &mut [f32]) -> Result<()> {
    let n = out.len();
    let first = layout.shape.first().copied().unwrap_or(1);
    if n < PAR_MIN_WORK || first < 2 {
        gather_f32_into(v, layout, out);
        return Ok(());
    }
    let per = n / first;
    let mut rows = CHUNK.div_ceil(per).max(1);
    if layout.rank() == 2 && layout.strides[0] == 1 {
        // A transposed matrix (`w.t().contiguous()`): each piece is
        // transposed in 16 × 16 squares (`transpose.rs`), so it takes whole
        // ones. Pieces of 3 rows of a `[512, 1536]` view went element by
        // element, 4× slower.
        rows = rows.next_multiple_of(16);
    }
    let failure = std::sync::OnceLock::new();
    for_chunks(out, rows * per, n, |start, chunk| {
        match layout.narrow(0, start / per, chunk.len() / per) {
            Ok(part) => gather_f32_into(v, &part, chunk),
            Err(e) => drop(failure.set(e)),
        }
    });
    failure.into_inner().map_or(Ok(()), Err)
}

/// Converts a view to `to` (float to int truncates toward zero, saturating;
/// NaN gives 0; to `F16` rounds to nearest even; int to `F16` goes through
/// `f32`, as PyTorch's).
pub(crate) fn cast(src: View, to: DType) -> Result<Data> {
    use half::f16;
    let locks = ReadLocks::new("cast", &[src.0])?;
    Ok(match (locks.data(0, src.1)?, to) {
        (Data::F16(v), DType::F16) => Data::F16(gather(v, src.1)?.into_owned()),
        (Data::F16(v), DType::F32) => {
            let mut out = pool::take(src.1.numel())?;
            for (o, h) in out.iter_mut().zip(gather(v, src.1)?.iter()) {
                *o = h.to_f32();
            }
            Data::F32(out)
        }
        (Data::F16(v), DType::I32) => Data::I32(
            gather(v, src.1)?
                .iter()
                .map(|h| h.to_f32() as i32)
                .collect(),
        ),
        (Data::F32(v), DType::F16) => Data::F16(
            gather(v, src.1)?
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect(),
        ),
        (Data::I32(v), DType::F16) => Data::F16(
            gather(v, src.1)?
                .iter()
                .map(|&x| f16::from_f32(x as f32))
                .collect(),
        ),
        (Data::F32(v), DType::F32) => {
            let mut out = pool::take(src.1.numel())?;
            gather_split(v, src.1, &mut out)?;
            Data::F32(out)
        }
        (Data::I32(v), DType::I32) => Data::I32(gather(v, src.1)?.into_owned()),
        (Data::F32(v), DType::I32) => {
            Data::I32(gather(v, src.1)?.iter().map(|&x| x as i32).collect())
        }
        (Data::I32(v), DType::F32) => {
            Data::F32(gather(v, src.1)?.iter().map(|&x| x as f32).collect())
        }
    })
}

/// [`copy`] of a contiguous `F32` view into a view of another buffer made
/// of unit-stride runs in increasing order — a block of columns of a
/// matrix, which `cat` along the last dim writes — one run at a time,
/// groups of runs split across the pool when big. Going through a scratch
/// vector (two passes, one thread) took an LSTM layer's `[2048, 256]`
/// halves of a `[2048, 512]` `cat` 0.6 ms each. Returns false, having done
/// nothing, for any other copy.
fn runs_copy(src: View, dst: View) -> Result<bool> {
    if same_buffer(src.0, dst.0) || !src.1.is_contiguous() {
        return Ok(false);
    }
    let [merged] = coalesce([dst.1]);
    let runs = Rows::of(&merged);
    let len = runs.len;
    let ordered = runs.starts.windows(2).all(|w| w[0] + len <= w[1]);
    if runs.stride != 1 || len == 0 || !ordered {
        return Ok(false);
    }
    with_both(src, dst, |v, out| {
        let values = &v[src.1.offset..src.1.offset + src.1.numel()];
        // Groups of about CHUNK floats: each group's runs lie in one piece
        // of `out` (the runs are ordered and disjoint), handed to one task.
        let per_group = CHUNK.div_ceil(len).max(1);
        let mut groups: Vec<(&mut [f32], &[usize], &[f32])> = Vec::new();
        let mut rest: &mut [f32] = out;
        let mut base = 0;
        let pieces = runs
            .starts
            .chunks(per_group)
            .zip(values.chunks(per_group * len));
        for (starts, vals) in pieces {
            let end = starts[starts.len() - 1] + len;
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(end - base);
            groups.push((&mut piece[starts[0] - base..], starts, vals));
            (rest, base) = (tail, end);
        }
        crate::parallel::for_items(&mut groups, per_group * len, |_, (piece, starts, vals)| {
            let first = starts[0];
            for (&start, run) in starts.iter().zip(vals.chunks(len)) {
                piece[start - first..start - first + len].copy_from_slice(run);
            }
        });
        Ok(())
    })
}

/// Runs `copy_into(src's floats, dst's floats)` for two distinct `F32`
/// buffers whose views lie inside them, under a read lock on the first and
/// a write lock on the second taken in the buffers' address order, so that
/// two copies in opposite directions cannot deadlock. Returns false,
/// having done nothing, where either buffer is not `F32`.
fn with_both(
    src: View,
    dst: View,
    copy_into: impl FnOnce(&[f32], &mut [f32]) -> Result<()>,
) -> Result<bool> {
    let (from, to) = (cpu(src.0)?, cpu(dst.0)?);
    let (read, mut write) = if std::ptr::from_ref(from).addr() < std::ptr::from_ref(to).addr() {
        let read = from.read();
        (read, to.write())
    } else {
        let write = to.write();
        (from.read(), write)
    };
    let (Data::F32(v), Data::F32(out)) = (&*read, &mut *write) else {
        return Ok(false);
    };
    check_bounds("copy", src.1, v.len())?;
    check_bounds("copy", dst.1, out.len())?;
    copy_into(v, out)?;
    Ok(true)
}

/// `out[layout offsets] = values`, row-major: run by run where the view's
/// rows (after merging the dims that can be) are contiguous, a block of
/// rows of a bigger matrix say, element by element otherwise.
fn scatter<T: Copy>(out: &mut [T], layout: &Layout, values: &[T]) {
    if layout.is_contiguous() {
        out[layout.offset..layout.offset + values.len()].copy_from_slice(values);
        return;
    }
    let [merged] = coalesce([layout]);
    let rows = Rows::of(&merged);
    if rows.stride == 1 && rows.len > 0 {
        for (&start, run) in rows.starts.iter().zip(values.chunks(rows.len)) {
            out[start..start + run.len()].copy_from_slice(run);
        }
    } else {
        for (offset, &value) in layout.offsets().zip(values) {
            out[offset] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    #[test]
    fn copy_writes_a_transposed_view_into_a_strided_destination() {
        let b = backend();
        // src [2, 3] read transposed as [3, 2]; dst is the even columns of a [3, 4].
        let (src, l) = f32s(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let src_t = l.permute(&[1, 0]).unwrap();
        let dst = b.zeros(12, lam_core::DType::F32).unwrap();
        let dst_l = Layout {
            shape: vec![3, 2],
            strides: vec![4, 2],
            offset: 0,
        };
        b.copy((&src, &src_t), (&dst, &dst_l)).unwrap();
        assert_eq!(
            read(&dst, &[12]),
            vec![1., 0., 4., 0., 2., 0., 5., 0., 3., 0., 6., 0.]
        );
    }

    #[test]
    fn copy_fills_blocks_of_columns_run_by_run_and_other_orders_element_by_element() {
        let b = backend();
        // A contiguous [rows, cols] into columns `at..at + cols` of a
        // [rows, width] buffer at an offset: small, and big enough for the
        // pool (rows split across tasks, runs not a multiple of a chunk).
        for (rows, cols, width, at) in [(3, 2, 5, 1), (2048, 33, 70, 30), (700, 256, 512, 0)] {
            let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let (src, src_l) = f32s(&values, &[rows, cols]);
            let dst = b.from_f32(&vec![-1.0; rows * width + 7]).unwrap();
            let dst_l = Layout {
                shape: vec![rows, cols],
                strides: vec![width, 1],
                offset: 7 + at,
            };
            b.copy((&src, &src_l), (&dst, &dst_l)).unwrap();
            let got = read(&dst, &[rows * width + 7]);
            for (i, &v) in got.iter().enumerate() {
                let (r, c) = ((i.max(7) - 7) / width, (i.max(7) - 7) % width);
                let want = if i >= 7 && (at..at + cols).contains(&c) {
                    (r * cols + c - at) as f32
                } else {
                    -1.0
                };
                assert_eq!(v, want, "[{rows}, {cols}] into width {width}: index {i}");
            }
        }
        // Runs that go back in memory (the destination's first two dims
        // swapped) are written where they belong too.
        let (src, src_l) = f32s(&(0..24).map(|i| i as f32).collect::<Vec<_>>(), &[3, 2, 4]);
        let dst = b.zeros(24, lam_core::DType::F32).unwrap();
        let dst_l = Layout::contiguous(&[2, 3, 4]).permute(&[1, 0, 2]).unwrap();
        b.copy((&src, &src_l), (&dst, &dst_l)).unwrap();
        let got = read(&dst, &[24]);
        for (i, j, k) in
            (0..3).flat_map(|i| (0..2).flat_map(move |j| (0..4).map(move |k| (i, j, k))))
        {
            assert_eq!(got[j * 12 + i * 4 + k], (i * 8 + j * 4 + k) as f32);
        }
    }

    #[test]
    fn a_big_transposed_view_is_copied_in_parallel_pieces() {
        let b = backend();
        // Rows of a transposed [300, 1024] at an offset, some of them: the
        // pieces are blocks of a transposed matrix's columns.
        let (rows, cols) = (300, 1024);
        let values: Vec<f32> = (0..rows * cols + 5).map(|i| i as f32).collect();
        let (src, _) = f32s(&values, &[rows * cols + 5]);
        let view = Layout {
            shape: vec![cols - 24, rows - 1],
            strides: vec![1, cols],
            offset: 5 + 24,
        };
        let out = b.cast((&src, &view), lam_core::DType::F32).unwrap();
        let got = read(&out, &[(cols - 24) * (rows - 1)]);
        for (i, &v) in got.iter().enumerate() {
            let (c, r) = (i / (rows - 1), i % (rows - 1));
            assert_eq!(v, values[5 + 24 + c + r * cols], "element {i}");
        }
    }

    #[test]
    fn copy_within_one_buffer_does_not_deadlock() {
        let b = backend();
        let (s, _) = f32s(&[1., 2., 3., 4.], &[4]);
        let first = Layout::contiguous(&[2]);
        let second = first.narrow(0, 0, 2).map(|mut l| {
            l.offset = 2;
            l
        });
        b.copy((&s, &first), (&s, &second.unwrap())).unwrap();
        assert_eq!(read(&s, &[4]), vec![1., 2., 1., 2.]);
    }

    #[test]
    fn copies_between_two_buffers_in_both_directions_at_once() {
        // Into contiguous views of another buffer, copies lock both buffers
        // (in address order, which this cannot prove: the window between
        // the two locks is too short to hit); a transposed source still
        // lands transposed.
        // Halves of 256K floats, so that the two threads' copies overlap.
        const N: usize = 1 << 19;
        let b = backend();
        let (x, _) = f32s(&(0..N).map(|i| i as f32).collect::<Vec<_>>(), &[N]);
        let (y, _) = f32s(&vec![0.0; N], &[N]);
        let half = Layout::contiguous(&[N / 2]);
        let upper = Layout {
            offset: N / 2,
            ..half.clone()
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..200 {
                    b.copy((&x, &half), (&y, &upper)).unwrap();
                }
            });
            for _ in 0..200 {
                b.copy((&y, &upper), (&x, &upper)).unwrap();
            }
        });
        let (first, second) = (read(&x, &[N]), read(&y, &[N]));
        assert_eq!(&second[N / 2..], &first[..N / 2]);
        // Transposed sources, small and big enough to be split across the
        // pool by rows of the destination.
        for (r, c) in [(4, 8), (300, 200)] {
            let t = Layout::contiguous(&[r, c]).permute(&[1, 0]).unwrap();
            b.copy((&x, &t), (&y, &Layout::contiguous(&[c, r])))
                .unwrap();
            let got = read(&y, &[N]);
            for i in 0..c {
                for j in 0..r {
                    assert_eq!(got[i * r + j], first[j * c + i], "{r}x{c} at {i}, {j}");
                }
            }
        }
    }

    #[test]
    fn copy_rejects_mismatched_dtypes_and_out_of_bounds_views() {
        let b = backend();
        let (f, l) = f32s(&[1., 2.], &[2]);
        let i = b.from_i32(&[0, 0]).unwrap();
        assert!(b.copy((&f, &l), (&i, &l)).is_err());
        let long = Layout::contiguous(&[3]);
        assert!(b.copy((&f, &long), (&f, &long)).is_err());
        assert!(b.read_f32((&f, &Layout::contiguous(&[5]))).is_err());
        assert!(b.read_i32((&f, &l)).is_err());
    }

    #[test]
    fn cast_truncates_toward_zero() {
        let b = backend();
        let (s, l) = f32s(&[1.9, -1.9, 0.5, -0.0, 7.0], &[5]);
        let i = b.cast((&s, &l), lam_core::DType::I32).unwrap();
        assert_eq!(b.read_i32((&i, &l)).unwrap(), vec![1, -1, 0, 0, 7]);
        let f = b.cast((&i, &l), lam_core::DType::F32).unwrap();
        assert_eq!(read(&f, &[5]), vec![1., -1., 0., 0., 7.]);
    }

    #[test]
    fn read_follows_broadcast_strides() {
        let (s, l) = f32s(&[1., 2.], &[2, 1]);
        let wide = l.broadcast_to(&[2, 3]).unwrap();
        assert_eq!(
            backend().read_f32((&s, &wide)).unwrap(),
            vec![1., 1., 1., 2., 2., 2.]
        );
    }
}
