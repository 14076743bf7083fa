//! Softmax, log-softmax and logsumexp, all numerically stable
//! (the row maximum is subtracted before exponentiating). The backend's fused
//! kernels run when it has them; otherwise the composite of primitives here
//! runs. Gradients are written directly rather than through the composite:
//! `dx = y (g - Σ g y)` for softmax and `dx = g - softmax(x) Σ g` for log-softmax.

use crate::layout::normalize_axis;
use crate::{no_grad, DType, Error, Layout, Result, Tensor};

impl Tensor {
    /// Softmax along `dim`.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Softmax {
                    axis: normalize_axis("softmax", dim, self.rank().max(1)).unwrap_or_default(),
                    log: false,
                },
                &[Some(self)],
                || self.softmax(dim),
            );
        }
        if self.rank() == 0 {
            // A scalar is a row of one (its gradient too); dim 0 or -1.
            normalize_axis("softmax", dim, 1)?;
            return self.reshape_exact(&[1])?.softmax(0)?.reshape_exact(&[]);
        }
        let d = normalize_axis("softmax", dim, self.rank())?;
        let y = no_grad(|| self.softmax_forward(d, false))?;
        let yd = y.detach();
        Ok(Tensor::from_op(
            "softmax",
            y.storage(),
            y.layout().clone(),
            &[self],
            move |g| {
                let dot = g.mul(&yd)?.sum(&[d as isize], true)?;
                Ok(vec![Some(yd.mul(&g.sub(&dot)?)?)])
            },
        ))
    }

    /// Log-softmax along `dim`.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Softmax {
                    axis: normalize_axis("log_softmax", dim, self.rank().max(1))
                        .unwrap_or_default(),
                    log: true,
                },
                &[Some(self)],
                || self.log_softmax(dim),
            );
        }
        if self.rank() == 0 {
            normalize_axis("log_softmax", dim, 1)?;
            return self.reshape_exact(&[1])?.log_softmax(0)?.reshape_exact(&[]);
        }
        let d = normalize_axis("log_softmax", dim, self.rank())?;
        let y = no_grad(|| self.softmax_forward(d, true))?;
        let yd = y.detach();
        Ok(Tensor::from_op(
            "log_softmax",
            y.storage(),
            y.layout().clone(),
            &[self],
            move |g| {
                let total = g.sum(&[d as isize], true)?;
                Ok(vec![Some(g.sub(&yd.exp()?.mul(&total)?)?)])
            },
        ))
    }

    /// `log Σ exp(x)` over `dims`, stable for large values.
    pub fn logsumexp(&self, dims: impl super::Dims, keepdim: bool) -> Result<Tensor> {
        let dims = dims.as_dims();
        if self.numel() == 0 {
            // No max to shift by; an empty group's sum of exponentials is 0,
            // so its logsumexp is -inf, as PyTorch's.
            return self.exp()?.sum(dims, keepdim)?.log();
        }
        // Shift by the max for stability, but by 0 where the max is ±inf
        // (inf - inf would be NaN where the answer is ±inf, as PyTorch's).
        let max = self.max(dims, true)?.detach();
        let infinite = max
            .abs()?
            .eq(&Tensor::scalar(f32::INFINITY, &self.device())?)?;
        let m = Tensor::where_cond(&infinite, &Tensor::zeros_like(&max)?, &max)?;
        let lse = self.sub(&m)?.exp()?.sum(dims, true)?.log()?.add(&m)?;
        if keepdim || self.rank() == 0 {
            Ok(lse)
        } else {
            let mut dims_abs: Vec<usize> = if dims.is_empty() {
                (0..self.rank()).collect()
            } else {
                dims.iter()
                    .map(|&d| normalize_axis("logsumexp", d, self.rank()))
                    .collect::<Result<_>>()?
            };
            dims_abs.sort_unstable();
            let shape: Vec<usize> = self
                .dims()
                .iter()
                .enumerate()
                .filter(|(i, _)| !dims_abs.contains(i))
                .map(|(_, &s)| s)
                .collect();
            lse.reshape_exact(&shape)
        }
    }

    /// Forward softmax / log-softmax along `d`, fused where the backend can.
    fn softmax_forward(&self, d: usize, log: bool) -> Result<Tensor> {
        if self.dtype() == DType::F16 {
            return self.float32("softmax")?.softmax_forward(d, log);
        }
        self.check_f32("softmax")?;
        if self.numel() == 0 {
            // Nothing to normalise: an empty result, as PyTorch gives.
            return Tensor::zeros(self.dims(), &self.device());
        }
        let last = self.rank() - 1;
        // Move `d` last, run on [rows, cols], then move it back.
        let moved = if d == last {
            self.clone()
        } else {
            self.transpose(d as isize, -1)?
        };
        let cols = moved.dims()[last];
        let rows = moved.numel() / cols;
        // The backend reads the rows through a [rows, cols] view of the
        // input's own buffer — offset and strides included (a narrowed or
        // chunked input starts inside its buffer) — copying only when no such
        // view exists.
        let x = match moved.layout().reshape(&[rows, cols]) {
            Some(_) => moved,
            None => moved.contiguous()?,
        };
        let flat = x.layout().reshape(&[rows, cols]).ok_or_else(|| {
            Error::invalid("softmax", "a contiguous layout could not be viewed as rows")
        })?;
        let xs = x.storage();
        let y = match x.backend().fused_softmax((&xs, &flat), log)? {
            Some(s) => Tensor::from_storage(s, Layout::contiguous(x.dims()), &x.device()),
            None => {
                let shifted = x.sub(&x.max(&[-1], true)?)?;
                if log {
                    shifted.sub(&shifted.exp()?.sum(&[-1], true)?.log()?)?
                } else {
                    let e = shifted.exp()?;
                    e.div(&e.sum(&[-1], true)?)?
                }
            }
        };
        let y = if d == last {
            y
        } else {
            y.transpose(d as isize, -1)?.contiguous()?
        };
        Ok(y.detach())
    }
}
