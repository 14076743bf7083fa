//! [`IntegratedGradients`] (Sundararajan et al. 2017): the gradient
//! averaged along the straight path from a baseline `x'` to the input `x`,
//! times `x − x'`, with captum's quadrature rules ([`Rule`]) and its
//! convergence delta.
//!
//! The path integral `∫₀¹ ∂f/∂x(x' + α(x − x')) dα` is a weighted sum over
//! `n_steps` points `αₖ`: Gauss–Legendre nodes and weights (captum's
//! default, `method="gausslegendre"`, the nodes of NumPy's `leggauss`
//! mapped to `[0, 1]`), or a Riemann sum whose points sit at the left or
//! right end or the middle of `n_steps` equal slices, or the trapezoid rule
//! over `n_steps` evenly spaced points. By the fundamental theorem of
//! calculus the attributions of a sample add up to `f(x) − f(x')`; the
//! difference is the *convergence delta*, which shrinks as `n_steps` grows.

use lam_core::nn::Module;
use lam_core::{Error, Result, Tensor};

use super::gradient::{
    batch_size, broadcast_baseline, check_inputs, input_gradients, repeat_each, selected_outputs,
};
use super::{Attribution, Target};

/// How the path integral is approximated (captum's `method=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rule {
    /// `"riemann_left"`: `αₖ = k/n`, weights `1/n`.
    RiemannLeft,
    /// `"riemann_right"`: `αₖ = (k+1)/n`, weights `1/n`.
    RiemannRight,
    /// `"riemann_middle"`: `αₖ = (k+½)/n`, weights `1/n`.
    RiemannMiddle,
    /// `"riemann_trapezoid"`: `αₖ = k/(n−1)`, weights `1/n` with the two
    /// end points halved (captum's weights, which sum to `1 − 1/n`).
    RiemannTrapezoid,
    /// `"gausslegendre"` (the default): Gauss–Legendre quadrature on `[0, 1]`.
    #[default]
    GaussLegendre,
}

impl Rule {
    /// The points `αₖ` in `[0, 1]` and their weights for `n` steps.
    pub fn points(self, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let least = if self == Rule::GaussLegendre { 1 } else { 2 };
        if n < least {
            return Err(Error::invalid(
                "IntegratedGradients",
                format!("{self:?} needs n_steps ≥ {least}, found {n}"),
            ));
        }
        let nf = n as f64;
        let even = |from: f64, to: f64| -> Vec<f64> {
            (0..n)
                .map(|k| from + (to - from) * k as f64 / (nf - 1.0))
                .collect()
        };
        let uniform = vec![1.0 / nf; n];
        Ok(match self {
            Rule::RiemannLeft => (even(0.0, 1.0 - 1.0 / nf), uniform),
            Rule::RiemannRight => (even(1.0 / nf, 1.0), uniform),
            Rule::RiemannMiddle => (even(0.5 / nf, 1.0 - 0.5 / nf), uniform),
            Rule::RiemannTrapezoid => {
                let mut w = uniform;
                w[0] /= 2.0;
                w[n - 1] /= 2.0;
                (even(0.0, 1.0), w)
            }
            Rule::GaussLegendre => {
                let (x, w) = gauss_legendre(n);
                (
                    x.iter().map(|x| 0.5 * (1.0 + x)).collect(),
                    w.iter().map(|w| 0.5 * w).collect(),
                )
            }
        })
    }
}

/// Gauss–Legendre nodes (ascending, on `[−1, 1]`) and weights for `n`
/// points, as NumPy's `numpy.polynomial.legendre.leggauss(n)`: the roots of
/// the Legendre polynomial `Pₙ` by Newton's method from Tricomi's estimate.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            // Pₙ(z) by the three-term recurrence, and Pₙ'(z) from Pₙ and Pₙ₋₁.
            let (mut p, mut previous) = (1.0, 0.0);
            for j in 1..=n {
                let jf = j as f64;
                (p, previous) = (((2.0 * jf - 1.0) * z * p - (jf - 1.0) * previous) / jf, p);
            }
            derivative = nf * (z * p - previous) / (z * z - 1.0);
            let step = p / derivative;
            z -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        nodes[i] = -z;
        nodes[n - 1 - i] = z;
        let w = 2.0 / ((1.0 - z * z) * derivative * derivative);
        weights[i] = w;
        weights[n - 1 - i] = w;
    }
    (nodes, weights)
}

/// Integrated Gradients of a model (captum's `IntegratedGradients` with
/// `multiply_by_inputs=True`).
pub struct IntegratedGradients<'m> {
    model: &'m dyn Module,
    n_steps: usize,
    rule: Rule,
    baseline: Option<Tensor>,
    internal_batch_size: Option<usize>,
}

