//! Normalisation layers: [`BatchNorm1d`] / [`BatchNorm2d`] /
//! [`BatchNorm3d`] (one generic [`BatchNorm`]) and [`LayerNorm`], with functional forms [`batch_norm`] and
//! [`layer_norm`].
//!
//! Each normalisation in training mode is one tape op with its gradient
//! written out (`batch_norm.rs`, `layer_norm.rs`: the backends' fused
//! kernels, or the same formulas from tensor ops). Batch norm follows
//! PyTorch exactly:
//! normalisation uses the biased batch variance, the running variance is
//! updated with the unbiased one, `momentum` 0.1 (or `None` for a cumulative
//! average over `num_batches_tracked`), `eps` 1e-5. Running statistics are
//! updated in training mode with [`Tensor::set_data`] under `no_grad`, so
//! the buffers keep their identity (optimizers, checkpoints and `to_device`
//! see the same tensors). The update of the running mean, variance and
//! batch count is one backend op where the backend has it
//! (`fused_batch_norm_running`), else ten tensor ops.
//!
//! `num_batches_tracked` is an `I32` buffer here; PyTorch stores `int64`, so
//! checkpoint import/export must convert it.

use super::summary::record;
use super::{py_bool, py_float, py_tuple, Mode, Module};
use crate::backend::BatchNormRunning;
use crate::{no_grad, DType, Device, Error, Layout, Result, Tensor};

/// Batch normalisation over the channel dim 1; `D` is the number of spatial
/// dims it is written for: `BatchNorm<1>` takes `[N, C]` or `[N, C, L]`,
/// `BatchNorm<2>` takes `[N, C, H, W]`, `BatchNorm<3>` `[N, C, D, H, W]`.
#[derive(Module)]
pub struct BatchNorm<const D: usize> {
    /// `[C]`, initialised to ones (absent when `affine` is false).
    #[module(param)]
    pub weight: Option<Tensor>,
    /// `[C]`, initialised to zeros (absent when `affine` is false).
    #[module(param)]
    pub bias: Option<Tensor>,
    /// `[C]` buffer, starts at zeros (absent when `track_running_stats` is false).
    #[module(buffer)]
    pub running_mean: Option<Tensor>,
    /// `[C]` buffer, starts at ones (absent when `track_running_stats` is false).
    #[module(buffer)]
    pub running_var: Option<Tensor>,
    /// `[]` `I32` buffer counting training batches (absent when not tracking).
    #[module(buffer)]
    pub num_batches_tracked: Option<Tensor>,
    num_features: usize,
    #[module(skip)]
    config: BatchNormConfig,
    mode: Mode,
}

/// `nn.BatchNorm1d`: over `[N, C]` or `[N, C, L]`.
pub type BatchNorm1d = BatchNorm<1>;
/// `nn.BatchNorm2d`: over `[N, C, H, W]`.
pub type BatchNorm2d = BatchNorm<2>;
/// `nn.BatchNorm3d`: over `[N, C, D, H, W]`.
pub type BatchNorm3d = BatchNorm<3>;

/// Options of [`BatchNorm`] (PyTorch's keyword arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f32,
    /// Weight of the new batch in the running averages (default `Some(0.1)`);
    /// `None` keeps a cumulative average (reading the batch count back from
    /// the device each training step).
    pub momentum: Option<f32>,
    /// Learn a per-channel scale and shift (default true).
    pub affine: bool,
    /// Keep running statistics for evaluation (default true); without them
    /// batch statistics are used in both modes.
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

impl<const D: usize> BatchNorm<D> {
    /// `nn.BatchNorm{D}d(num_features)`.
    pub fn new(num_features: usize, device: &Device) -> Result<Self> {
        Self::with_config(num_features, BatchNormConfig::default(), device)
    }

