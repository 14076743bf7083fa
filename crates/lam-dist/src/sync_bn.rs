//! [`SyncBatchNorm`]: batch normalisation whose statistics are those of
//! the global batch (every replica's samples), as PyTorch's
//! `nn.SyncBatchNorm`; and [`all_reduce_sum`], the differentiable sum
//! across replicas it is built from.
//!
//! The statistics take two sums across replicas (the per-channel sum, then
//! the per-channel sum of squared deviations from the global mean), so the
//! variance is as accurate as a single replica's two-pass one. Both sums
//! are [`all_reduce_sum`]s on the tape, whose gradient is again a sum across
//! replicas, so backward gives each replica exactly its share of the global
//! batch's gradient.

use lam_core::autograd::custom_op;
use lam_core::nn::{BatchNorm, Entry, Module, Visit};
use lam_core::{no_grad, DType, Error, Result, Tensor};

use crate::comm::{Communicator, Reduction};

/// The element-wise sum of `t` over the replicas, differentiable (its
/// gradient is the sum of every replica's output gradient). Every replica
/// calls it at the same point, with the same shape.
pub fn all_reduce_sum(t: &Tensor, comm: &Communicator) -> Result<Tensor> {
    check_f32(t, "all_reduce_sum")?;
    let value = no_grad(|| -> Result<Tensor> {
        let sum = comm.sum_f32(t.to_vec()?).wait()?;
        Tensor::from_vec(sum, t.dims(), &t.device())
    })?;
    let comm = comm.clone();
    custom_op("all_reduce_sum", &value, &[t], move |g| {
        Ok(vec![Some(all_reduce_sum(g, &comm)?)])
    })
}

/// Batch normalisation over the global batch (see the module docs). In
/// evaluation mode, and in a world of one, it is exactly the wrapped
/// [`BatchNorm`]. Its names, parameters and buffers are the wrapped
/// layer's, so checkpoints are interchangeable.
pub struct SyncBatchNorm<const D: usize> {
    inner: BatchNorm<D>,
    comm: Communicator,
}

impl<const D: usize> SyncBatchNorm<D> {
    /// `bn` with statistics synchronised over `comm`'s replicas.
    pub fn new(bn: BatchNorm<D>, comm: &Communicator) -> Self {
        SyncBatchNorm {
            inner: bn,
            comm: comm.clone(),
        }
    }

    /// The wrapped layer.
    pub fn inner(&self) -> &BatchNorm<D> {
        &self.inner
    }

    fn forward_synced(&self, x: &Tensor) -> Result<Tensor> {
        let op = "SyncBatchNorm";
        let c = self.inner.num_features();
        if x.rank() < 2 || x.dims()[1] != c {
            return Err(Error::shape(
                op,
                format!("an input [N, {c}, *] with {c} channels in dim 1"),
                x.dims(),
            ));
        }
        let axes: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
        let mut channel_shape = vec![1isize; x.rank()];
        channel_shape[1] = c as isize;
        let local = (x.numel() / c.max(1)) as f64;
        let count = self.comm.reduce_f64(vec![local], Reduction::Sum)?[0];
        if count <= 1.0 {
            return Err(Error::invalid(
                op,
                format!(
                    "expected more than 1 value per channel over all replicas when training, \
                     got {count} (this replica's input has shape {:?})",
                    x.dims()
                ),
            ));
        }
        let n = count as f32;
        let mean = all_reduce_sum(&x.sum(&axes, false)?, &self.comm)?.div_scalar(n)?;
        let centered = x.sub(&mean.reshape(&channel_shape)?)?;
        let var =
            all_reduce_sum(&centered.square()?.sum(&axes, false)?, &self.comm)?.div_scalar(n)?;
        let mut y = centered.div(
            &var.add_scalar(self.inner.config().eps)?
                .sqrt()?
                .reshape(&channel_shape)?,
        )?;
        if let (Some(w), Some(b)) = (&self.inner.weight, &self.inner.bias) {
            y = y
                .mul(&w.reshape(&channel_shape)?)?
                .add(&b.reshape(&channel_shape)?)?;
        }
        self.update_running(&mean, &var, n)?;
        Ok(y)
    }

    /// The running statistics move towards the global batch's, with the
    /// unbiased variance (`× N/(N−1)`), as BatchNorm's do.
    fn update_running(&self, mean: &Tensor, biased_var: &Tensor, n: f32) -> Result<()> {
        let bn = &self.inner;
        no_grad(|| -> Result<()> {
            let factor = match (bn.config().momentum, &bn.num_batches_tracked) {
                (Some(m), _) => m,
                (None, Some(count)) => 1.0 / (count.item()? + 1.0),
                (None, None) => 0.0,
            };
            let blend = |running: &Tensor, batch: &Tensor| -> Result<()> {
                let next = running
                    .mul_scalar(1.0 - factor)?
                    .add(&batch.mul_scalar(factor)?)?;
                running.set_data(&next)
            };
            if let Some(rm) = &bn.running_mean {
                blend(rm, mean)?;
            }
            if let Some(rv) = &bn.running_var {
                blend(rv, &biased_var.mul_scalar(n / (n - 1.0))?)?;
            }
            if let Some(count) = &bn.num_batches_tracked {
                let next = count
                    .to_dtype(DType::F32)?
                    .add_scalar(1.0)?
                    .to_dtype(DType::I32)?;
                count.set_data(&next)?;
            }
            Ok(())
        })
    }
}

impl<const D: usize> Module for SyncBatchNorm<D> {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        if !self.inner.is_training() || self.comm.world_size() == 1 {
            return self.inner.forward(input);
        }
        self.forward_synced(input)
    }
}

impl<const D: usize> Visit for SyncBatchNorm<D> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.inner.visit(prefix, f)
    }
}

/// An error unless `t` holds `f32` values.
fn check_f32(t: &Tensor, op: &'static str) -> Result<()> {
    if t.dtype() == DType::F32 {
        return Ok(());
    }
    Err(Error::DTypeMismatch {
        op,
        expected: DType::F32,
        found: t.dtype(),
    })
}
