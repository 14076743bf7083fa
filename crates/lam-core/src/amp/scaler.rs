//! [`GradScaler`]: dynamic loss scaling, as `torch.amp.GradScaler`.
//!
//! Gradients of an `F16` computation that are smaller than `F16`'s least
//! subnormal (6e-8) vanish. Multiplying the loss by a large scale lifts
//! them into range; the gradients are divided by it again before the
//! optimizer sees them. A scale too large makes some gradient overflow to
//! inf (or NaN): that step is skipped and the scale halved; after
//! `growth_interval` steps in a row without overflow it doubles.

use crate::optim::Optimizer;
use crate::{no_grad, DType, Error, Layout, Result, Tensor};

/// Loss scaling for mixed-precision training, with PyTorch's defaults
/// (initial scale 2¹⁶, growth ×2 every 2000 overflow-free steps, backoff
/// ×0.5) and its calls:
///
/// ```text
/// let mut scaler = GradScaler::new();
/// for batch in &loader {
///     let loss = { let _ac = amp::autocast(&dev, DType::F16)?; model_loss(&batch)? };
///     scaler.scale(&loss)?.backward()?;
///     scaler.step(&mut opt)?;   // unscales; skips the step on inf/NaN
///     scaler.update()?;
///     opt.zero_grad();
/// }
/// ```
///
/// Checking the gradients costs one reduction on the device and one read
/// back of a single number per optimizer per step. The scale is kept on
/// the host, in `f32` as PyTorch computes it.
#[derive(Debug, Clone)]
pub struct GradScaler {
    scale: f32,
    growth_factor: f32,
    backoff_factor: f32,
    growth_interval: u32,
    growth_tracker: u32,
    enabled: bool,
    /// Optimizers unscaled since the last `update`, by address, and whether
    /// their gradients held an inf or NaN.
    unscaled: Vec<(usize, bool)>,
}

/// What [`GradScaler::state_dict`] saves: PyTorch's `scale`,
/// `growth_factor`, `backoff_factor`, `growth_interval` and
/// `_growth_tracker`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradScalerState {
    /// The current loss scale.
    pub scale: f32,
    /// What the scale is multiplied by after `growth_interval` good steps.
    pub growth_factor: f32,
    /// What the scale is multiplied by after an overflow.
    pub backoff_factor: f32,
    /// Overflow-free steps before the scale grows.
    pub growth_interval: u32,
    /// Overflow-free steps since the scale last changed.
    pub growth_tracker: u32,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler::new()
    }
}

impl GradScaler {
    /// A scaler with PyTorch's defaults.
    pub fn new() -> GradScaler {
        GradScaler {
            scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            growth_tracker: 0,
            enabled: true,
            unscaled: Vec::new(),
        }
    }

    /// The starting scale (default 65536).
    pub fn init_scale(mut self, scale: f32) -> GradScaler {
        self.scale = scale;
        self
    }

    /// The growth factor (default 2).
    pub fn growth_factor(mut self, factor: f32) -> GradScaler {
        self.growth_factor = factor;
        self
    }

    /// The backoff factor (default 0.5).
    pub fn backoff_factor(mut self, factor: f32) -> GradScaler {
        self.backoff_factor = factor;
        self
    }

    /// Overflow-free steps between growths (default 2000).
    pub fn growth_interval(mut self, steps: u32) -> GradScaler {
        self.growth_interval = steps;
        self
    }

    /// A disabled scaler passes everything through (`scale` returns the
    /// loss, `step` just steps): one training loop serves both precisions.
    pub fn enabled(mut self, enabled: bool) -> GradScaler {
        self.enabled = enabled;
        self
    }

    /// True unless built with `enabled(false)`.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The current scale (1 when disabled).
    pub fn get_scale(&self) -> f32 {
        if self.enabled {
            self.scale
        } else {
            1.0
        }
    }

    /// `loss × scale`, to call `backward()` on.
    pub fn scale(&self, loss: &Tensor) -> Result<Tensor> {
        if !self.enabled {
            return Ok(loss.clone());
        }
        self.check()?;
        loss.float32("GradScaler::scale")?.mul_scalar(self.scale)
    }