    /// `nn.BatchNorm{D}d` with options.
    pub fn with_config(
        num_features: usize,
        config: BatchNormConfig,
        device: &Device,
    ) -> Result<Self> {
        let op = Self::op();
        if num_features == 0 {
            return Err(Error::invalid(op, "num_features must be positive"));
        }
        if !(config.eps > 0.0 && config.eps.is_finite()) {
            return Err(Error::invalid(
                op,
                format!("eps must be positive, found {}", config.eps),
            ));
        }
        if let Some(m) = config.momentum {
            if !(0.0..=1.0).contains(&m) {
                return Err(Error::invalid(
                    op,
                    format!("momentum must be in [0, 1], found {m}"),
                ));
            }
        }
        let c = [num_features];
        let (weight, bias) = if config.affine {
            (
                Some(Tensor::ones(&c, device)?.requires_grad_()?),
                Some(Tensor::zeros(&c, device)?.requires_grad_()?),
            )
        } else {
            (None, None)
        };
        let (running_mean, running_var, num_batches_tracked) = if config.track_running_stats {
            (
                Some(Tensor::zeros(&c, device)?),
                Some(Tensor::ones(&c, device)?),
                Some(Tensor::from_vec_i32(vec![0], &[], device)?),
            )
        } else {
            (None, None, None)
        };
        Ok(BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            num_features,
            config,
            mode: Mode::new(),
        })
    }

    /// Number of channels `C`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The options this layer was built with.
    pub fn config(&self) -> BatchNormConfig {
        self.config
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }

    fn op() -> &'static str {
        match D {
            1 => "BatchNorm1d",
            2 => "BatchNorm2d",
            3 => "BatchNorm3d",
            _ => "BatchNorm",
        }
    }

    /// Ranks accepted: `D + 2`, and also 2 for `BatchNorm1d`.
    fn check_input(&self, input: &Tensor) -> Result<()> {
        let op = Self::op();
        if D == 1 {
            input.rank_in(op, &[(2, "[N, C]"), (3, "[N, C, L]")])?;
        } else {
            input.expect_rank(op, "[N, C, spatial...]", D + 2)?;
        }
        if input.dims()[1] != self.num_features {
            return Err(Error::shape(
                op,
                format!("an input with {} channels in dim 1", self.num_features),
                input.dims(),
            ));
        }
        Ok(())
    }

    /// The weight of the current batch in the running averages: `momentum`,
    /// or `1 / batches seen including this one` for a cumulative average.
    fn average_factor(&self) -> Result<f32> {
        match (self.config.momentum, &self.num_batches_tracked) {
            (Some(m), _) => Ok(m),
            (None, Some(count)) => Ok(1.0 / (count.item()? + 1.0)),
            (None, None) => Ok(0.0),
        }
    }
}

impl<const D: usize> Module for BatchNorm<D> {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.check_input(input)?;
        let (rm, rv) = (self.running_mean.as_ref(), self.running_var.as_ref());
        let (w, b) = (self.weight.as_ref(), self.bias.as_ref());
        if !self.mode.is_training() {
            // Running statistics when tracked; otherwise batch statistics, with no updates.
            let tracked = rm.is_some();
            let y = batch_norm(input, rm, rv, w, b, !tracked, 0.0, self.config.eps);
            return record(self, y);
        }
        let running = Running {
            mean: rm,
            var: rv,
            batches: self.num_batches_tracked.as_ref(),
        };
        let y = batch_norm_with(
            input,
            running,
            w,
            b,
            true,
            self.average_factor()?,
            self.config.eps,
        )?;
        record(self, Ok(y))
    }

    fn type_name(&self) -> String {
        Self::op().into()
    }

    fn extra_repr(&self) -> String {
        let c = &self.config;
        let momentum = c.momentum.map_or("None".into(), py_float);
        format!(
            "{}, eps={}, momentum={momentum}, affine={}, bias={}, track_running_stats={}",
            self.num_features,
            py_float(c.eps),
            py_bool(c.affine),
            py_bool(self.bias.is_some()),
            py_bool(c.track_running_stats)
        )
    }
}

/// `torch.nn.functional.batch_norm`: normalises `input: [N, C, *]` per
/// channel. With `training`, batch statistics are used and the running
/// buffers (if given) move towards them by `momentum`; otherwise the running
/// statistics are used (and must be given).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    input: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    momentum: f32,
    eps: f32,
) -> Result<Tensor> {
    let running = Running {
        mean: running_mean,
        var: running_var,
        batches: None,
    };
    batch_norm_with(input, running, weight, bias, training, momentum, eps)
}

/// A batch norm's running statistics, each optional: the mean and variance
/// (`[C]`) and, for the module, the batches seen.
#[derive(Clone, Copy)]
struct Running<'a> {
    mean: Option<&'a Tensor>,
    var: Option<&'a Tensor>,
    batches: Option<&'a Tensor>,
}

