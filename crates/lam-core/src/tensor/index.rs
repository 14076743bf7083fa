//! Indexing by integer tensors: `index_select` (embedding lookups, batching
//! by indices), `gather` (picking one value per row, e.g. a class score) and
//! `scatter_add` (their gradient, and histogram-like sums). Index tensors are
//! `I32`; an index outside the indexed dim is an error. Every backend checks
//! the indices it reads (the CPU at the call, a GPU in its kernels, reporting
//! at the next readback), so nothing is read back here; the bounds an index
//! tensor carries only turn an index that is certainly out of range into an
//! error at the call.

use crate::layout::normalize_axis;
use crate::{Error, Layout, Result, Tensor};

impl Tensor {
    /// Entries `index[i]` of dim `dim`: output dim `dim` has `index.numel()` entries.
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::IndexSelect {
                    axis: normalize_axis("index_select", dim, self.rank()).unwrap_or_default(),
                },
                &[Some(self), Some(index)],
                || self.index_select(dim, index),
            );
        }
        let d = normalize_axis("index_select", dim, self.rank())?;
        self.device().check_same(&index.device(), "index_select")?;
        index.check_i32("index_select")?;
        self.check_not_f16("index_select")?;
        if index.rank() != 1 {
            return Err(Error::RankMismatch {
                op: "index_select",
                expected: "1 (a vector of indices)".into(),
                found: index.rank(),
                shape: index.shape(),
            });
        }
        index.check_indices("index_select", self.dims()[d])?;
        let mut shape = self.shape();
        shape[d] = index.numel();
        crate::layout::checked_numel("index_select", &shape)?;
        let (s, i) = (self.storage(), index.storage());
        let out = self
            .backend()
            .index_select((&s, self.layout()), d, (&i, index.layout()))?;
        let (in_shape, idx) = (self.shape(), index.clone());
        Ok(Tensor::from_op(
            "index_select",
            out,
            Layout::contiguous(&shape),
            &[self],
            move |g| {
                // Scatter rows of g back to the rows they came from, summing repeats.
                let idx_full = idx.reshape_for_dim(g.dims(), d)?;
                Ok(vec![Some(
                    Tensor::zeros(&in_shape, &g.device())?.scatter_add(d as isize, &idx_full, g)?,
                )])
            },
        ))
    }

    /// Values at `index` along `dim`: `out[i][j] = self[i][index[i][j]]` (dim 1).
    /// `index` has `self`'s rank and no larger size in any other dim.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Gather {
                    axis: normalize_axis("gather", dim, self.rank()).unwrap_or_default(),
                },
                &[Some(self), Some(index)],
                || self.gather(dim, index),
            );
        }
        let d = normalize_axis("gather", dim, self.rank())?;
        self.device().check_same(&index.device(), "gather")?;
        index.check_i32("gather")?;
        self.check_not_f16("gather")?;
        self.check_index_shape("gather", d, index)?;
        index.check_indices("gather", self.dims()[d])?;
        let (s, i) = (self.storage(), index.storage());
        let out = self
            .backend()
            .gather((&s, self.layout()), d, (&i, index.layout()))?;
        let (in_shape, idx) = (self.shape(), index.clone());
        Ok(Tensor::from_op(
            "gather",
            out,
            Layout::contiguous(index.dims()),
            &[self],
            move |g| {
                Ok(vec![Some(
                    Tensor::zeros(&in_shape, &g.device())?.scatter_add(d as isize, &idx, g)?,
                )])
            },
        ))
    }

    /// `self` plus `src` added at `index` along `dim`:
    /// `out[i][index[i][j]] += src[i][j]` (dim 1). `index` and `src` share a shape.
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let d = normalize_axis("scatter_add", dim, self.rank())?;
        self.device().check_same(&index.device(), "scatter_add")?;
        self.device().check_same(&src.device(), "scatter_add")?;
        index.check_i32("scatter_add")?;
        src.check_f32("scatter_add")?;
        index.check_same_shape(src, "scatter_add")?;
        self.check_index_shape("scatter_add", d, index)?;
        index.check_indices("scatter_add", self.dims()[d])?;
        let (i, s) = (index.storage(), src.storage());
        let scattered =
            self.backend()
                .scatter_add(self.dims(), d, (&i, index.layout()), (&s, src.layout()))?;
        let idx = index.clone();
        let scattered = Tensor::from_op(
            "scatter_add",
            scattered,
            Layout::contiguous(self.dims()),
            &[src],
            move |g| Ok(vec![Some(g.gather(d as isize, &idx)?)]),
        );
        self.add(&scattered)
    }

    /// A 1-d index broadcast to `shape` along `dim` (for index_select's gradient).
    fn reshape_for_dim(&self, shape: &[usize], dim: usize) -> Result<Tensor> {
        let mut view = vec![1usize; shape.len()];
        view[dim] = self.numel();
        // A broadcast view, not a copy: the backends' scatter_add add whole
        // rows when the index varies along `dim` only.
        self.reshape_exact(&view)?.broadcast_to(shape)
    }

    fn check_index_shape(&self, op: &'static str, dim: usize, index: &Tensor) -> Result<()> {
        let ok = index.rank() == self.rank()
            && index
                .dims()
                .iter()
                .zip(self.dims())
                .enumerate()
                .all(|(i, (&a, &b))| i == dim || a <= b);
        if !ok {
            return Err(Error::shape(
                op,
                format!(
                    "an index of rank {} no larger than {:?} outside dim {dim}",
                    self.rank(),
                    self.dims()
                ),
                index.dims(),
            ));
        }
        Ok(())
    }

    /// An error at the call when the known bounds prove an index outside
    /// `0..size`: bounds the tensor attains (host data, and what keeps all
    /// of it) when either lies outside, or any bounds that lie wholly
    /// outside. Bounds are sound but may be loose — a slice keeps its whole
    /// tensor's bounds, `argmax` or `randint` declare a range no value need
    /// reach — so anything else is left to the backend, which checks every
    /// index it reads (see the `Backend` trait), and an index op never reads
    /// a GPU buffer back in the middle of a training step.
    pub(crate) fn check_indices(&self, op: &'static str, size: usize) -> Result<()> {
        let Some((lo, hi)) = self.int_range().filter(|_| self.numel() > 0) else {
            return Ok(());
        };
        let size_i64 = i64::try_from(size).unwrap_or(i64::MAX);
        let outside = |v: i32| v < 0 || i64::from(v) >= size_i64;
        // Attained bounds are values of the tensor; bounds wholly outside
        // `0..size` put every value outside.
        let proof = if self.range_attained() {
            [lo, hi].into_iter().find(|&v| outside(v))
        } else if hi < 0 || i64::from(lo) >= size_i64 {
            Some(lo)
        } else {
            None
        };
        match proof {
            Some(index) => Err(Error::OutOfRange {
                op,
                index: i64::from(index),
                size,
            }),
            None => Ok(()),
        }
    }
}
