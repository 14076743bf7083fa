//! Views and joins. Views (reshape, permute, narrow, expand, ...) build a new
//! [`Layout`] over the same storage without copying; `contiguous` copies only
//! when the layout is not already row-major. `cat`/`stack` copy each input
//! into a slice of one fresh buffer with the backend's strided `copy`.

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
        Ok(Tensor::from_op(
            "reshape",
            source.storage(),
            layout,
            &[&source],
            move |g| Ok(vec![Some(g.reshape_exact(&in_shape)?)]),
        ))
    }

    /// Dimensions reordered: output dim `i` is input dim `dims[i]`.
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        let layout = self.layout().permute(dims)?;
        let mut inverse = vec![0; dims.len()];
        for (i, &d) in dims.iter().enumerate() {
            inverse[d] = i;
        }
        Ok(Tensor::from_op(
            "permute",
            self.storage(),
            layout,
            &[self],
            move |g| Ok(vec![Some(g.permute(&inverse)?)]),
        ))
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

    /// The size-1 dim `dim` removed (an error if it is not size 1).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_axis("squeeze", dim, self.rank())?;
        if self.dims()[d] != 1 {
            return Err(Error::shape(
                "squeeze",
                format!("size 1 at dim {d}"),
                self.dims(),
            ));
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
        if shape == self.dims() {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_to(shape)?;
        let in_shape = self.shape();
        Ok(Tensor::from_op(
            "broadcast_to",
            self.storage(),
            layout,
            &[self],
            move |g| Ok(vec![Some(g.sum_to_shape(&in_shape)?)]),
        ))
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
        let d = normalize_axis("narrow", dim, self.rank())?;
        let layout = self.layout().narrow(d, start, len)?;
        let in_shape = self.shape();
        Ok(Tensor::from_op(
            "narrow",
            self.storage(),
            layout,
            &[self],
            move |g| Ok(vec![Some(g.pad_into(&in_shape, d, start)?)]),
        ))
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

    /// Row `index` of dim 0 with that dim removed (`x[i]`).
    pub fn get(&self, index: usize) -> Result<Tensor> {
        self.narrow(0, index, 1)?.squeeze(0)
    }

    /// A row-major copy, or `self` when already contiguous.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.layout().is_contiguous() {
            return Ok(self.clone());
        }
        let s = self.copy_to_new()?;
        Ok(Tensor::from_op(
            "contiguous",
            s,
            Layout::contiguous(self.dims()),
            &[self],
            |g| Ok(vec![Some(g.clone())]),
        ))
    }

    /// Tensors joined along `dim`; all other dims must agree.
    pub fn cat(tensors: &[Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors.first().ok_or(Error::Empty { op: "cat" })?;
        let d = normalize_axis("cat", dim, first.rank())?;
        let mut shape = first.shape();
        shape[d] = 0;
        for t in tensors {
            first.device().check_same(&t.device(), "cat")?;
            if t.dtype() != first.dtype() {
                return Err(Error::DTypeMismatch {
                    op: "cat",
                    expected: first.dtype(),
                    found: t.dtype(),
                });
            }
            let same_rest = t.rank() == first.rank()
                && t.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (a, b))| i == d || a == b);
            if !same_rest {
                return Err(Error::shape(
                    "cat",
                    format!("{:?} except along dim {d}", first.dims()),
                    t.dims(),
                ));
            }
            shape[d] += t.dims()[d];
        }
        let backend = first.backend();
        let out = backend.zeros(shape.iter().product(), first.dtype())?;
        let full = Layout::contiguous(&shape);
        let mut start = 0;
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in tensors {
            let len = t.dims()[d];
            let s = t.storage();
            backend.copy((&s, t.layout()), (&out, &full.narrow(d, start, len)?))?;
            sizes.push(len);
            start += len;
        }
        let inputs: Vec<&Tensor> = tensors.iter().collect();
        Ok(Tensor::from_op("cat", out, full, &inputs, move |g| {
            let mut grads = Vec::with_capacity(sizes.len());
            let mut start = 0;
            for &len in &sizes {
                grads.push(Some(g.narrow(d as isize, start, len)?));
                start += len;
            }
            Ok(grads)
        }))
    }

    /// Tensors of one shape stacked along a new dim `dim`.
    pub fn stack(tensors: &[Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors.first().ok_or(Error::Empty { op: "stack" })?;
        let d = normalize_axis("stack", dim, first.rank() + 1)?;
        let expanded = tensors
            .iter()
            .map(|t| {
                first.check_same_shape(t, "stack")?;
                t.unsqueeze(d as isize)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&expanded, d as isize)
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
        let in_shape = self.shape();
        Ok(Tensor::from_op(
            name,
            self.storage(),
            layout,
            &[self],
            move |g| Ok(vec![Some(g.reshape_exact(&in_shape)?)]),
        ))
    }

    /// Zeros of `shape` with `self` written at offset `start` of dim `dim`:
    /// the gradient of `narrow`.
    pub(crate) fn pad_into(&self, shape: &[usize], dim: usize, start: usize) -> Result<Tensor> {
        let backend = self.backend();
        let out = backend.zeros(shape.iter().product(), self.dtype())?;
        let full = Layout::contiguous(shape);
        let s = self.storage();
        backend.copy(
            (&s, self.layout()),
            (&out, &full.narrow(dim, start, self.dims()[dim])?),
        )?;
        let len = self.dims()[dim];
        // The padding holds zeros, which the input's bounds may not cover.
        let range = self.int_range().map(|(lo, hi)| (lo.min(0), hi.max(0)));
        Ok(Tensor::from_op("pad", out, full, &[self], move |g| {
            Ok(vec![Some(g.narrow(dim as isize, start, len)?)])
        })
        .with_int_range(range))
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