/// [`batch_norm`], also counting the batch in `running.batches` when
/// training.
fn batch_norm_with(
    input: &Tensor,
    running: Running,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    momentum: f32,
    eps: f32,
) -> Result<Tensor> {
    let (running_mean, running_var) = (running.mean, running.var);
    if crate::capture::hooked() && !training {
        return crate::capture::traced(
            || crate::capture::Op::BatchNorm { eps },
            &[Some(input), running_mean, running_var, weight, bias],
            || {
                batch_norm(
                    input,
                    running_mean,
                    running_var,
                    weight,
                    bias,
                    training,
                    momentum,
                    eps,
                )
            },
        );
    }
    let op = "batch_norm";
    // Training on halves gives halves (see `batch_norm.rs`); evaluation
    // reads them as `F32`.
    let input = &match (training, input.dtype()) {
        (true, DType::F16) => input.clone(),
        _ => input.float32(op)?,
    };
    input.expect_min_rank(op, "[N, C, *]", 2)?;
    let c = input.dims()[1];
    for t in [running_mean, running_var, weight, bias]
        .into_iter()
        .flatten()
    {
        t.expect_shape(op, "per-channel tensors", &[c])?;
    }
    if training {
        let count = input.numel() / c.max(1);
        if count <= 1 {
            return Err(Error::invalid(
                op,
                format!(
                    "expected more than 1 value per channel when training, got input of shape {:?}",
                    input.dims()
                ),
            ));
        }
        return super::batch_norm::batch_norm_train(input, weight, bias, eps, |mean, var| {
            update_running(running, mean, var, count, momentum)
        });
    }
    // Per-channel tensors viewed as [1, C, 1, ...] broadcast against the input.
    let mut channel_shape = vec![1; input.rank()];
    channel_shape[1] = c;
    let per_channel = |t: &Tensor| t.reshape_exact(&channel_shape);
    let (mean, var) = match (running_mean, running_var) {
        (Some(m), Some(v)) => (per_channel(m)?, per_channel(v)?),
        _ => {
            return Err(Error::invalid(
                op,
                "evaluation mode needs running_mean and running_var",
            ));
        }
    };
    let mut y = input.sub(&mean)?.div(&var.add_scalar(eps)?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(&per_channel(w)?)?;
    }
    if let Some(b) = bias {
        y = y.add(&per_channel(b)?)?;
    }
    Ok(y)
}

/// `running ← (1 − m)·running + m·batch`, with the unbiased variance
/// (`× n/(n−1)`, `count` = n values per channel), and the batch counted,
/// off the tape: the backend's one op where it has it, else tensor ops
/// computing the same.
fn update_running(
    running: Running,
    mean: &Tensor,
    biased_var: &Tensor,
    count: usize,
    momentum: f32,
) -> Result<()> {
    let correction = count as f32 / (count - 1) as f32;
    no_grad(|| -> Result<()> {
        if fused_update(running, mean, biased_var, momentum, correction)? {
            return Ok(());
        }
        let blend = |running: &Tensor, batch: &Tensor| -> Result<()> {
            let batch = batch.reshape_exact(running.dims())?;
            let next = running
                .mul_scalar(1.0 - momentum)?
                .add(&batch.mul_scalar(momentum)?)?;
            running.set_data(&next)
        };
        if let Some(rm) = running.mean {
            blend(rm, mean)?;
        }
        if let Some(rv) = running.var {
            blend(rv, &biased_var.mul_scalar(correction)?)?;
        }
        running.batches.map_or(Ok(()), count_batch)
    })
}

/// `batches ← batches + 1`, from tensor ops.
fn count_batch(batches: &Tensor) -> Result<()> {
    let next = batches
        .to_dtype(DType::F32)?
        .add_scalar(1.0)?
        .to_dtype(DType::I32)?;
    batches.set_data(&next)
}

/// [`update_running`] as the backend's `fused_batch_norm_running`, where
/// both running statistics are kept and the backend takes them; `false`
/// where it does not (nothing is then changed).
fn fused_update(
    running: Running,
    mean: &Tensor,
    biased_var: &Tensor,
    momentum: f32,
    correction: f32,
) -> Result<bool> {
    let (Some(rm), Some(rv)) = (running.mean, running.var) else {
        return Ok(false);
    };
    // The op takes F32 statistics and an I32 count (the module's); other
    // dtypes passed to the functional form are composed.
    let f32s = [rm, rv, mean, biased_var]
        .iter()
        .all(|t| t.dtype() == DType::F32);
    if !f32s || running.batches.is_some_and(|b| b.dtype() != DType::I32) {
        return Ok(false);
    }
    let dev = rm.device();
    for t in [rv, mean, biased_var].into_iter().chain(running.batches) {
        dev.check_same(&t.device(), "batch_norm")?;
    }
    let storages = [rm, rv, mean, biased_var].map(Tensor::storage);
    let views = [rm, rv, mean, biased_var].map(Tensor::layout);
    let batches = running.batches.map(|b| (b.storage(), b.layout()));
    let view = |i: usize| (&storages[i], views[i]);
    let update = BatchNormRunning {
        running_mean: view(0),
        running_var: view(1),
        mean: view(2),
        var: view(3),
        count: batches.as_ref().map(|(s, l)| (s, *l)),
        momentum,
        correction,
    };
    let Some((next_mean, next_var, next_batches)) =
        rm.backend().fused_batch_norm_running(update)?
    else {
        return Ok(false);
    };
    let as_tensor =
        |s, like: &Tensor| Tensor::from_storage(s, Layout::contiguous(like.dims()), &dev);
    rm.set_data(&as_tensor(next_mean, rm))?;
    rv.set_data(&as_tensor(next_var, rv))?;
    match (running.batches, next_batches) {
        (Some(b), Some(next)) => b.set_data(&as_tensor(next, b))?,
        (Some(b), None) => count_batch(b)?,
        (None, _) => {}
    }
    Ok(true)
}