    /// Divides the gradients of `optimizer`'s parameters by the scale, in
    /// place, and records whether any is inf or NaN (one reduction on the
    /// device, one number read back). Call it before clipping gradients;
    /// [`GradScaler::step`] calls it when it has not been called. Twice for
    /// one optimizer before [`GradScaler::update`] is an error.
    pub fn unscale_(&mut self, optimizer: &dyn Optimizer) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        self.check()?;
        let key = address(optimizer);
        if self.unscaled.iter().any(|(k, _)| *k == key) {
            return Err(Error::invalid(
                "GradScaler::unscale_",
                "unscale_() was already called for this optimizer since the last update()",
            ));
        }
        // 1/scale rounded to f32, as PyTorch's `scale.double().reciprocal().float()`.
        let inv = (1.0 / f64::from(self.scale)) as f32;
        let params = optimizer.params();
        let found_inf = match unscale_fused(params, inv)? {
            Some(found) => found,
            None => no_grad(|| unscale_composed(params, inv))?,
        };
        self.unscaled.push((key, found_inf));
        Ok(())
    }

    /// Unscales `optimizer`'s gradients (unless [`GradScaler::unscale_`]
    /// already did) and steps it unless one of them was inf or NaN.
    /// Returns whether the step ran.
    pub fn step(&mut self, optimizer: &mut dyn Optimizer) -> Result<bool> {
        if !self.enabled {
            optimizer.step()?;
            return Ok(true);
        }
        let key = address(optimizer);
        if !self.unscaled.iter().any(|(k, _)| *k == key) {
            self.unscale_(optimizer)?;
        }
        let skipped = self.unscaled.iter().any(|&(k, inf)| k == key && inf);
        if !skipped {
            optimizer.step()?;
        }
        Ok(!skipped)
    }

    /// Adjusts the scale for the next step: × `backoff_factor` if any
    /// optimizer unscaled since the last update saw an inf or NaN (and the
    /// count of good steps restarts), else × `growth_factor` once
    /// `growth_interval` good steps have passed.
    pub fn update(&mut self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        self.check()?;
        if self.unscaled.is_empty() {
            return Err(Error::invalid(
                "GradScaler::update",
                "no optimizer was unscaled or stepped through this scaler since the last update()",
            ));
        }
        if self.unscaled.iter().any(|&(_, inf)| inf) {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
        } else {
            self.growth_tracker += 1;
            if self.growth_tracker >= self.growth_interval {
                self.scale *= self.growth_factor;
                self.growth_tracker = 0;
            }
        }
        self.unscaled.clear();
        Ok(())
    }

    /// Sets the scale directly (PyTorch's `update(new_scale)`).
    pub fn set_scale(&mut self, scale: f32) -> Result<()> {
        let old = std::mem::replace(&mut self.scale, scale);
        if let Err(e) = self.check() {
            self.scale = old;
            return Err(e);
        }
        self.unscaled.clear();
        Ok(())
    }

    /// The scaler's state, to save beside the model and optimizer.
    pub fn state_dict(&self) -> GradScalerState {
        GradScalerState {
            scale: self.scale,
            growth_factor: self.growth_factor,
            backoff_factor: self.backoff_factor,
            growth_interval: self.growth_interval,
            growth_tracker: self.growth_tracker,
        }
    }

    /// Restores a saved state; an error (and no change) for values a
    /// scaler cannot hold.
    pub fn load_state_dict(&mut self, state: &GradScalerState) -> Result<()> {
        let mut next = self.clone();
        next.scale = state.scale;
        next.growth_factor = state.growth_factor;
        next.backoff_factor = state.backoff_factor;
        next.growth_interval = state.growth_interval;
        next.growth_tracker = state.growth_tracker;
        next.unscaled.clear();
        next.check()?;
        *self = next;
        Ok(())
    }

    /// An error naming the first hyper-parameter out of range.
    fn check(&self) -> Result<()> {
        let bad = |what: &str, value: String| {
            Err(Error::invalid(
                "GradScaler",
                format!("{what} must be {value}"),
            ))
        };
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return bad("the scale", format!("finite and > 0, found {}", self.scale));
        }
        if !(self.growth_factor.is_finite() && self.growth_factor > 1.0) {
            return bad(
                "growth_factor",
                format!("finite and > 1, found {}", self.growth_factor),
            );
        }
        if !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return bad(
                "backoff_factor",
                format!("in (0, 1), found {}", self.backoff_factor),
            );
        }
        if self.growth_interval == 0 {
            return bad("growth_interval", "at least 1, found 0".into());
        }
        if self.growth_tracker >= self.growth_interval {
            return bad(
                "growth_tracker",
                format!(
                    "below growth_interval {}, found {}",
                    self.growth_interval, self.growth_tracker
                ),
            );
        }
        Ok(())
    }
}

/// An optimizer's identity while it is borrowed: its address.
fn address(optimizer: &dyn Optimizer) -> usize {
    optimizer as *const dyn Optimizer as *const () as usize
}

/// Every gradient of `params` times `inv`, one backend call each (Backend
/// `fused_unscale`: one pass over the gradient, all setting one flag), and
/// whether any value was infinite or NaN; `None` where the backend
/// declines, or the gradients are not all `F32` on one device. Each new
/// gradient replaces the old as soon as it is made, so at most one more
/// gradient is live at a time.
fn unscale_fused(params: &[Tensor], inv: f32) -> Result<Option<bool>> {
    let pairs: Vec<(&Tensor, Tensor)> = params
        .iter()
        .filter_map(|p| p.grad().map(|g| (p, g)))
        .collect();
    let Some((_, first)) = pairs.first() else {
        return Ok(Some(false));
    };
    let dev = first.device();
    if pairs
        .iter()
        .any(|(_, g)| g.dtype() != DType::F32 || g.device() != dev)
    {
        return Ok(None);
    }
    drop(pairs);
    let found = Tensor::zeros(&[1], &dev)?;
    let flag = found.storage();
    let mut first = true;
    for p in params {
        let Some(g) = p.grad() else { continue };
        let view = (&g.storage(), g.layout());
        let Some(scaled) = dev.backend().fused_unscale(view, inv, &flag)? else {
            if first {
                return Ok(None);
            }
            // Some gradients are unscaled already: composing now would
            // unscale them twice.
            return Err(Error::Device(
                "fused_unscale declined a gradient after taking others".into(),
            ));
        };
        first = false;
        let layout = Layout::contiguous(g.dims());
        p.set_grad(Some(Tensor::from_storage(scaled, layout, &dev)))?;
    }
    Ok(Some(found.item()? != 0.0))
}

/// [`unscale_fused`] from elementwise ops: per gradient a count of its
/// infinite and NaN values, added up, and the product.
fn unscale_composed(params: &[Tensor], inv: f32) -> Result<bool> {
    let mut bad: Option<Tensor> = None;
    for p in params {
        let Some(g) = p.grad() else { continue };
        let count = g.abs()?.gt_scalar(f32::MAX)?.add(&g.is_nan()?)?.sum_all()?;
        bad = Some(match bad {
            Some(b) => b.add(&count)?,
            None => count,
        });
        p.set_grad(Some(g.mul_scalar(inv)?))?;
    }
    Ok(match bad {
        Some(b) => b.item()? != 0.0,
        None => false,
    })
}
