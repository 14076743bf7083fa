//! The plain gradient methods: [`Saliency`] (`|∂f/∂x|`, Simonyan et al.
//! 2013) and [`InputXGradient`] (`x · ∂f/∂x`), as captum computes them.

use lam_core::nn::Module;
use lam_core::{Result, Tensor};

use super::gradient::input_gradients;
use super::{Attribution, Target};

/// The gradient of the target output with respect to each input element,
/// by default its absolute value (captum's `Saliency(model).attribute(x,
/// target, abs=True)`).
pub struct Saliency<'m> {
    model: &'m dyn Module,
    abs: bool,
}

impl<'m> Saliency<'m> {
    /// Absolute gradients of `model`'s outputs.
    pub fn new(model: &'m dyn Module) -> Saliency<'m> {
        Saliency { model, abs: true }
    }

    /// Absolute values (`true`, the default) or signed gradients.
    pub fn abs(mut self, abs: bool) -> Self {
        self.abs = abs;
        self
    }
}

impl Attribution for Saliency<'_> {
    fn attribute_repeated(&self, inputs: &Tensor, target: &Target, _: usize) -> Result<Tensor> {
        let (_, grad) = input_gradients("Saliency", self.model, inputs, target)?;
        if self.abs {
            grad.abs()
        } else {
            Ok(grad)
        }
    }
}

/// Each input element times the gradient of the target output with respect
/// to it (captum's `InputXGradient`).
pub struct InputXGradient<'m> {
    model: &'m dyn Module,
}

impl<'m> InputXGradient<'m> {
    /// Input × gradient of `model`'s outputs.
    pub fn new(model: &'m dyn Module) -> InputXGradient<'m> {
        InputXGradient { model }
    }
}

impl Attribution for InputXGradient<'_> {
    fn attribute_repeated(&self, inputs: &Tensor, target: &Target, _: usize) -> Result<Tensor> {
        let (_, grad) = input_gradients("InputXGradient", self.model, inputs, target)?;
        inputs.detach().mul(&grad)
    }
}