/// Normalisation over the trailing `normalized_shape` dims of each sample.
#[derive(Module)]
pub struct LayerNorm {
    /// `normalized_shape`, initialised to ones (absent without `elementwise_affine`).
    #[module(param)]
    pub weight: Option<Tensor>,
    /// `normalized_shape`, initialised to zeros (absent without affine or `bias`).
    #[module(param)]
    pub bias: Option<Tensor>,
    normalized_shape: Vec<usize>,
    eps: f32,
}

/// Options of [`LayerNorm`] (PyTorch's keyword arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormConfig {
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f32,
    /// Learn an elementwise scale (and shift) (default true).
    pub elementwise_affine: bool,
    /// Learn the shift too, when affine (default true).
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }
}

impl LayerNorm {
    /// `nn.LayerNorm(normalized_shape)`.
    pub fn new(normalized_shape: &[usize], device: &Device) -> Result<LayerNorm> {
        LayerNorm::with_config(normalized_shape, LayerNormConfig::default(), device)
    }

    /// `nn.LayerNorm` with options.
    pub fn with_config(
        normalized_shape: &[usize],
        config: LayerNormConfig,
        device: &Device,
    ) -> Result<LayerNorm> {
        if normalized_shape.is_empty() || normalized_shape.contains(&0) {
            return Err(Error::invalid(
                "LayerNorm",
                format!("normalized_shape must be non-empty with positive sizes, found {normalized_shape:?}"),
            ));
        }
        if !(config.eps > 0.0 && config.eps.is_finite()) {
            return Err(Error::invalid(
                "LayerNorm",
                format!("eps must be positive, found {}", config.eps),
            ));
        }
        let weight = if config.elementwise_affine {
            Some(Tensor::ones(normalized_shape, device)?.requires_grad_()?)
        } else {
            None
        };
        let bias = if config.elementwise_affine && config.bias {
            Some(Tensor::zeros(normalized_shape, device)?.requires_grad_()?)
        } else {
            None
        };
        Ok(LayerNorm {
            weight,
            bias,
            normalized_shape: normalized_shape.to_vec(),
            eps: config.eps,
        })
    }

    /// The trailing shape normalised over.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }
}

impl Module for LayerNorm {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = layer_norm(
            input,
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        );
        record(self, y)
    }

    fn extra_repr(&self) -> String {
        format!(
            "{}, eps={}, elementwise_affine={}, bias={}",
            py_tuple(&self.normalized_shape),
            py_float(self.eps),
            py_bool(self.weight.is_some()),
            py_bool(self.bias.is_some())
        )
    }
}

/// `torch.nn.functional.layer_norm`: `(x − mean) / √(var + eps) · w + b`
/// over the trailing `normalized_shape` dims (biased variance), as one
/// fused op where the backend has it.
pub fn layer_norm(
    input: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    if crate::capture::hooked() {
        return crate::capture::traced(
            || crate::capture::Op::LayerNorm {
                dims: normalized_shape.len(),
                eps,
            },
            &[Some(input), weight, bias],
            || layer_norm(input, normalized_shape, weight, bias, eps),
        );
    }
    let op = "layer_norm";
    let input = &input.float32(op)?;
    let k = normalized_shape.len();
    if k == 0 || input.rank() < k || input.dims()[input.rank() - k..] != *normalized_shape {
        return Err(Error::shape(
            op,
            format!("an input whose trailing dims are {normalized_shape:?}"),
            input.dims(),
        ));
    }
    if normalized_shape.contains(&0) {
        return Err(Error::Empty { op });
    }
    for t in [weight, bias].into_iter().flatten() {
        t.expect_shape(op, "weight and bias", normalized_shape)?;
    }
    crate::tensor::check_operands(
        op,
        DType::F32,
        [input].into_iter().chain(weight).chain(bias),
    )?;
    // One fused op over the rows of normalized elements (`nn/layer_norm`).
    let cols = normalized_shape.iter().product();
    super::layer_norm::layer_norm(input, cols, weight, bias, eps)
}
