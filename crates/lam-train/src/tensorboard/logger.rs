//! [`TensorBoardLogger`]: a trainer [`Callback`] that logs every epoch to
//! a [`SummaryWriter`] — losses, accuracies or regression scores, the
//! learning rate and the throughput as scalars, and, when given the model,
//! a histogram of every parameter and of its gradient.
//!
//! ```ignore
//! let logger = TensorBoardLogger::new(SummaryWriter::new(out_dir.join("runs"))?).model(&model);
//! Trainer::new(&model, &mut opt, cross_entropy).callback(logger).fit(&train, Some(&val))?;
//! ```

use lam_core::nn::Module;
use lam_core::Result;

use super::SummaryWriter;
use crate::trainer::{Callback, Control, EpochRecord};

/// Logs a run to TensorBoard, one step per epoch (see the module docs).
pub struct TensorBoardLogger<'m> {
    writer: SummaryWriter,
    model: Option<&'m dyn Module>,
}

impl<'m> TensorBoardLogger<'m> {
    /// Scalars only.
    pub fn new(writer: SummaryWriter) -> TensorBoardLogger<'m> {
        TensorBoardLogger {
            writer,
            model: None,
        }
    }

    /// Also histograms of `model`'s parameters and gradients.
    pub fn model(mut self, model: &'m dyn Module) -> Self {
        self.model = Some(model);
        self
    }

    /// The writer (to log more, or to find its file).
    pub fn writer(&mut self) -> &mut SummaryWriter {
        &mut self.writer
    }
}

impl Callback for TensorBoardLogger<'_> {
    fn on_epoch_end(&mut self, r: &EpochRecord) -> Result<Control> {
        let step = r.epoch as i64;
        let w = &mut self.writer;
        let optional = [
            ("loss/validation", r.val_loss),
            ("accuracy/train", r.train_accuracy),
            ("accuracy/validation", r.val_accuracy),
            ("r2/train", r.train_regression.map(|s| s.r2)),
            ("r2/validation", r.val_regression.map(|s| s.r2)),
            ("mse/train", r.train_regression.map(|s| s.mse)),
            ("mse/validation", r.val_regression.map(|s| s.mse)),
        ];
        w.add_scalar("loss/train", r.train_loss, step)?;
        for (tag, v) in optional {
            if let Some(v) = v {
                w.add_scalar(tag, v, step)?;
            }
        }
        w.add_scalar("learning_rate", r.lr, step)?;
        w.add_scalar("samples_per_second", r.samples_per_sec, step)?;
        if let Some(model) = self.model {
            for (name, p) in model.named_parameters() {
                w.add_histogram_tensor(&format!("weights/{name}"), &p, step)?;
                if let Some(g) = p.grad() {
                    w.add_histogram_tensor(&format!("gradients/{name}"), &g, step)?;
                }
            }
        }
        Ok(Control::Continue)
    }
}
