//! [`NoiseTunnel`]: SmoothGrad (Smilkov et al. 2017) and its variants over
//! any [`Attribution`] method, as captum's `NoiseTunnel`: each sample is
//! copied `nt_samples` times, Gaussian noise of standard deviation `stdev`
//! is added to every copy, the wrapped method explains all copies in one
//! batch, and the copies' attributions are reduced per sample.

use lam_core::backend::Distribution;
use lam_core::{Error, Result, Tensor};

use super::gradient::{batch_size, check_inputs, repeat_each};
use super::{Attribution, Target};

/// How the attributions of a sample's noisy copies are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseType {
    /// Their mean (`"smoothgrad"`, the default).
    #[default]
    SmoothGrad,
    /// The mean of their squares (`"smoothgrad_sq"`).
    SmoothGradSq,
    /// Their variance, `E[a²] − E[a]²` (`"vargrad"`).
    VarGrad,
}

/// Another attribution method averaged over noisy copies of the inputs.
pub struct NoiseTunnel<'a> {
    method: &'a dyn Attribution,
    kind: NoiseType,
    nt_samples: usize,
    stdev: f32,
    seed: u64,
}

impl<'a> NoiseTunnel<'a> {
    /// SmoothGrad over `method` with captum's defaults: 5 copies, noise of
    /// standard deviation 1 (in the inputs' units), seed 0.
    pub fn new(method: &'a dyn Attribution) -> NoiseTunnel<'a> {
        NoiseTunnel {
            method,
            kind: NoiseType::SmoothGrad,
            nt_samples: 5,
            stdev: 1.0,
            seed: 0,
        }
    }

    /// How the copies are combined.
    pub fn kind(mut self, kind: NoiseType) -> Self {
        self.kind = kind;
        self
    }

    /// Noisy copies per sample.
    pub fn nt_samples(mut self, nt_samples: usize) -> Self {
        self.nt_samples = nt_samples;
        self
    }

    /// The noise's standard deviation.
    pub fn stdev(mut self, stdev: f32) -> Self {
        self.stdev = stdev;
        self
    }

    /// The seed the noise is drawn from (the same seed gives the same noise
    /// on every device).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Attributions computed with the given noise, `[N · nt_samples, ...]`
    /// (copy `j` of sample `n` at row `n · nt_samples + j`, as captum lays
    /// them out), instead of noise drawn from the seed.
    pub fn attribute_with_noise(
        &self,
        inputs: &Tensor,
        target: &Target,
        noise: &Tensor,
    ) -> Result<Tensor> {
        check_inputs("NoiseTunnel", inputs)?;
        let m = self.nt_samples;
        if m == 0 {
            return Err(Error::invalid("NoiseTunnel", "nt_samples must be ≥ 1"));
        }
        let n = batch_size(inputs);
        let mut copies = inputs.shape();
        copies[0] = n * m;
        if noise.dims() != copies.as_slice() {
            return Err(Error::shape(
                "NoiseTunnel",
                format!("noise of shape {copies:?} (nt_samples copies of each sample)"),
                noise.dims(),
            ));
        }
        let noisy = repeat_each(&inputs.detach(), m)?.add(noise)?;
        let each = self
            .method
            .attribute_repeated(&noisy, &target.repeat_each(m), m)?;
        // [N·m, ...] → [N, m, ...], reduced over the copies.
        let mut grouped: Vec<isize> = vec![n as isize, m as isize];
        grouped.extend(inputs.dims().iter().skip(1).map(|&d| d as isize));
        let each = each.reshape(&grouped)?;
        let mean = |t: &Tensor| t.sum(&[1], false)?.div_scalar(m as f32);
        match self.kind {
            NoiseType::SmoothGrad => mean(&each),
            NoiseType::SmoothGradSq => mean(&each.square()?),
            NoiseType::VarGrad => {
                let m1 = mean(&each)?;
                mean(&each.square()?)?.sub(&m1.square()?)
            }
        }
    }
}

impl Attribution for NoiseTunnel<'_> {
    fn attribute_repeated(&self, inputs: &Tensor, target: &Target, _: usize) -> Result<Tensor> {
        if !self.stdev.is_finite() || self.stdev < 0.0 {
            return Err(Error::invalid(
                "NoiseTunnel",
                format!("stdev must be finite and ≥ 0, found {}", self.stdev),
            ));
        }
        check_inputs("NoiseTunnel", inputs)?;
        let mut copies = inputs.shape();
        copies[0] *= self.nt_samples;
        let noise = Tensor::random_seeded(
            &copies,
            Distribution::Normal {
                mean: 0.0,
                std: self.stdev,
            },
            self.seed,
            &inputs.device(),
        )?;
        self.attribute_with_noise(inputs, target, &noise)
    }
}
