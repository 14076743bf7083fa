//! Indexing ops: `index_select`, `gather`, `scatter_add`.
//!
//! Indices are `I32` and checked one by one: an index outside `0..size` is
//! an [`Error::OutOfRange`], never a panic or a wild read. `gather` and
//! `scatter_add` use one trick: a layout with the index tensor's shape, the
//! data's strides, and stride 0 along `dim` yields, for every index element,
//! the storage offset of its row *before* stepping along `dim`; the index
//! value times the stride of `dim` is then added.

use lam_core::backend::View;
use lam_core::layout::contiguous_strides;
use lam_core::{DType, Error, Layout, Result};

use crate::pool::ZeroBits;
use crate::storage::{dtype_error, Data, ReadLocks};
use crate::strided::{gather as gather_view, sub_layout};

/// `[outer, size, inner] -> [outer, index.len(), inner]` along `dim`; same dtype as `src`.
pub(crate) fn index_select(src: View, dim: usize, index: View) -> Result<Data> {
    const OP: &str = "index_select";
    let locks = ReadLocks::new(OP, &[src.0, index.0])?;
    let l = src.1;
    check_dim(OP, dim, l)?;
    let index = gather_view(locks.i32(1, index.1)?, index.1)?
        .iter()
        .map(|&i| to_index(OP, i, l.shape[dim]))
        .collect::<Result<Vec<usize>>>()?;
    Ok(match locks.data(0, l)? {
        Data::F32(x) => Data::F32(select_along(x, l, dim, &index)?),
        Data::I32(x) => Data::I32(select_along(x, l, dim, &index)?),
        Data::F16(_) => return Err(dtype_error(OP, DType::F32, DType::F16)),
    })
}

/// `out[i][j][k] = src[i][index[i][j][k]][k]` (for `dim = 1`); the output has
/// `index`'s shape, which may be smaller than `src`'s along the other dims.
pub(crate) fn gather(src: View, dim: usize, index: View) -> Result<Data> {
    const OP: &str = "gather";
    let locks = ReadLocks::new(OP, &[src.0, index.0])?;
    let (l, li) = (src.1, index.1);
    check_dim(OP, dim, l)?;
    check_index_shape(OP, dim, li, &l.shape)?;
    let idx = locks.i32(1, li)?;
    let rows = Layout {
        shape: li.shape.clone(),
        strides: with_zero_at(&l.strides, dim),
        offset: l.offset,
    };
    let (size, step) = (l.shape[dim], l.strides[dim]);
    Ok(match locks.data(0, l)? {
        Data::F32(x) => Data::F32(gather_rows(x, &rows, (idx, li), size, step)?),
        Data::I32(x) => Data::I32(gather_rows(x, &rows, (idx, li), size, step)?),
        Data::F16(_) => return Err(dtype_error(OP, DType::F32, DType::F16)),
    })
}

/// A zero `F32` buffer of `shape` with `out[i][index[i][j][k]][k] += src[i][j][k]`
/// (for `dim = 1`); `index` and `src` have the same shape.
pub(crate) fn scatter_add(shape: &[usize], dim: usize, index: View, src: View) -> Result<Data> {
    const OP: &str = "scatter_add";
    let locks = ReadLocks::new(OP, &[index.0, src.0])?;
    let (li, ls) = (index.1, src.1);
    if li.shape != ls.shape {
        return Err(Error::shape(
            OP,
            format!("src of the index's shape {:?}", li.shape),
            &ls.shape,
        ));
    }
    check_dim(OP, dim, &Layout::contiguous(shape))?;
    check_index_shape(OP, dim, li, shape)?;
    let idx = locks.i32(0, li)?;
    let x = match locks.data(1, ls)? {
        Data::F32(x) => x,
        other => return Err(dtype_error(OP, DType::F32, other.dtype())),
    };
    let strides = contiguous_strides(shape);
    if let Some(out) = scatter_rows(shape, dim, (idx, li), (x, ls))? {
        return Ok(Data::F32(out));
    }
    let rows = Layout {
        shape: li.shape.clone(),
        strides: with_zero_at(&strides, dim),
        offset: 0,
    };
    // out: [shape], contiguous. Sequential, so the sum order is fixed.
    let mut out = crate::pool::zeroed(shape.iter().product())?;
    for ((row, io), so) in rows.offsets().zip(li.offsets()).zip(ls.offsets()) {
        out[row + to_index(OP, idx[io], shape[dim])? * strides[dim]] += x[so];
    }
    Ok(Data::F32(out))
}

