//! Cross-entropy of logits against class indices as one tape op: the
//! backend's fused forward+backward kernel when it has one (Backend
//! `fused_cross_entropy`), else `log_softmax` and `gather`. The configurable
//! loss (weights, smoothing, ignore_index, probability targets) is
//! `crate::loss::CrossEntropyLoss`, which uses this when it can.

use crate::{no_grad, DType, Error, Layout, Result, Tensor};

impl Tensor {
    /// Mean cross-entropy of `logits` `[N, C]` against class indices `[N]`
    /// (`I32`): `mean(logsumexp(x_i) - x_i[t_i])`. Uses the backend's fused
    /// forward+backward kernel when it has one.
    ///
    /// `F16` logits give the numbers of their `F32` cast: a backend that
    /// reads halves (the GPU kernel) takes them as they are, without that
    /// copy; others get the taped cast.
    pub fn cross_entropy(&self, targets: &Tensor) -> Result<Tensor> {
        let half = self.dtype() == DType::F16;
        if !half {
            self.check_f32("cross_entropy")?;
        }
        targets.check_i32("cross_entropy")?;
        self.device()
            .check_same(&targets.device(), "cross_entropy")?;
        if self.rank() != 2 {
            return Err(Error::RankMismatch {
                op: "cross_entropy",
                expected: "2 ([batch, classes])".into(),
                found: self.rank(),
                shape: self.shape(),
            });
        }
        let (n, c) = (self.dims()[0], self.dims()[1]);
        if targets.dims() != [n] {
            return Err(Error::shape(
                "cross_entropy",
                format!("targets of shape [{n}]"),
                targets.dims(),
            ));
        }
        if n == 0 || c == 0 {
            return Err(Error::Empty {
                op: "cross_entropy",
            });
        }
        let targets2 = targets.reshape_exact(&[n, 1])?;
        targets.check_indices("cross_entropy", c)?;
        let x = self.contiguous()?;
        let (xs, ts) = (x.storage(), targets.storage());
        let fused = x
            .backend()
            .fused_cross_entropy((&xs, x.layout()), (&ts, targets.layout()))?;
        let Some((losses, grad)) = fused else {
            if half {
                return self.float32("cross_entropy")?.cross_entropy(targets);
            }
            let picked = self.log_softmax(1)?.gather(1, &targets2)?;
            return picked.mean_all()?.neg();
        };
        let dev = self.device();
        let loss = no_grad(|| {
            Tensor::from_storage(losses, Layout::contiguous(&[n]), &dev)
                .sum_all()?
                .div_scalar(n as f32)
        })?;
        let grad = Tensor::from_storage(grad, Layout::contiguous(&[n, c]), &dev);
        Ok(Tensor::from_op(
            "cross_entropy",
            loss.storage(),
            loss.layout().clone(),
            &[self],
            // As the taped cast's rule would, the gradient of F16 logits is
            // the F32 one rounded to F16.
            move |g| {
                let dx = grad.mul(g)?;
                Ok(vec![Some(if half { dx.to_dtype(DType::F16)? } else { dx })])
            },
        ))
    }
}
