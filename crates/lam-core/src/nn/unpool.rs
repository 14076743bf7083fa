//! [`MaxUnpool2d`], PyTorch's `nn.MaxUnpool2d`: the partial inverse of
//! max pooling. Each value is written at the flat position its index names
//! in a zero output plane (the indices [`super::MaxPool2d::forward_with_indices`]
//! returns).
//!
//! The values land by `scatter_add` into `[N·C, OH·OW]`. Where two indices
//! name one position (overlapping pooling windows that chose the same
//! pixel, hence the same value) PyTorch keeps one write; here the position
//! holds the mean of what landed on it, which is that value. The gradient
//! is PyTorch's: each value receives the output gradient at its index (a
//! `gather`), whatever else landed there.

use super::window::Size2;
use crate::{no_grad, DType, Error, Result, Tensor};

/// Values placed back at the positions max pooling took them from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxUnpool2d {
    kernel: Size2,
    stride: Size2,
    padding: Size2,
}

impl MaxUnpool2d {
    /// `nn.MaxUnpool2d(kernel_size)` (stride = kernel size, no padding).
    pub fn new(kernel: impl Into<Size2>) -> Result<MaxUnpool2d> {
        let kernel = kernel.into();
        MaxUnpool2d::with_options(kernel, kernel, 0)
    }

    /// `nn.MaxUnpool2d(kernel_size, stride, padding)`, those of the pooling
    /// it undoes.
    pub fn with_options(
        kernel: impl Into<Size2>,
        stride: impl Into<Size2>,
        padding: impl Into<Size2>,
    ) -> Result<MaxUnpool2d> {
        let (kernel, stride, padding) = (kernel.into(), stride.into(), padding.into());
        if [kernel.h, kernel.w, stride.h, stride.w].contains(&0) {
            return Err(Error::invalid(
                "MaxUnpool2d",
                format!("kernel {kernel:?} and stride {stride:?} must be positive"),
            ));
        }
        Ok(MaxUnpool2d {
            kernel,
            stride,
            padding,
        })
    }

    /// `unpool(input, indices)`: `input` and `indices` (`I32`) of one shape
    /// `[N, C, H, W]` (or `[C, H, W]`) give `[N, C, OH, OW]`, with PyTorch's
    /// default size `(H − 1)·stride − 2·padding + kernel` per axis.
    pub fn forward(&self, input: &Tensor, indices: &Tensor) -> Result<Tensor> {
        self.forward_with_size(input, indices, None)
    }

    /// [`MaxUnpool2d::forward`] with PyTorch's `output_size`: within
    /// `stride − 1` of the default size on each axis (the sizes whose
    /// pooling gives `H × W`).
    pub fn forward_with_size(
        &self,
        input: &Tensor,
        indices: &Tensor,
        output_size: Option<Size2>,
    ) -> Result<Tensor> {
        const OP: &str = "MaxUnpool2d";
        input.check_f32(OP)?;
        let batched = input.batched(OP, 4, "[N, C, H, W]", "[C, H, W]")?;
        if indices.dtype() != DType::I32 || indices.dims() != input.dims() {
            return Err(Error::invalid(
                OP,
                format!(
                    "indices must be I32 of the input's shape {:?}, found {:?} {:?}",
                    input.dims(),
                    indices.dtype(),
                    indices.dims()
                ),
            ));
        }
        let (x, idx) = if batched {
            (input.clone(), indices.clone())
        } else {
            (input.unsqueeze(0)?, indices.unsqueeze(0)?)
        };
        let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let out = self.output_size(h, w, output_size)?;
        crate::layout::checked_numel(OP, &[n, c, out.h, out.w])?;
        let plane = out.h * out.w;
        let rows = n * c;
        let values = x.reshape_exact(&[rows, h * w])?;
        let positions = idx.reshape_exact(&[rows, h * w])?;
        let y = unpool_op(&values, &positions, plane)?;
        let y = y.reshape_exact(&[n, c, out.h, out.w])?;
        if batched {
            Ok(y)
        } else {
            y.squeeze(0)
        }
    }

    /// The output size: `given`, checked, or PyTorch's default.
    fn output_size(&self, h: usize, w: usize, given: Option<Size2>) -> Result<Size2> {
        let axis = |len: usize, k: usize, s: usize, p: usize| -> Option<usize> {
            (len.checked_sub(1)?.checked_mul(s)?.checked_add(k)?).checked_sub(p.checked_mul(2)?)
        };
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let default = match (axis(h, k.h, s.h, p.h), axis(w, k.w, s.w, p.w)) {
            (Some(dh), Some(dw)) => Size2::new(dh, dw),
            _ => {
                return Err(Error::invalid(
                    "MaxUnpool2d",
                    format!(
                        "an input of {h}×{w} has no output size for kernel {k:?}, stride {s:?}, \
                         padding {p:?}"
                    ),
                ))
            }
        };
        let Some(size) = given else {
            return Ok(default);
        };
        let near = |got: usize, want: usize, s: usize| {
            got.saturating_add(s) > want && got < want.saturating_add(s)
        };
        if !near(size.h, default.h, s.h) || !near(size.w, default.w, s.w) {
            return Err(Error::invalid(
                "MaxUnpool2d",
                format!(
                    "output size {size:?} must be within the stride {s:?} of the default \
                     size {default:?}"
                ),
            ));
        }
        Ok(size)
    }
}

/// `values` and `positions` `[R, L]` → `[R, plane]`: each value at its
/// position (the mean where several share one), zeros elsewhere; the
/// gradient of a value is the output gradient at its position.
fn unpool_op(values: &Tensor, positions: &Tensor, plane: usize) -> Result<Tensor> {
    let rows = values.dims()[0];
    let dev = values.device();
    let y = no_grad(|| -> Result<Tensor> {
        let zeros = Tensor::zeros(&[rows, plane], &dev)?;
        let sums = zeros.scatter_add(1, positions, &values.detach())?;
        let ones = Tensor::ones(positions.dims(), &dev)?;
        let counts = zeros
            .scatter_add(1, positions, &ones)?
            .maximum(&Tensor::scalar(1.0, &dev)?)?;
        sums.div(&counts)
    })?;
    let positions = positions.clone();
    Ok(Tensor::from_op(
        "max_unpool2d",
        y.storage(),
        y.layout().clone(),
        &[values],
        move |g| Ok(vec![Some(g.gather(1, &positions)?)]),
    ))
}
