//! Reductions over chosen axes (with `keepdim`) and over all elements: sum,
//! mean, max, min, argmax, argmin, var, std. Axes may be negative. The
//! backend always keeps reduced dims as size 1; dropping them is a free
//! reshape here.
//!
//! Groups of no elements follow PyTorch: their sum is 0, their mean `0/0`
//! (NaN), and a variance with no degrees of freedom left (`n ≤ correction`)
//! divides by 0 (NaN for a constant or empty group, `inf` otherwise).
//!
//! A mean is the sum divided by the count, as PyTorch computes it, except
//! for a group whose values are all equal (its max equals its min): its mean
//! is that value exactly. A rounded sum would be off by an ulp, and that
//! error, divided by `sqrt(eps)`, made LayerNorm and BatchNorm of a constant
//! row ±0.02 at magnitude 1000 where it must be exactly 0; with an exact mean
//! the variance of such a group is exactly 0 too.

use super::Dims;
use crate::backend::ReduceOp;
use crate::layout::normalize_axis;
use crate::{no_grad, DType, Error, Layout, Result, Tensor};

impl Tensor {
    /// Sum over `dims` (one dim, or a list; all dims when empty).
    pub fn sum(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Reduce {
                    op: ReduceOp::Sum,
                    axes: self.resolve_axes("sum", dims.as_dims()).unwrap_or_default(),
                    keepdim,
                },
                &[Some(self)],
                || self.sum(dims.as_dims(), keepdim),
            );
        }
        let dims = dims.as_dims();
        let axes = self.resolve_axes("sum", dims)?;
        let kept = self.reduce_raw(ReduceOp::Sum, &axes)?;
        let in_shape = self.shape();
        let kept_shape = kept.1.shape.clone();
        let out = Tensor::from_op("sum", kept.0, kept.1, &[self], move |g| {
            Ok(vec![Some(
                g.reshape_exact(&kept_shape)?
                    .broadcast_to(&in_shape)?
                    .contiguous()?,
            )])
        });
        out.drop_axes(&axes, keepdim)
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean over `dims` (all dims when empty); exactly `v` for equal values
    /// `v` (see the module doc). A group of no elements has mean NaN, as in
    /// PyTorch.
    pub fn mean(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Mean {
                    axes: self
                        .resolve_axes("mean", dims.as_dims())
                        .unwrap_or_default(),
                    keepdim,
                },
                &[Some(self)],
                || self.mean(dims.as_dims(), keepdim),
            );
        }
        let dims = dims.as_dims();
        let axes = self.resolve_axes("mean", dims)?;
        let count: usize = axes.iter().map(|&a| self.dims()[a]).product();
        self.mean_kept(&axes, count)?.drop_axes(&axes, keepdim)
    }

    /// Mean of all elements, as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    /// Maximum over `dims`; the gradient is shared evenly among tied maxima.
    pub fn max(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        self.extremum(ReduceOp::Max, dims.as_dims(), keepdim)
    }

    /// Minimum over `dims`; the gradient is shared evenly among tied minima.
    pub fn min(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        self.extremum(ReduceOp::Min, dims.as_dims(), keepdim)
    }

    /// Largest element, as a 0-d tensor.
    pub fn max_all(&self) -> Result<Tensor> {
        self.max(&[], false)
    }

    /// Smallest element, as a 0-d tensor.
    pub fn min_all(&self) -> Result<Tensor> {
        self.min(&[], false)
    }

    /// Index (`I32`) of the largest element along `dim`; the first on ties.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extremum(ReduceOp::ArgMax, dim, keepdim)
    }

    /// Index (`I32`) of the smallest element along `dim`; the first on ties.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extremum(ReduceOp::ArgMin, dim, keepdim)
    }

    /// Variance over `dims`, dividing by `n - correction`: `true` (PyTorch's
    /// `unbiased=True`, its default) is 1, `false` is 0, and a number is
    /// PyTorch's `correction=`. With `n ≤ correction` the divisor is 0
    /// (see the module doc).
    pub fn var(
        &self,
        dims: impl Dims,
        keepdim: bool,
        correction: impl Into<Correction>,
    ) -> Result<Tensor> {
        Ok(self.var_mean(dims, keepdim, correction)?.0)
    }

    /// Standard deviation over `dims`: the square root of [`Tensor::var`]
    /// with the same `correction` (PyTorch's `std`). Where it is 0 its
    /// gradient is 0, as PyTorch's (not the `1/0` of a square root).
    pub fn std(
        &self,
        dims: impl Dims,
        keepdim: bool,
        correction: impl Into<Correction>,
    ) -> Result<Tensor> {
        let var = self.var(dims, keepdim, correction)?;
        let std = no_grad(|| var.detach().sqrt())?;
        let (root, zero) = (std.detach(), Tensor::scalar(0.0, &self.device())?);
        Ok(Tensor::from_op(
            "std",
            std.storage(),
            std.layout().clone(),
            &[&var],
            move |g| {
                // d√v/dv = 1 / (2√v), and 0 where √v is 0.
                let slope = root.mul_scalar(2.0)?.recip()?;
                let slope = Tensor::where_cond(&root.eq(&zero)?, &zero, &slope)?;
                Ok(vec![Some(g.mul(&slope)?)])
            },
        ))
    }

    /// Variance and mean over `dims` from one shared centring (PyTorch's
    /// `var_mean`); exactly 0 and `v` for equal values `v`.
    pub fn var_mean(
        &self,
        dims: impl Dims,
        keepdim: bool,
        correction: impl Into<Correction>,
    ) -> Result<(Tensor, Tensor)> {
        let correction = correction.into().value("var")?;
        let dims = dims.as_dims();
        let axes = self.resolve_axes("var", dims)?;
        let n: usize = axes.iter().map(|&a| self.dims()[a]).product();
        // PyTorch's divisor, max(0, n − correction): 0 gives NaN or inf.
        let denom = (n as f64 - correction).max(0.0) as f32;
        let mean = self.mean_kept(&axes, n)?;
        let var = self
            .sub(&mean)?
            .square()?
            .sum(dims, true)?
            .div_scalar(denom)?;
        Ok((
            var.drop_axes(&axes, keepdim)?,
            mean.drop_axes(&axes, keepdim)?,
        ))
    }

    /// Sums broadcast dims away so the result has `shape` (the gradient of
    /// broadcasting).
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.dims() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.len()).ok_or_else(|| {
            Error::shape(
                "sum_to_shape",
                format!("a shape that {shape:?} broadcasts to"),
                self.dims(),
            )
        })?;
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for (i, &s) in shape.iter().enumerate() {
            let d = self.dims()[lead + i];
            if s == 1 && d != 1 {
                axes.push((lead + i) as isize);
            } else if s != d {
                return Err(Error::shape(
                    "sum_to_shape",
                    format!("a shape that {shape:?} broadcasts to"),
                    self.dims(),
                ));
            }
        }
        if axes.is_empty() {
            return self.reshape_exact(shape);
        }
        self.sum(&axes, true)?.reshape_exact(shape)
    }

    fn extremum(&self, op: ReduceOp, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Reduce {
                    op,
                    axes: self.resolve_axes("max", dims).unwrap_or_default(),
                    keepdim,
                },
                &[Some(self)],
                || self.extremum(op, dims, keepdim),
            );
        }
        let name = if op == ReduceOp::Max { "max" } else { "min" };
        let axes = self.resolve_axes(name, dims)?;
        if self.numel() == 0 {
            return Err(Error::Empty { op: name });
        }
        let (storage, layout) = self.reduce_raw(op, &axes)?;
        let x = self.detach();
        let y = Tensor::from_storage(storage.clone(), layout.clone(), &self.device());
        let reduced: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        let out = Tensor::from_op(name, storage, layout, &[self], move |g| {
            // The gradient goes to every element equal to the extremum,
            // divided by how many there are (PyTorch's amax rule: a NaN
            // extremum equals no element, so its group's gradient is NaN).
            let mask = x.eq(&y)?;
            let count = if reduced.is_empty() {
                mask.clone()
            } else {
                mask.sum(&reduced, true)?
            };
            Ok(vec![Some(
                mask.mul(&g.reshape_exact(y.dims())?.div(&count)?)?,
            )])
        });
        out.drop_axes(&axes, keepdim)
    }

    fn arg_extremum(&self, op: ReduceOp, dim: isize, keepdim: bool) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Reduce {
                    op,
                    axes: normalize_axis("argmax", dim, self.rank())
                        .map(|a| vec![a])
                        .unwrap_or_default(),
                    keepdim,
                },
                &[Some(self)],
                || self.arg_extremum(op, dim, keepdim),
            );
        }
        if self.dtype() == DType::F16 {
            return self
                .float32("argmax/argmin")?
                .arg_extremum(op, dim, keepdim);
        }
        self.check_f32("argmax/argmin")?;
        if self.rank() == 0 {
            // The index of a scalar's one element, as PyTorch (dim 0 or -1).
            normalize_axis("argmax", dim, 1)?;
            return Ok(
                Tensor::from_vec_i32(vec![0], &[], &self.device())?.with_int_range(Some((0, 0)))
            );
        }
        let axis = normalize_axis("argmax", dim, self.rank())?;
        if self.dims()[axis] == 0 {
            return Err(Error::Empty { op: "argmax" });
        }
        let (storage, layout) = self.reduce_raw(op, &[axis])?;
        let last = self.dims()[axis] as i32 - 1;
        Tensor::constant(storage, layout, &self.device())
            .with_int_range(Some((0, last)))
            .drop_axes(&[axis], keepdim)
    }

    /// The mean over `axes` (`count` elements per group) with the reduced
    /// dims kept: the sum over the count, or, where a group's max equals its
    /// min, that value. Its gradient is the mean's, `g / count` for every
    /// element (the max and min only choose the value). Groups of no
    /// elements are `0 / 0`, NaN.
    fn mean_kept(&self, axes: &[usize], count: usize) -> Result<Tensor> {
        if count == 0 || self.numel() == 0 {
            // No element to take a max of; a sum of nothing is 0.
            let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            return self.sum(&axes, true)?.div_scalar(count as f32);
        }
        let value = no_grad(|| -> Result<Tensor> {
            let x = self.detach();
            let sum = from_raw(x.reduce_raw(ReduceOp::Sum, axes)?, &x);
            let hi = from_raw(x.reduce_raw(ReduceOp::Max, axes)?, &x);
            let lo = from_raw(x.reduce_raw(ReduceOp::Min, axes)?, &x);
            Tensor::where_cond(&hi.eq(&lo)?, &hi, &sum.div_scalar(count as f32)?)
        })?;
        let (in_shape, kept_shape) = (self.shape(), value.shape());
        Ok(Tensor::from_op(
            "mean",
            value.storage(),
            value.layout().clone(),
            &[self],
            move |g| {
                Ok(vec![Some(
                    g.reshape_exact(&kept_shape)?
                        .div_scalar(count as f32)?
                        .broadcast_to(&in_shape)?
                        .contiguous()?,
                )])
            },
        ))
    }

    /// Runs the backend reduction, returning storage with reduced dims of size 1.
    fn reduce_raw(&self, op: ReduceOp, axes: &[usize]) -> Result<(crate::Storage, Layout)> {
        // Reductions compute in f32: an F16 input is read through an F32 copy.
        let src = self.float32("reduce")?;
        let s = src.storage();
        let out = self.backend().reduce(op, (&s, src.layout()), axes)?;
        let mut shape = self.shape();
        for &a in axes {
            shape[a] = 1;
        }
        Ok((out, Layout::contiguous(&shape)))
    }

    /// Sorted, de-duplicated axes; empty means all.
    fn resolve_axes(&self, op: &'static str, dims: &[isize]) -> Result<Vec<usize>> {
        if dims.is_empty() {
            return Ok((0..self.rank()).collect());
        }
        if self.rank() == 0 {
            // PyTorch lets a scalar take dim 0 or -1, reducing nothing.
            for &d in dims {
                normalize_axis(op, d, 1)?;
            }
            return Ok(Vec::new());
        }
        let mut axes = dims
            .iter()
            .map(|&d| normalize_axis(op, d, self.rank()))
            .collect::<Result<Vec<_>>>()?;
        axes.sort_unstable();
        axes.dedup();
        Ok(axes)
    }

    /// Removes the (size-1) reduced `axes` unless `keepdim`.
    fn drop_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        if keepdim {
            return Ok(self.clone());
        }
        let shape: Vec<usize> = self
            .dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        self.reshape_exact(&shape)
    }
}

