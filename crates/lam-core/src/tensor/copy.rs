//! Ops that move data rather than compute on it: a contiguous copy of a
//! view, a copy in a buffer of its own (`copy`, PyTorch's `clone()`), joins (`cat`, `stack`) copying each input into a slice of one fresh
//! buffer, dtype casts, moves between devices, and reads back to the host
//! (Backend `copy`, `cast`, `read_f32`, `read_i32`). `F16` data crosses to
//! and from the host as `f32` (every half is exact in `f32`) and is cast on
//! the device, so backends need no upload or readback of their own for it.

use crate::layout::normalize_axis;
use crate::{DType, Device, Error, Layout, Result, Storage, Tensor};

impl Tensor {
    /// A row-major copy, or `self` when already contiguous.
    pub fn contiguous(&self) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Identity,
                &[Some(self)],
                || self.contiguous(),
            );
        }
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
        )
        .keeping_attained_range(&[self]))
    }

    /// A copy of the values in a buffer of its own, contiguous (PyTorch's
    /// `clone()`): writing to either tensor afterwards, in place or through
    /// an optimizer, leaves the other as it was. The copy is differentiable:
    /// its gradient flows to `self`. (`Tensor`'s `Clone` is another handle
    /// to the same values, as an `Rc` is.)
    pub fn copy(&self) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Identity,
                &[Some(self)],
                || self.copy(),
            );
        }
        let s = self.copy_to_new()?;
        Ok(
            Tensor::from_op("copy", s, Layout::contiguous(self.dims()), &[self], |g| {
                Ok(vec![Some(g.clone())])
            })
            .keeping_attained_range(&[self]),
        )
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
        // The pieces cover the output: nothing needs zeroing first.
        let out = backend.empty(shape.iter().product(), first.dtype())?;
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
        let joined = Tensor::from_op("cat", out, full, &inputs, move |g| {
            let mut grads = Vec::with_capacity(sizes.len());
            let mut start = 0;
            for &len in &sizes {
                grads.push(Some(g.narrow(d as isize, start, len)?));
                start += len;
            }
            Ok(grads)
        });
        Ok(joined.keeping_attained_range(&inputs))
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

    /// Zeros of `shape` with `self` written along dim `dim` at positions
    /// `start`, `start + step`, ...: the gradient of `narrow` (step 1) and
    /// of `slice_step`.
    pub(crate) fn pad_into(
        &self,
        shape: &[usize],
        dim: usize,
        start: usize,
        step: usize,
    ) -> Result<Tensor> {
        let backend = self.backend();
        let full = Layout::contiguous(shape);
        let len = self.dims()[dim];
        // On the CPU, where `empty` skips the fill, a contiguous piece (step
        // 1) goes into an unfilled buffer and only the rest is zeroed —
        // copied from one broadcast zero; elsewhere the buffer starts as
        // zeros (on a GPU one clear, where each region would be a dispatch).
        let regions = step == 1 && !self.device().is_gpu();
        let out = if regions {
            backend.empty(shape.iter().product(), self.dtype())?
        } else {
            backend.zeros(shape.iter().product(), self.dtype())?
        };
        let s = self.storage();
        backend.copy(
            (&s, self.layout()),
            (&out, &full.narrow_step(dim, start, len, step)?),
        )?;
        if regions {
            let zero = backend.zeros(1, self.dtype())?;
            for (first, count) in [(0, start), (start + len, shape[dim] - start - len)] {
                if count > 0 {
                    let region = full.narrow(dim, first, count)?;
                    let zeros = Layout {
                        strides: vec![0; region.rank()],
                        offset: 0,
                        shape: region.shape.clone(),
                    };
                    backend.copy((&zero, &zeros), (&out, &region))?;
                }
            }
        }
        // The padding holds zeros, which the input's bounds may not cover.
        let range = self.int_range().map(|(lo, hi)| (lo.min(0), hi.max(0)));
        Ok(Tensor::from_op("pad", out, full, &[self], move |g| {
            Ok(vec![Some(g.slice_step(
                dim as isize,
                start,
                start + len.saturating_sub(1) * step + usize::from(len > 0),
                step,
            )?)])
        })
        .with_int_range(range))
    }

    /// The elements as a row-major `Vec<f32>` (`I32` and `F16` tensors are
    /// converted; an `F16` value is exact in `f32`).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let s = self.storage();
        match self.dtype() {
            DType::F32 => self.backend().read_f32((&s, self.layout())),
            DType::F16 => {
                let wide = self.backend().cast((&s, self.layout()), DType::F32)?;
                let layout = Layout::contiguous(self.dims());
                self.backend().read_f32((&wide, &layout))
            }
            DType::I32 => Ok(self
                .backend()
                .read_i32((&s, self.layout()))?
                .into_iter()
                .map(|v| v as f32)
                .collect()),
        }
    }

    /// The elements of an `I32` tensor as a row-major `Vec<i32>`.
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        let s = self.storage();
        match self.dtype() {
            DType::I32 => self.backend().read_i32((&s, self.layout())),
            found => Err(Error::DTypeMismatch {
                op: "to_vec_i32",
                expected: DType::I32,
                found,
            }),
        }
    }

    /// The elements of an `F16` tensor as a row-major `Vec<f16>`, bit for
    /// bit (NaN payloads aside: a NaN reads back as a NaN).
    pub fn to_vec_f16(&self) -> Result<Vec<half::f16>> {
        if self.dtype() != DType::F16 {
            return Err(Error::DTypeMismatch {
                op: "to_vec_f16",
                expected: DType::F16,
                found: self.dtype(),
            });
        }
        Ok(self
            .to_vec()?
            .into_iter()
            .map(half::f16::from_f32)
            .collect())
    }

    /// A 2-d tensor as rows.
    pub fn to_vec2(&self) -> Result<Vec<Vec<f32>>> {
        if self.rank() != 2 {
            return Err(Error::RankMismatch {
                op: "to_vec2",
                expected: "2".into(),
                found: self.rank(),
                shape: self.shape(),
            });
        }
        let cols = self.dims()[1];
        Ok(self
            .to_vec()?
            .chunks(cols.max(1))
            .map(|c| c.to_vec())
            .collect())
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                "a tensor with one element",
                self.dims(),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// This tensor's data on `device` (a copy through host memory when the
    /// devices differ; gradients do not flow across the move).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if *device == self.device() {
            return Ok(self.clone());
        }
        match self.dtype() {
            DType::F32 => Tensor::from_vec(self.to_vec()?, self.dims(), device),
            DType::I32 => Tensor::from_vec_i32(self.to_vec_i32()?, self.dims(), device),
            DType::F16 => Tensor::from_f16(&self.to_vec_f16()?, self.dims(), device),
        }
    }

    /// Contiguous storage holding exactly this view's elements.
    pub(crate) fn copy_to_new(&self) -> Result<Storage> {
        // A cast to the same dtype is one gathering pass; a fresh buffer
        // filled with zeros and then copied into was three.
        let s = self.storage();
        self.backend().cast((&s, self.layout()), self.dtype())
    }

    /// This tensor converted to `dtype` (float to int truncates toward zero;
    /// `F32` to `F16` rounds to nearest even, with IEEE overflow to ±inf and
    /// subnormals). Between the float dtypes the cast is differentiable: the
    /// gradient is cast back, so an `F32` weight used as `F16` gets an `F32`
    /// gradient.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || {
                    if dtype == self.dtype() {
                        crate::capture::Op::Identity
                    } else {
                        crate::capture::Op::Cast { to: dtype }
                    }
                },
                &[Some(self)],
                || self.to_dtype(dtype),
            );
        }
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let s = self.storage();
        let out = self.backend().cast((&s, self.layout()), dtype)?;
        let layout = Layout::contiguous(self.dims());
        if self.dtype().is_float() && dtype.is_float() {
            let from = self.dtype();
            return Ok(Tensor::from_op("cast", out, layout, &[self], move |g| {
                Ok(vec![Some(g.to_dtype(from)?)])
            }));
        }
        Ok(Tensor::constant(out, layout, &self.device()))
    }

    /// This tensor as `F32` for an op that computes in `f32`: itself, or an
    /// `F16` tensor cast (differentiably); an `I32` tensor is an error
    /// naming `op`.
    pub(crate) fn float32(&self, op: &'static str) -> Result<Tensor> {
        match self.dtype() {
            DType::F32 => Ok(self.clone()),
            DType::F16 => self.to_dtype(DType::F32),
            found => Err(Error::DTypeMismatch {
                op,
                expected: DType::F32,
                found,
            }),
        }
    }

    /// Labels as `I32` (accepts `F32` holding whole numbers, for convenience).
    pub fn to_labels(&self) -> Result<Tensor> {
        self.to_dtype(DType::I32)
    }
}
