//! Shapes, strides and views. A [`Layout`] says where each element of a
//! logical n-d array lives in a flat storage buffer: `offset + Σ index[d] *
//! strides[d]`. Views (transpose, narrow, expand, ...) only build new layouts;
//! stride 0 is how broadcasting repeats an element without copying it.

use crate::{Error, Result};

/// Shape, strides (in elements) and starting offset of a view into storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl Layout {
    /// An error naming `op` unless this view has `rank` dims; `what` names
    /// the operand ("input", "weight", ...).
    pub fn expect_rank(&self, op: &'static str, what: &str, rank: usize) -> Result<()> {
        if self.rank() == rank {
            Ok(())
        } else {
            Err(Error::RankMismatch {
                op,
                expected: format!("{rank} ({what})"),
                found: self.rank(),
                shape: self.shape.clone(),
            })
        }
    }

    /// An error naming `op` unless this view has shape `want`; `what` names
    /// the operand in the message ("input", "columns", ...).
    pub fn expect_shape(&self, op: &'static str, what: &str, want: &[usize]) -> Result<()> {
        if self.shape == want {
            Ok(())
        } else {
            Err(Error::shape(
                op,
                format!("{what} of shape {want:?}"),
                &self.shape,
            ))
        }
    }

    /// The row-major layout of a fresh buffer of `shape`.
    pub fn contiguous(shape: &[usize]) -> Layout {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements; `usize::MAX` for a shape whose product does not
    /// fit (lam never builds one: see [`checked_numel`]), so no caller
    /// computes with a wrapped count.
    pub fn numel(&self) -> usize {
        checked_product(&self.shape).unwrap_or(usize::MAX)
    }

    /// True when the elements are laid out row-major with no gaps, so the
    /// view is the slice `offset..offset + numel` of its storage.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&dim, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected *= dim;
        }
        true
    }

    /// The storage offsets of every element, in row-major order of the shape.
    /// The CPU backend walks views with this; it is also the definition any
    /// other backend's strided indexing must agree with.
    pub fn offsets(&self) -> StridedOffsets<'_> {
        StridedOffsets {
            layout: self,
            index: vec![0; self.rank()],
            next: self.offset,
            remaining: self.numel(),
        }
    }

    /// The view with dimensions reordered: `dims[i]` is the source dimension
    /// that becomes dimension `i`.
    pub fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if dims.len() != rank {
            return Err(Error::invalid(
                "permute",
                format!("expected {rank} dims, found {dims:?}"),
            ));
        }
        for &d in dims {
            if d >= rank || seen[d] {
                return Err(Error::invalid(
                    "permute",
                    format!("{dims:?} is not a permutation of 0..{rank}"),
                ));
            }
            seen[d] = true;
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }

    /// The view of `len` elements along `dim` starting at `start`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        self.narrow_step(dim, start, len, 1)
    }

    /// The view of `len` elements along `dim`, `step` apart, starting at
    /// `start` (`x[start::step]` limited to `len` elements): the stride
    /// of `dim` is multiplied by `step`.
    pub fn narrow_step(&self, dim: usize, start: usize, len: usize, step: usize) -> Result<Layout> {
        let size = *self.shape.get(dim).ok_or(Error::OutOfRange {
            op: "narrow",
            index: dim as i64,
            size: self.rank(),
        })?;
        if step == 0 {
            return Err(Error::invalid("narrow", "step must be at least 1"));
        }
        // One past the last element read (`start` itself when empty).
        let end = match len {
            0 => Some(start),
            _ => (len - 1)
                .checked_mul(step)
                .and_then(|span| span.checked_add(start)?.checked_add(1)),
        };
        if end.is_none_or(|end| end > size) {
            return Err(Error::invalid(
                "narrow",
                match step {
                    1 => format!("range {start}..{start}+{len} exceeds size {size} of dim {dim}"),
                    _ => format!(
                        "{len} elements {step} apart from {start}: the range exceeds size \
                         {size} of dim {dim}"
                    ),
                },
            ));
        }
        let mut out = self.clone();
        out.shape[dim] = len;
        out.offset += start * self.strides[dim];
        // A stride beyond the storage is never followed when len ≤ 1.
        out.strides[dim] = if len > 1 {
            self.strides[dim] * step
        } else {
            self.strides[dim]
        };
        Ok(out)
    }

    /// The view repeated (stride 0) to `shape`, NumPy broadcasting rules.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        checked_numel("broadcast_to", shape)?;
        if shape.len() < self.rank() {
            return Err(Error::shape(
                "broadcast_to",
                format!("a shape that {:?} broadcasts to", self.shape),
                shape,
            ));
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for (i, &target) in shape.iter().enumerate().skip(lead) {
            let (dim, stride) = (self.shape[i - lead], self.strides[i - lead]);
            strides[i] = if dim == target {
                stride
            } else if dim == 1 {
                0
            } else {
                return Err(Error::shape(
                    "broadcast_to",
                    format!("a shape that {:?} broadcasts to", self.shape),
                    shape,
                ));
            };
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// A view with `shape` over the same elements, if one exists without a
    /// copy (always for contiguous layouts; otherwise when the dims being
    /// merged or split are themselves contiguous with each other).
    pub fn reshape(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: shape.to_vec(),
                strides: contiguous_strides(shape),
                offset: self.offset,
            });
        }
        reshape_strided(self, shape)
    }

    /// The view with a size-1 dimension inserted at `dim`.
    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut out = self.clone();
        let stride = if dim < self.rank() {
            self.strides[dim] * self.shape[dim]
        } else {
            1
        };
        out.shape.insert(dim, 1);
        out.strides.insert(dim, stride);
        out
    }

    /// The view with the size-1 dimension `dim` removed.
    pub fn squeeze(&self, dim: usize) -> Layout {
        let mut out = self.clone();
        if self.shape.get(dim) == Some(&1) {
            out.shape.remove(dim);
            out.strides.remove(dim);
        }
        out
    }
}

