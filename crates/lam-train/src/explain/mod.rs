//! Why a model decided what it did: attribution methods that match captum
//! 0.9, and permutation feature importance as scikit-learn computes it.
//!
//! Every method works on anything that implements [`Module`](lam_core::nn::Module),
//! with no change to the model: gradient methods mark a copy of the inputs
//! as a leaf that requires grad, run the model, and backpropagate the
//! output column each sample's [`Target`] selects (captum's `target=`).
//! The model's own parameter gradients are left as they were. Work is
//! batched: a batch of `N` inputs runs as one forward pass (Integrated
//! Gradients runs its `n_steps × N` scaled inputs in passes of at most
//! [`IntegratedGradients::internal_batch_size`] samples), on any device.
//!
//! | method | captum | attribution of feature `i` |
//! |--------|--------|----------------------------|
//! | [`Saliency`] | `Saliency` | `|∂f/∂xᵢ|` (or the signed gradient) |
//! | [`InputXGradient`] | `InputXGradient` | `xᵢ · ∂f/∂xᵢ` |
//! | [`IntegratedGradients`] | `IntegratedGradients` | `(xᵢ − x'ᵢ) · Σₖ wₖ ∂f/∂xᵢ(x' + αₖ(x − x'))` |
//! | [`NoiseTunnel`] | `NoiseTunnel` | SmoothGrad: the mean (of squares, or the variance) of another method over noisy copies |
//! | [`Occlusion`] | `Occlusion` | the mean drop of `f` over the sliding windows that cover `i` |
//! | [`permutation_importance`] | scikit-learn's `permutation_importance` | the drop of a score when column `i` is shuffled |
//!
//! Put the model in evaluation mode first (`model.eval()`): dropout in
//! training mode makes every forward pass different, as in PyTorch.

mod gradient;
mod integrated;
mod noise_tunnel;
mod occlusion;
mod permutation;
mod saliency;
mod target;

pub use integrated::{gauss_legendre, IntegratedGradients, Rule};
pub use noise_tunnel::{NoiseTunnel, NoiseType};
pub use occlusion::Occlusion;
pub use permutation::{permutation_importance, permutation_importance_with, Importances};
pub use saliency::{InputXGradient, Saliency};
pub use target::Target;

use lam_core::{Result, Tensor};

/// An attribution method: one value per input element, in the inputs' shape.
pub trait Attribution {
    /// Attributions of `inputs` (`[N, ...]`), sample `n` scored on the
    /// output `target` selects for it.
    fn attribute(&self, inputs: &Tensor, target: &Target) -> Result<Tensor> {
        self.attribute_repeated(inputs, target, 1)
    }

    /// As [`Attribution::attribute`] for inputs that hold each original
    /// sample `repeats` times in a row (how [`NoiseTunnel`] calls a method):
    /// per-sample settings, such as a batch of baselines, repeat with them.
    fn attribute_repeated(
        &self,
        inputs: &Tensor,
        target: &Target,
        repeats: usize,
    ) -> Result<Tensor>;
}