/// The `correction` of a variance or standard deviation: the divisor is
/// `n − correction` (Bessel's correction is 1). `true` and `false` are
/// PyTorch's `unbiased=True` (1) and `unbiased=False` (0); a number is
/// PyTorch's `correction=` (`x.std(1, false, 0)`, `x.var(&[0, 1], true, 1.5)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correction(pub f64);

impl Correction {
    /// The correction, or an error naming `op` unless it is finite
    /// (PyTorch takes negative ones too).
    fn value(self, op: &'static str) -> Result<f64> {
        if self.0.is_finite() {
            Ok(self.0)
        } else {
            Err(Error::invalid(
                op,
                format!("correction must be a finite number, found {}", self.0),
            ))
        }
    }
}

impl From<bool> for Correction {
    fn from(unbiased: bool) -> Correction {
        Correction(if unbiased { 1.0 } else { 0.0 })
    }
}

impl From<i32> for Correction {
    fn from(c: i32) -> Correction {
        Correction(c as f64)
    }
}

impl From<usize> for Correction {
    fn from(c: usize) -> Correction {
        Correction(c as f64)
    }
}

impl From<f64> for Correction {
    fn from(c: f64) -> Correction {
        Correction(c)
    }
}

/// A tensor on `like`'s device from a backend result.
fn from_raw((storage, layout): (crate::Storage, Layout), like: &Tensor) -> Tensor {
    Tensor::from_storage(storage, layout, &like.device())
}