/// The most elements lam allows in one tensor: its bytes (at most 8 per
/// element) must be addressable, which Rust caps at `isize::MAX`.
pub const MAX_NUMEL: usize = (isize::MAX as usize) / 8;

/// The number of elements of `shape`, or an error naming `op` when the
/// product overflows or exceeds [`MAX_NUMEL`] — never a wrapped count (a
/// wrapped product once made `zeros([1 << 32, 1 << 32])` a tensor of 0
/// elements).
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    match checked_product(shape) {
        Some(n) if n <= MAX_NUMEL => Ok(n),
        _ => Err(Error::invalid(
            op,
            format!("shape {shape:?} has more elements than memory can address ({MAX_NUMEL})"),
        )),
    }
}

fn checked_product(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        // Saturating: an oversized shape is rejected by `checked_numel`
        // wherever lam builds one; here it must only not panic.
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1]);
    }
    strides
}

/// The shape two shapes broadcast to under NumPy's rules, or an error naming both.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(
                    op,
                    format!("a shape broadcastable with {a:?}"),
                    b,
                ))
            }
        };
    }
    checked_numel(op, &out)?;
    Ok(out)
}

/// Resolves a possibly negative axis against `rank` (PyTorch's `dim=-1`).
/// Valid axes are `-rank..rank`, so a 0-d tensor has none; the ops that
/// PyTorch lets take `dim` 0 or -1 on a scalar (softmax, reductions) handle
/// that case themselves.
pub fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::OutOfRange {
            op,
            index: axis as i64,
            size: rank,
        });
    }
    Ok(a as usize)
}

/// Iterator over the storage offsets of a [`Layout`], row-major.
pub struct StridedOffsets<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: usize,
    remaining: usize,
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.next;
        // Odometer increment of the multi-index, updating the offset incrementally.
        for d in (0..self.index.len()).rev() {
            self.index[d] += 1;
            self.next += self.layout.strides[d];
            if self.index[d] < self.layout.shape[d] {
                break;
            }
            self.next -= self.layout.strides[d] * self.index[d];
            self.index[d] = 0;
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for StridedOffsets<'_> {}

/// Reshape of a non-contiguous view without copying, following PyTorch's
/// `computeStride`: each run of source dims that is contiguous in memory can
/// be split or merged freely.
fn reshape_strided(src: &Layout, shape: &[usize]) -> Option<Layout> {
    if src.numel() != shape.iter().product::<usize>() {
        return None;
    }
    // Drop size-1 source dims; they never constrain strides.
    let dims: Vec<(usize, usize)> = src
        .shape
        .iter()
        .zip(&src.strides)
        .filter(|(&d, _)| d != 1)
        .map(|(&d, &s)| (d, s))
        .collect();
    let mut strides = vec![0; shape.len()];
    let mut out_i = 0;
    let mut src_i = 0;
    while src_i < dims.len() {
        // Gather a maximal chunk of source dims contiguous with each other.
        let chunk_start = src_i;
        let mut chunk_numel = dims[src_i].0;
        while src_i + 1 < dims.len() && dims[src_i].1 == dims[src_i + 1].0 * dims[src_i + 1].1 {
            src_i += 1;
            chunk_numel *= dims[src_i].0;
        }
        let chunk_stride = dims[src_i].1;
        let _ = chunk_start;
        // Consume output dims whose product equals the chunk.
        let mut acc = 1;
        let first_out = out_i;
        while out_i < shape.len() && (acc < chunk_numel || shape[out_i] == 1) {
            if acc == chunk_numel && shape[out_i] == 1 {
                break;
            }
            acc *= shape[out_i];
            out_i += 1;
        }
        if acc != chunk_numel {
            return None;
        }
        let mut stride = chunk_stride;
        for o in (first_out..out_i).rev() {
            strides[o] = stride;
            stride *= shape[o];
        }
        src_i += 1;
    }
    // Remaining output dims must be size 1.
    while out_i < shape.len() {
        if shape[out_i] != 1 {
            return None;
        }
        strides[out_i] = 1;
        out_i += 1;
    }
    Some(Layout {
        shape: shape.to_vec(),
        strides,
        offset: src.offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_transposed_strides() {
        let l = Layout::contiguous(&[2, 3]).permute(&[1, 0]).unwrap();
        assert_eq!(l.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
    }

    #[test]
    fn broadcast_shapes_follow_numpy() {
        assert_eq!(broadcast_shapes("t", &[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 2]).unwrap(), vec![2, 2]);
        assert!(broadcast_shapes("t", &[3], &[4]).is_err());
    }

    #[test]
    fn reshape_of_transpose_merges_only_contiguous_runs() {
        // [2,3,4] permuted to [3,2,4]: the last dim stays contiguous, so
        // splitting it is a view while merging dims 0 and 1 is not.
        let l = Layout::contiguous(&[2, 3, 4]).permute(&[1, 0, 2]).unwrap();
        let split = l.reshape(&[3, 2, 2, 2]).unwrap();
        assert_eq!(split.strides, vec![4, 12, 2, 1]);
        assert!(l.reshape(&[6, 4]).is_none());
    }

    #[test]
    fn broadcast_view_repeats_with_zero_stride() {
        let l = Layout::contiguous(&[3, 1])
            .broadcast_to(&[2, 3, 4])
            .unwrap();
        assert_eq!(l.strides, vec![0, 1, 0]);
        assert_eq!(l.offsets().take(5).collect::<Vec<_>>(), vec![0, 0, 0, 0, 1]);
    }
}
