//! [`Occlusion`] (Zeiler & Fergus 2014), as captum's: a window slides over
//! each sample, the elements under it are replaced by a baseline value, and
//! every element is given the mean drop of the target output over the
//! window positions that covered it.
//!
//! Window positions follow captum exactly: along a dimension of size `S`,
//! a window of size `w` and stride `s` starts at `0, s, 2s, ...`,
//! `⌈(S − w)/s⌉ + 1` times, and a last window that would reach past the end
//! is cut at the edge. Many positions run in one forward pass: the batch of
//! occluded copies is `positions × N` samples, at most
//! [`Occlusion::max_batch`].

use lam_core::nn::Module;
use lam_core::{Error, Result, Tensor};

use super::gradient::{batch_size, check_inputs, selected_outputs};
use super::{Attribution, Target};

/// Sliding-window occlusion of a model's inputs.
pub struct Occlusion<'m> {
    model: &'m dyn Module,
    window: Vec<usize>,
    strides: Option<Vec<usize>>,
    baseline: f32,
    max_batch: usize,
}

impl<'m> Occlusion<'m> {
    /// Occlusion of `model` with a window of shape `window` (one size per
    /// dimension of a sample, the batch dimension left out), stride 1 and
    /// baseline 0, as captum's defaults.
    pub fn new(model: &'m dyn Module, window: &[usize]) -> Occlusion<'m> {
        Occlusion {
            model,
            window: window.to_vec(),
            strides: None,
            baseline: 0.0,
            max_batch: 4096,
        }
    }

    /// The step between window positions along each sample dimension.
    pub fn strides(mut self, strides: &[usize]) -> Self {
        self.strides = Some(strides.to_vec());
        self
    }

    /// The value occluded elements take.
    pub fn baseline(mut self, baseline: f32) -> Self {
        self.baseline = baseline;
        self
    }

    /// At most this many occluded samples per forward pass (at least one
    /// window position of the whole batch).
    pub fn max_batch(mut self, samples: usize) -> Self {
        self.max_batch = samples;
        self
    }

    /// Each window position as a 0/1 mask over a sample's elements,
    /// `[positions][elements]`, for samples of shape `sample`.
    fn masks(&self, sample: &[usize]) -> Result<Vec<Vec<f32>>> {
        let rank = sample.len();
        let strides = self.strides.clone().unwrap_or_else(|| vec![1; rank]);
        if self.window.len() != rank || strides.len() != rank {
            return Err(Error::invalid(
                "Occlusion",
                format!(
                    "samples of shape {sample:?} need a window and strides of {rank} sizes, \
                     found window {:?} and strides {strides:?}",
                    self.window
                ),
            ));
        }
        let mut counts = Vec::with_capacity(rank);
        for d in 0..rank {
            let (s, w, st) = (sample[d], self.window[d], strides[d]);
            if w == 0 || w > s || st == 0 {
                return Err(Error::invalid(
                    "Occlusion",
                    format!(
                        "dimension {d} of size {s}: the window must be 1..={s} and the stride \
                         ≥ 1, found window {w} and stride {st}"
                    ),
                ));
            }
            if st > w {
                return Err(Error::invalid(
                    "Occlusion",
                    format!(
                        "dimension {d}: a stride of {st} over a window of {w} leaves elements \
                         no window covers (captum gives them NaN)"
                    ),
                ));
            }
            counts.push((s - w).div_ceil(st) + 1);
        }
        let elements: usize = sample.iter().product();
        let positions: usize = counts.iter().product();
        let mut masks = Vec::with_capacity(positions);
        for p in 0..positions {
            // The window's start along each dimension, the last fastest.
            let mut rest = p;
            let mut start = vec![0; rank];
            for d in (0..rank).rev() {
                start[d] = (rest % counts[d]) * strides[d];
                rest /= counts[d];
            }
            let mut mask = vec![0.0f32; elements];
            for (e, m) in mask.iter_mut().enumerate() {
                let mut rest = e;
                let mut inside = true;
                for d in (0..rank).rev() {
                    let i = rest % sample[d];
                    rest /= sample[d];
                    inside &= i >= start[d] && i < start[d] + self.window[d];
                }
                if inside {
                    *m = 1.0;
                }
            }
            masks.push(mask);
        }
        Ok(masks)
    }
}

impl Attribution for Occlusion<'_> {
    fn attribute_repeated(&self, inputs: &Tensor, target: &Target, _: usize) -> Result<Tensor> {
        check_inputs("Occlusion", inputs)?;
        let x = inputs.detach();
        let n = batch_size(&x);
        let sample = &x.dims()[1..];
        let elements: usize = sample.iter().product();
        let masks = self.masks(sample)?;
        let device = x.device();
        let reference = selected_outputs("Occlusion", self.model, &x, target)?;
        let flat = x.reshape(&[n as isize, elements as isize])?;
        let mut covered = vec![0.0f32; elements];
        for mask in &masks {
            for (c, m) in covered.iter_mut().zip(mask) {
                *c += m;
            }
        }
        let per_pass = (self.max_batch / n).max(1);
        let mut total: Option<Tensor> = None;
        for chunk in masks.chunks(per_pass) {
            let k = chunk.len();
            let m = Tensor::from_slice(&chunk.concat(), &[k, elements], &device)?;
            // [k, N, elements]: each sample with one window set to the baseline.
            let kept = m.neg()?.add_scalar(1.0)?.unsqueeze(1)?;
            let occluded = flat
                .unsqueeze(0)?
                .mul(&kept)?
                .add(&m.mul_scalar(self.baseline)?.unsqueeze(1)?)?;
            let mut shape: Vec<isize> = vec![(k * n) as isize];
            shape.extend(sample.iter().map(|&d| d as isize));
            let out = selected_outputs(
                "Occlusion",
                self.model,
                &occluded.reshape(&shape)?,
                &target.tile(k),
            )?;
            // drop[p, n] = f(x)ₙ − f(x with window p occluded)ₙ; summed over
            // positions onto the elements each covers: dropᵀ · masks.
            let drop = reference
                .unsqueeze(0)?
                .sub(&out.reshape(&[k as isize, n as isize])?)?;
            let part = drop.t()?.matmul(&m)?;
            total = Some(match total {
                Some(t) => t.add(&part)?,
                None => part,
            });
        }
        let total = total.ok_or(Error::Empty { op: "Occlusion" })?;
        let covered = Tensor::from_slice(&covered, &[1, elements], &device)?;
        total
            .div(&covered)?
            .reshape(&x.dims().iter().map(|&d| d as isize).collect::<Vec<_>>())
    }
}
