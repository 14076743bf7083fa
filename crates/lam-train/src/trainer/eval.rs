//! Evaluation passes: [`evaluate`] (mean loss and accuracy over a loader)
//! and [`predict`] (every prediction, for metrics and plots). Both put the
//! model in evaluation mode and run without recording gradients.

use lam_core::nn::Module;
use lam_core::{no_grad, DType, Error, Result, Tensor};

use crate::data::DataLoader;

/// A model's outputs over a whole data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// The true class of each sample.
    pub y_true: Vec<i32>,
    /// The arg-max class of each output row.
    pub y_pred: Vec<i32>,
    /// Softmax probabilities, row-major `[N, n_classes]`.
    pub probs: Vec<f32>,
    /// Output width.
    pub n_classes: usize,
}

/// Mean loss and (for class targets) accuracy of `model` over one unshuffled
/// pass of `loader` (epoch 0's order; the loader's transform still applies).
pub fn evaluate(
    model: &dyn Module,
    loader: &DataLoader,
    loss: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<(f64, Option<f64>)> {
    model.eval();
    no_grad(|| {
        let mut sums = Sums::default();
        for batch in loader.epoch(0) {
            let (x, y) = batch?;
            let out = model.forward(&x)?;
            sums.add(&out, &y, &loss(&out, &y)?)?;
        }
        sums.read("evaluate")
    })
}

/// Every prediction of a classifier `model` over `loader` (in the loader's
/// epoch-0 order), with softmax probabilities.
pub fn predict(model: &dyn Module, loader: &DataLoader) -> Result<Predictions> {
    model.eval();
    no_grad(|| {
        let mut p = Predictions {
            y_true: Vec::new(),
            y_pred: Vec::new(),
            probs: Vec::new(),
            n_classes: 0,
        };
        for batch in loader.epoch(0) {
            let (x, y) = batch?;
            if y.dtype() != DType::I32 {
                return Err(Error::DTypeMismatch {
                    op: "predict",
                    expected: DType::I32,
                    found: y.dtype(),
                });
            }
            let out = model.forward(&x)?;
            p.n_classes = out.dims().last().copied().unwrap_or(0);
            p.y_pred.extend(crate::metrics::predicted_classes(&out)?);
            p.probs.extend(crate::metrics::probabilities(&out)?);
            p.y_true.extend(y.to_vec_i32()?);
        }
        Ok(p)
    })
}

/// Running sums of loss × batch size and correct predictions, kept on the
/// device between reads.
#[derive(Default)]
pub(crate) struct Sums {
    loss: Option<Tensor>,
    correct: Option<Tensor>,
    pub(crate) samples: usize,
    pub(crate) host_loss: f64,
    pub(crate) host_correct: f64,
    pub(crate) host_samples: usize,
    classes: bool,
}

impl Sums {
    /// Adds one batch (`out` the model output, `y` the targets, `loss` the
    /// batch's mean loss).
    pub(crate) fn add(&mut self, out: &Tensor, y: &Tensor, loss: &Tensor) -> Result<()> {
        let _guard = lam_core::NoGradGuard::new();
        let b = out.dims().first().copied().unwrap_or(0);
        let weighted = loss.detach().mul_scalar(b as f32)?;
        self.loss = Some(match self.loss.take() {
            Some(s) => s.add(&weighted)?,
            None => weighted,
        });
        self.classes = y.dtype() == DType::I32 && out.rank() == 2;
        if self.classes {
            let hits = out
                .argmax(-1, false)?
                .to_dtype(DType::F32)?
                .eq(&y.to_dtype(DType::F32)?)?
                .sum_all()?;
            self.correct = Some(match self.correct.take() {
                Some(s) => s.add(&hits)?,
                None => hits,
            });
        }
        self.samples += b;
        Ok(())
    }

    /// Reads the device sums into the host totals; the loss added since the
    /// last read is returned (NaN/Inf if any batch in between diverged).
    pub(crate) fn sync(&mut self) -> Result<f64> {
        let Some(loss) = self.loss.take() else {
            return Ok(0.0);
        };
        let part = loss.item()? as f64;
        self.host_loss += part;
        if let Some(c) = self.correct.take() {
            self.host_correct += c.item()? as f64;
        }
        self.host_samples = self.samples;
        Ok(part)
    }

    /// Mean loss and accuracy so far (after a sync).
    pub(crate) fn means(&self) -> (f64, Option<f64>) {
        let n = self.host_samples.max(1) as f64;
        (
            self.host_loss / n,
            self.classes.then(|| self.host_correct / n),
        )
    }

    /// Syncs and returns the means; an error when nothing was seen or the
    /// loss is not finite.
    pub(crate) fn read(&mut self, op: &'static str) -> Result<(f64, Option<f64>)> {
        self.sync()?;
        if self.host_samples == 0 {
            return Err(Error::Empty { op });
        }
        let (loss, acc) = self.means();
        if !loss.is_finite() {
            return Err(Error::invalid(op, format!("the mean loss is {loss}")));
        }
        Ok((loss, acc))
    }
}
