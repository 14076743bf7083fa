//! [`Dropout`] (PyTorch's `nn.Dropout`) and its functional form [`dropout`].
//!
//! In training mode each element is zeroed with probability `p` and the
//! survivors are scaled by `1 / (1 − p)`, so the expected output equals the
//! input; in evaluation mode it is the identity. The mask comes from
//! [`Tensor::bernoulli_with`], drawn from the layer's own generator when
//! [`Dropout::with_generator`] gave it one, else from the current generator
//! ([`crate::rng::current`]: a `with_generator` scope's, such as a
//! trainer's, or the default one behind `manual_seed`), so a seed
//! reproduces the same masks on every backend.

use super::summary::record;
use super::{py_float, Mode, Module};
use crate::rng::{self, Generator};
use crate::{Error, Result, Tensor};

/// Randomly zeroes elements during training.
#[derive(Module)]
pub struct Dropout {
    p: f32,
    mode: Mode,
    /// Not part of the state: a layer's own random stream, if given one.
    #[module(skip)]
    generator: Option<Generator>,
}

impl Dropout {
    /// `nn.Dropout(p)`; `p` must be in `[0, 1]`.
    pub fn new(p: f32) -> Result<Dropout> {
        check_p("Dropout", p)?;
        Ok(Dropout {
            p,
            mode: Mode::new(),
            generator: None,
        })
    }

    /// Draws its masks from `generator` (shared: the layer advances it).
    pub fn with_generator(mut self, generator: &Generator) -> Dropout {
        self.generator = Some(generator.clone());
        self
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }
}

impl Default for Dropout {
    /// `nn.Dropout()`: `p = 0.5`.
    fn default() -> Self {
        Dropout {
            p: 0.5,
            mode: Mode::new(),
            generator: None,
        }
    }
}

impl Module for Dropout {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let generator = self.generator.clone().unwrap_or_else(rng::current);
        record(
            self,
            dropout_with(input, self.p, self.mode.is_training(), &generator),
        )
    }

    fn extra_repr(&self) -> String {
        format!("p={}, inplace=False", py_float(self.p))
    }
}

/// `torch.nn.functional.dropout(input, p, training)`, its mask drawn from
/// the current generator.
pub fn dropout(input: &Tensor, p: f32, training: bool) -> Result<Tensor> {
    dropout_with(input, p, training, &rng::current())
}

/// [`dropout`] with its mask drawn from `generator`.
pub fn dropout_with(
    input: &Tensor,
    p: f32,
    training: bool,
    generator: &Generator,
) -> Result<Tensor> {
    check_p("dropout", p)?;
    let input = &input.float32("dropout")?;
    if !training || p == 0.0 {
        return Ok(input.clone());
    }
    if p == 1.0 {
        // Everything dropped; multiplying keeps the result on the tape.
        return input.mul_scalar(0.0);
    }
    let keep = Tensor::bernoulli_with(input.dims(), 1.0 - p, &input.device(), generator)?;
    input.mul(&keep.mul_scalar(1.0 / (1.0 - p))?)
}

fn check_p(op: &'static str, p: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            op,
            format!("dropout probability must be in [0, 1], found {p}"),
        ));
    }
    Ok(())
}
