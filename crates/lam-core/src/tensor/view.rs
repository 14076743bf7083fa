//! Views: reshape, permute, narrow, expand, squeeze, split, ... build a new
//! [`Layout`] over the same storage without copying (a reshape copies only
//! when no view of the new shape exists). The ops that copy data —
//! `contiguous`, `cat`, `stack` — are in `copy.rs`.

use crate::autograd::Piece;
use crate::layout::normalize_axis;
use crate::{Error, Layout, Result, Tensor};

impl Tensor {
    /// The same elements with a new shape; one dim may be `-1` (inferred).
    /// A view when the layout allows, else a copy (as `torch.reshape`).
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let shape = infer_shape(shape, self.numel(), self.dims())?;
        self.reshape_exact(&shape)
    }

    /// [`Tensor::reshape`] with a fully specified shape.
    pub fn reshape_exact(&self, shape: &[usize]) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Reshape,
                &[Some(self)],
                || self.reshape_exact(shape),
            );
        }
        let fits = crate::layout::checked_numel("reshape", shape).ok() == Some(self.numel());
        if !fits {
            return Err(Error::shape(
                "reshape",
                format!(
                    "a shape with {} elements (from {:?})",
                    self.numel(),
                    self.dims()
                ),
                shape,
            ));
        }
        if shape == self.dims() {
            return Ok(self.clone());
        }
        let source = match self.layout().reshape(shape) {
            Some(_) => self.clone(),
            None => self.contiguous()?,
        };
        let layout = source
            .layout()
            .reshape(shape)
            .ok_or_else(|| Error::invalid("reshape", "contiguous layout could not be reshaped"))?;
        let in_shape = self.shape();
        Ok(
            Tensor::from_op("reshape", source.storage(), layout, &[&source], move |g| {
                Ok(vec![Some(g.reshape_exact(&in_shape)?)])
            })
            .keeping_attained_range(&[self]),
        )
    }

    /// Dimensions reordered: output dim `i` is input dim `dims[i]`.
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Permute(dims.to_vec()),
                &[Some(self)],
                || self.permute(dims),
            );
        }
        let layout = self.layout().permute(dims)?;
        let mut inverse = vec![0; dims.len()];
        for (i, &d) in dims.iter().enumerate() {
            inverse[d] = i;
        }
        Ok(
            Tensor::from_op("permute", self.storage(), layout, &[self], move |g| {
                Ok(vec![Some(g.permute(&inverse)?)])
            })
            .keeping_attained_range(&[self]),
        )
    }

    /// Dims `a` and `b` swapped.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let a = normalize_axis("transpose", a, self.rank())?;
        let b = normalize_axis("transpose", b, self.rank())?;
        let mut dims: Vec<usize> = (0..self.rank()).collect();
        dims.swap(a, b);
        self.permute(&dims)
    }

    /// The transpose of a matrix (the last two dims of any tensor of rank ≥ 2).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::RankMismatch {
                op: "t",
                expected: "at least 2".into(),
                found: self.rank(),
                shape: self.shape(),
            });
        }
        self.transpose(-2, -1)
    }

    /// A size-1 dim inserted at `dim` (`-1` appends).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_axis("unsqueeze", dim, self.rank() + 1)?;
        let mut shape = self.shape();
        shape.insert(d, 1);
        self.view_as_shape("unsqueeze", self.layout().unsqueeze(d))
    }

    /// The size-1 dim `dim` removed; a dim of any other size is kept, and
    /// the result is the input itself (PyTorch's `squeeze(dim)`).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        if self.rank() == 0 && (dim == 0 || dim == -1) {
            // PyTorch lets a scalar name dim 0 (or -1) and squeezes nothing.
            return Ok(self.clone());
        }
        let d = normalize_axis("squeeze", dim, self.rank())?;
        if self.dims()[d] != 1 {
            return Ok(self.clone());
        }
        self.view_as_shape("squeeze", self.layout().squeeze(d))
    }

    /// Every size-1 dim removed.
    pub fn squeeze_all(&self) -> Result<Tensor> {
        let shape: Vec<usize> = self.dims().iter().copied().filter(|&d| d != 1).collect();
        self.reshape_exact(&shape)
    }

    /// All dims from `start` to `end` (inclusive) merged into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape_exact(&[1]);
        }
        let s = normalize_axis("flatten", start, self.rank())?;
        let e = normalize_axis("flatten", end, self.rank())?;
        if s > e {
            return Err(Error::invalid(
                "flatten",
                format!("start dim {s} is after end dim {e}"),
            ));
        }
        let dims = self.dims();
        let mut shape: Vec<usize> = dims[..s].to_vec();
        shape.push(dims[s..=e].iter().product());
        shape.extend_from_slice(&dims[e + 1..]);
        self.reshape_exact(&shape)
    }

    /// The view repeated to `shape` without copying (NumPy broadcasting).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Expand,
                &[Some(self)],
                || self.broadcast_to(shape),
            );
        }
        if shape == self.dims() {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_to(shape)?;
        let in_shape = self.shape();
        let empty = layout.numel() == 0;
        let out = Tensor::from_op("broadcast_to", self.storage(), layout, &[self], move |g| {
            Ok(vec![Some(g.sum_to_shape(&in_shape)?)])
        });
        // A broadcast repeats every element, unless it repeats them 0 times.
        Ok(if empty {
            out
        } else {
            out.keeping_attained_range(&[self])
        })
    }

    /// PyTorch's `expand`: like `broadcast_to`, `-1` keeps a dim.
    pub fn expand(&self, shape: &[isize]) -> Result<Tensor> {
        let lead = shape.len().saturating_sub(self.rank());
        let mut target = Vec::with_capacity(shape.len());
        for (i, &s) in shape.iter().enumerate() {
            if s < -1 {
                return Err(Error::invalid(
                    "expand",
                    format!(
                        "size {s} at dim {i} of {shape:?}: sizes must be >= 0, or -1 to keep one"
                    ),
                ));
            }
            target.push(if s < 0 {
                if i < lead {
                    return Err(Error::invalid(
                        "expand",
                        "-1 is not allowed for new leading dims",
                    ));
                }
                self.dims()[i - lead]
            } else {
                s as usize
            });
        }
        self.broadcast_to(&target)
    }

    /// `len` elements of dim `dim` starting at `start`, without copying.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Narrow {
                    axis: normalize_axis("narrow", dim, self.rank()).unwrap_or_default(),
                    start,
                    len,
                },
                &[Some(self)],
                || self.narrow(dim, start, len),
            );
        }
        let d = normalize_axis("narrow", dim, self.rank())?;
        let layout = self.layout().narrow(d, start, len)?;
        let piece = Piece {
            dim: d,
            start,
            step: 1,
        };
        Ok(Tensor::from_piece("narrow", layout, self, piece))
    }

    /// PyTorch's slicing `x[.., start:end, ..]` on dim `dim`.
    pub fn slice(&self, dim: isize, start: usize, end: usize) -> Result<Tensor> {
        if end < start {
            return Err(Error::invalid(
                "slice",
                format!("end {end} is before start {start}"),
            ));
        }
        self.narrow(dim, start, end - start)
    }

    /// PyTorch's strided slicing `x[.., start:end:step, ..]` on dim `dim`:
    /// every `step`-th element from `start` up to (not including) `end`,
    /// as a view (the dim's stride times `step`, no copy).
    pub fn slice_step(&self, dim: isize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        if end < start {
            return Err(Error::invalid(
                "slice_step",
                format!("end {end} is before start {start}"),
            ));
        }
        if step == 0 {
            return Err(Error::invalid("slice_step", "step must be at least 1"));
        }
        let d = normalize_axis("slice_step", dim, self.rank())?;
        let len = (end - start).div_ceil(step);
        if end > self.dims()[d] {
            return Err(Error::invalid(
                "slice_step",
                format!(
                    "end {end} exceeds size {} of dim {d} (shape {:?})",
                    self.dims()[d],
                    self.dims()
                ),
            ));
        }
        let layout = self.layout().narrow_step(d, start, len, step)?;
        let piece = Piece {
            dim: d,
            start,
            step,
        };
        Ok(Tensor::from_piece("slice_step", layout, self, piece))
    }

    /// Row `index` of dim 0 with that dim removed (`x[i]`).
    pub fn get(&self, index: usize) -> Result<Tensor> {
        self.narrow(0, index, 1)?.squeeze(0)
    }

    /// `chunks` nearly equal views along `dim` (the last may be smaller).
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        if chunks == 0 {
            return Err(Error::invalid("chunk", "chunks must be at least 1"));
        }
        let d = normalize_axis("chunk", dim, self.rank())?;
        let size = self.dims()[d];
        if size == 0 {
            // PyTorch: `chunks` empty pieces.
            return (0..chunks).map(|_| self.narrow(d as isize, 0, 0)).collect();
        }
        let step = size.div_ceil(chunks).max(1);
        self.split(step, d as isize)
    }

    /// Views of `size` elements along `dim` (the last may be smaller).
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        if size == 0 {
            return Err(Error::invalid("split", "split size must be at least 1"));
        }
        let d = normalize_axis("split", dim, self.rank())?;
        let total = self.dims()[d];
        if total == 0 {
            // PyTorch: one empty piece.
            return Ok(vec![self.narrow(d as isize, 0, 0)?]);
        }
        (0..total)
            .step_by(size)
            .map(|start| self.narrow(d as isize, start, size.min(total - start)))
            .collect()
    }

    /// A view with a layout of the same elements (squeeze/unsqueeze).
    fn view_as_shape(&self, name: &'static str, layout: Layout) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Reshape,
                &[Some(self)],
                || self.view_as_shape(name, layout),
            );
        }
        let in_shape = self.shape();
        Ok(
            Tensor::from_op(name, self.storage(), layout, &[self], move |g| {
                Ok(vec![Some(g.reshape_exact(&in_shape)?)])
            })
            .keeping_attained_range(&[self]),
        )
    }
}

/// Resolves one `-1` in a requested shape against the element count.
fn infer_shape(shape: &[isize], numel: usize, from: &[usize]) -> Result<Vec<usize>> {
    if let Some((i, &s)) = shape.iter().enumerate().find(|(_, &s)| s < -1) {
        return Err(Error::invalid(
            "reshape",
            format!(
                "size {s} at dim {i} of {shape:?}: sizes must be >= 0, or -1 for one inferred dim"
            ),
        ));
    }
    let bad = || {
        Error::shape(
            "reshape",
            format!("a shape with {numel} elements (from {from:?})"),
            &shape.iter().map(|&s| s.max(0) as usize).collect::<Vec<_>>(),
        )
    };
    let known: Vec<usize> = shape
        .iter()
        .filter(|&&s| s >= 0)
        .map(|&s| s as usize)
        .collect();
    let known = crate::layout::checked_numel("reshape", &known)?;
    match shape.iter().filter(|&&s| s == -1).count() {
        0 => Ok(shape.iter().map(|&s| s as usize).collect()),
        1 if known > 0 && numel.is_multiple_of(known) => Ok(shape
            .iter()
            .map(|&s| if s < 0 { numel / known } else { s as usize })
            .collect()),
        _ => Err(bad()),
    }
}