/// [`scatter_add`] when each index picks a whole row: the index constant
/// along every dim but `dim` (an embedding's gradient: indices `[N]`
/// broadcast to `[N, D]`) and `src` contiguous. Then `src` is `[outer, n,
/// inner]` and row `j` of each outer block adds onto output row `index[j]`
/// as one vectorised slice add, in the order the element loop would (so the
/// sums are the same). `None` for any other view.
fn scatter_rows(
    shape: &[usize],
    dim: usize,
    (idx, li): (&[i32], &Layout),
    (x, ls): (&[f32], &Layout),
) -> Result<Option<Vec<f32>>> {
    const OP: &str = "scatter_add";
    let whole_rows = li
        .strides
        .iter()
        .enumerate()
        .all(|(d, &st)| d == dim || st == 0 || li.shape[d] == 1);
    let full = (0..shape.len()).all(|d| d == dim || li.shape[d] == shape[d]);
    if !whole_rows || !full || !ls.is_contiguous() {
        return Ok(None);
    }
    let outer: usize = li.shape[..dim].iter().product();
    let (n, size) = (li.shape[dim], shape[dim]);
    let inner: usize = shape[dim + 1..].iter().product();
    let mut out = crate::pool::zeroed(shape.iter().product())?;
    if n == 0 || inner == 0 {
        return Ok(Some(out));
    }
    let src = x
        .get(ls.offset..ls.offset + outer * n * inner)
        .ok_or_else(|| Error::invalid(OP, "src outside its buffer"))?;
    for (o, block) in src.chunks_exact(n * inner).enumerate() {
        for (j, row) in block.chunks_exact(inner).enumerate() {
            let i = to_index(OP, idx[li.offset + j * li.strides[dim]], size)?;
            let target = &mut out[(o * size + i) * inner..][..inner];
            target.iter_mut().zip(row).for_each(|(t, &v)| *t += v);
        }
    }
    Ok(Some(out))
}

/// `[outer, size, inner] -> [outer, index.len(), inner]`, walking `l` along `dim`.
fn select_along<T: ZeroBits>(x: &[T], l: &Layout, dim: usize, index: &[usize]) -> Result<Vec<T>> {
    let rank = l.rank();
    let outer = sub_layout(l, &(0..dim).collect::<Vec<_>>(), l.offset);
    let inner: Vec<usize> = sub_layout(l, &(dim + 1..rank).collect::<Vec<_>>(), 0)
        .offsets()
        .collect();
    let n = inner.len();
    // An `f32` output comes from the pool: an embedding's lookup asks for
    // the same size every step.
    let mut out = T::scratch(outer.numel() * index.len() * n)?;
    // Rows whose elements lie side by side are copied as slices.
    let dense = inner.iter().enumerate().all(|(k, &d)| d == k);
    let mut dst = out.chunks_exact_mut(n.max(1));
    for start in outer.offsets() {
        for &i in index {
            let row = start + i * l.strides[dim];
            let Some(o) = dst.next() else { break };
            if dense {
                o.copy_from_slice(&x[row..row + n]);
            } else {
                for (o, &d) in o.iter_mut().zip(&inner) {
                    *o = x[row + d];
                }
            }
        }
    }
    Ok(out)
}

/// `out[e] = x[rows[e] + index[e] * step]` for each element `e` of the index view.
fn gather_rows<T: Copy>(
    x: &[T],
    rows: &Layout,
    (idx, li): (&[i32], &Layout),
    size: usize,
    step: usize,
) -> Result<Vec<T>> {
    rows.offsets()
        .zip(li.offsets())
        .map(|(row, io)| Ok(x[row + to_index("gather", idx[io], size)? * step]))
        .collect()
}

fn to_index(op: &'static str, i: i32, size: usize) -> Result<usize> {
    match usize::try_from(i) {
        Ok(u) if u < size => Ok(u),
        _ => Err(Error::OutOfRange {
            op,
            index: i as i64,
            size,
        }),
    }
}

fn check_dim(op: &'static str, dim: usize, l: &Layout) -> Result<()> {
    if dim < l.rank() {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            op,
            index: dim as i64,
            size: l.rank(),
        })
    }
}

/// The index must have the data's rank and fit inside it along every other dim.
fn check_index_shape(op: &'static str, dim: usize, index: &Layout, shape: &[usize]) -> Result<()> {
    let fits = index.rank() == shape.len()
        && index
            .shape
            .iter()
            .zip(shape)
            .enumerate()
            .all(|(d, (&i, &s))| d == dim || i <= s);
    if fits {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("an index no larger than {shape:?} except along dim {dim}"),
            &index.shape,
        ))
    }
}

fn with_zero_at(strides: &[usize], dim: usize) -> Vec<usize> {
    let mut s = strides.to_vec();
    s[dim] = 0;
    s
}

#[cfg(test)]
mod tests {
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    #[test]
    fn index_select_picks_rows_or_columns_of_either_dtype() {
        let b = backend();
        // [[0, 1, 2], [3, 4, 5]]
        let (s, l) = f32s(&[0., 1., 2., 3., 4., 5.], &[2, 3]);
        let idx = b.from_i32(&[2, 0, 2]).unwrap();
        let li = Layout::contiguous(&[3]);
        let r = b.index_select((&s, &l), 1, (&idx, &li)).unwrap();
        assert_eq!(read(&r, &[2, 3]), vec![2., 0., 2., 5., 3., 5.]);
        let rows = b.from_i32(&[1, 1]).unwrap();
        let lr = Layout::contiguous(&[2]);
        let r = b.index_select((&s, &l), 0, (&rows, &lr)).unwrap();
        assert_eq!(read(&r, &[2, 3]), vec![3., 4., 5., 3., 4., 5.]);
        // Of a transposed view ([3, 2]) and of I32 data.
        let t = l.permute(&[1, 0]).unwrap();
        let r = b.index_select((&s, &t), 0, (&rows, &lr)).unwrap();
        assert_eq!(read(&r, &[2, 2]), vec![1., 4., 1., 4.]);
        let labels = b.from_i32(&[7, 8, 9]).unwrap();
        let r = b.index_select((&labels, &li), 0, (&idx, &li)).unwrap();
        assert_eq!(b.read_i32((&r, &li)).unwrap(), vec![9, 7, 9]);
    }