impl<'m> IntegratedGradients<'m> {
    /// 50 Gauss–Legendre steps from a zero baseline, as captum's defaults.
    pub fn new(model: &'m dyn Module) -> IntegratedGradients<'m> {
        IntegratedGradients {
            model,
            n_steps: 50,
            rule: Rule::GaussLegendre,
            baseline: None,
            internal_batch_size: None,
        }
    }

    /// The number of points on the path.
    pub fn n_steps(mut self, n_steps: usize) -> Self {
        self.n_steps = n_steps;
        self
    }

    /// The quadrature rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rule = rule;
        self
    }

    /// The baseline `x'`: one per sample (`[N, ...]`), one for all (`[1,
    /// ...]` or the sample shape) or a scalar (`[]`); zeros when not set.
    pub fn baseline(mut self, baseline: &Tensor) -> Self {
        self.baseline = Some(baseline.detach());
        self
    }

    /// At most this many scaled inputs per forward pass (at least one step
    /// of the whole batch); all `n_steps × N` at once when not set.
    pub fn internal_batch_size(mut self, samples: usize) -> Self {
        self.internal_batch_size = Some(samples);
        self
    }

    /// The attributions and each sample's convergence delta `[N]`:
    /// `Σᵢ attributionᵢ − (f(x) − f(x'))`.
    pub fn attribute_with_delta(
        &self,
        inputs: &Tensor,
        target: &Target,
    ) -> Result<(Tensor, Tensor)> {
        let baseline = self.full_baseline(inputs, 1)?;
        let attributions = self.integrate(inputs, &baseline, target)?;
        let n = batch_size(inputs) as isize;
        let total = attributions.reshape(&[n, -1])?.sum(&[1], false)?;
        let at_input = selected_outputs("IntegratedGradients", self.model, inputs, target)?;
        let at_baseline = selected_outputs("IntegratedGradients", self.model, &baseline, target)?;
        let delta = total.sub(&at_input.sub(&at_baseline)?)?;
        Ok((attributions, delta))
    }

    fn full_baseline(&self, inputs: &Tensor, repeats: usize) -> Result<Tensor> {
        check_inputs("IntegratedGradients", inputs)?;
        let per_sample = self
            .baseline
            .as_ref()
            .filter(|b| b.rank() == inputs.rank() && b.dims()[0] > 1 && repeats > 1);
        match per_sample {
            Some(b) => broadcast_baseline(
                "IntegratedGradients",
                Some(&repeat_each(b, repeats)?),
                inputs,
            ),
            None => broadcast_baseline("IntegratedGradients", self.baseline.as_ref(), inputs),
        }
    }

    /// `(x − x') · Σₖ wₖ ∇f(x' + αₖ(x − x'))`, in passes of whole steps.
    fn integrate(&self, inputs: &Tensor, baseline: &Tensor, target: &Target) -> Result<Tensor> {
        let (alphas, weights) = self.rule.points(self.n_steps)?;
        let x = inputs.detach();
        let n = batch_size(&x);
        let diff = x.sub(baseline)?;
        let per_pass = self
            .internal_batch_size
            .map_or(self.n_steps, |m| (m / n).max(1));
        // [k, 1, 1, ...]: one coefficient per step, broadcast over a batch.
        let column = |k: usize| -> Vec<usize> {
            let mut s = vec![1; x.rank() + 1];
            s[0] = k;
            s
        };
        let mut sample_then_batch: Vec<isize> = vec![-1];
        sample_then_batch.extend(x.dims().iter().map(|&d| d as isize));
        let mut total: Option<Tensor> = None;
        for start in (0..self.n_steps).step_by(per_pass) {
            let k = per_pass.min(self.n_steps - start);
            let to_f32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let a =
                Tensor::from_slice(&to_f32(&alphas[start..start + k]), &column(k), &x.device())?;
            let w =
                Tensor::from_slice(&to_f32(&weights[start..start + k]), &column(k), &x.device())?;
            let scaled = baseline.unsqueeze(0)?.add(&diff.unsqueeze(0)?.mul(&a)?)?;
            let mut flat: Vec<isize> = vec![(k * n) as isize];
            flat.extend(x.dims().iter().skip(1).map(|&d| d as isize));
            let (_, grad) = input_gradients(
                "IntegratedGradients",
                self.model,
                &scaled.reshape(&flat)?,
                &target.tile(k),
            )?;
            let part = grad
                .reshape(&sample_then_batch)?
                .mul(&w)?
                .sum(&[0], false)?;
            total = Some(match total {
                Some(t) => t.add(&part)?,
                None => part,
            });
        }
        let total = total.ok_or(Error::Empty {
            op: "IntegratedGradients",
        })?;
        total.mul(&diff)
    }
}

impl Attribution for IntegratedGradients<'_> {
    fn attribute_repeated(
        &self,
        inputs: &Tensor,
        target: &Target,
        repeats: usize,
    ) -> Result<Tensor> {
        let baseline = self.full_baseline(inputs, repeats)?;
        self.integrate(inputs, &baseline, target)
    }
}