    #[test]
    fn gather_and_scatter_add_follow_torch() {
        let b = backend();
        // torch.gather(src, 1, index): src [[1, 2], [3, 4]], index [[0, 0], [1, 0]].
        let (s, l) = f32s(&[1., 2., 3., 4.], &[2, 2]);
        let idx = b.from_i32(&[0, 0, 1, 0]).unwrap();
        let r = b.gather((&s, &l), 1, (&idx, &l)).unwrap();
        assert_eq!(read(&r, &[2, 2]), vec![1., 1., 4., 3.]);
        // Index narrower than src: picks one column per row ([3, 1] of [3, 4]).
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let (s, l) = f32s(&data, &[3, 4]);
        let idx = b.from_i32(&[3, 0, 2]).unwrap();
        let li = Layout::contiguous(&[3, 1]);
        let r = b.gather((&s, &l), 1, (&idx, &li)).unwrap();
        assert_eq!(read(&r, &[3, 1]), vec![3., 4., 10.]);
        // scatter_add is its adjoint: sums land where gather read from.
        let (ones, _) = f32s(&[1., 2., 3.], &[3, 1]);
        let r = b
            .scatter_add(&[3, 4], 1, (&idx, &li), (&ones, &li))
            .unwrap();
        let mut want = vec![0.0; 12];
        want[3] = 1.0;
        want[4] = 2.0;
        want[10] = 3.0;
        assert_eq!(read(&r, &[3, 4]), want);
        // Repeated indices accumulate (embedding gradients).
        let idx = b.from_i32(&[1, 1, 0]).unwrap();
        let l3 = Layout::contiguous(&[3, 1]);
        let r = b
            .scatter_add(&[2, 1], 0, (&idx, &l3), (&ones, &l3))
            .unwrap();
        assert_eq!(read(&r, &[2, 1]), vec![3., 3.]);
    }

    #[test]
    fn scatter_add_of_whole_rows_sums_in_order() {
        // An embedding-like gradient: indices [4] broadcast over [2, 4, 3]
        // along dim 1 (strides 0 elsewhere), src contiguous, repeats
        // included; against the sums written out.
        let b = backend();
        let idx = b.from_i32(&[9, 2, 0, 2, 4]).unwrap();
        let li = Layout {
            shape: vec![2, 4, 3],
            strides: vec![0, 1, 0],
            offset: 1,
        };
        let data: Vec<f32> = (0..24).map(|i| 0.1 * i as f32 + 0.37).collect();
        let (src, ls) = f32s(&data, &[2, 4, 3]);
        let r = b
            .scatter_add(&[2, 5, 3], 1, (&idx, &li), (&src, &ls))
            .unwrap();
        let mut want = vec![0.0f32; 30];
        for o in 0..2 {
            for (j, &row) in [2usize, 0, 2, 4].iter().enumerate() {
                for t in 0..3 {
                    want[(o * 5 + row) * 3 + t] += data[(o * 4 + j) * 3 + t];
                }
            }
        }
        assert_eq!(read(&r, &[2, 5, 3]), want);
        // An index out of range is an error on this path too.
        let bad = b.from_i32(&[0, 7]).unwrap();
        let lb = Layout {
            shape: vec![2, 3],
            strides: vec![1, 0],
            offset: 0,
        };
        let (src, ls) = f32s(&[1.0; 6], &[2, 3]);
        assert!(b.scatter_add(&[5, 3], 0, (&bad, &lb), (&src, &ls)).is_err());
    }

    #[test]
    fn out_of_range_indices_are_errors() {
        let b = backend();
        let (s, l) = f32s(&[1., 2., 3., 4.], &[2, 2]);
        let li = Layout::contiguous(&[2]);
        for bad in [[0, 2], [-1, 0]] {
            let idx = b.from_i32(&bad).unwrap();
            assert!(b.index_select((&s, &l), 0, (&idx, &li)).is_err());
        }
        let idx = b.from_i32(&[0, 5, 0, 0]).unwrap();
        assert!(b.gather((&s, &l), 1, (&idx, &l)).is_err());
        assert!(b.scatter_add(&[2, 2], 1, (&idx, &l), (&s, &l)).is_err());
        assert!(b.gather((&s, &l), 2, (&idx, &l)).is_err());
        let wide = Layout::contiguous(&[4, 1]);
        assert!(b.gather((&s, &l), 1, (&idx, &wide)).is_err());
    }
}
