//! Seeded image augmentation for batches `[B, C, H, W]` or `[B, H, W]`,
//! applied on the host to each batch a [`crate::data::DataLoader`] builds.
//!
//! [`Augment`] is a pipeline configured by builder methods; for each sample
//! it draws its parameters from a generator seeded by `(batch seed, sample
//! position)`, so the same epoch and batch always get the same result. In
//! a `DataLoader` the batch seed comes from the loader (its seed, its
//! generator, or the current one); called directly, `apply_tensor(&x,
//! generator.next_seed())` draws it from a [`lam_core::Generator`]. All
//! channels of a sample share one geometric change. The steps, in order:
//!
//! 1. affine warp — rotation (uniform in `±degrees`), scale (uniform in
//!    `[lo, hi]`) and translation (uniform in `±fraction` of the size)
//!    about the image centre, resampled bilinearly ([`warp_affine`]);
//!    outside the image is 0;
//! 2. random crop with padding (zero-pad by `p`, crop back to `H × W` at a
//!    random offset: a shift by up to `p` whole pixels);
//! 3. horizontal and vertical flips, each with its probability;
//! 4. additive Gaussian noise with standard deviation `std`.

use lam_core::rng::Generator;
use lam_core::{Error, Result, Tensor};

use super::denoise::plane_dims;
use crate::data::{BatchTransform, HostBatch};
use crate::seed::derive_seed;

/// An augmentation pipeline (identity until configured).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Augment {
    hflip: f32,
    vflip: f32,
    degrees: f32,
    scale: Option<(f32, f32)>,
    translate: f32,
    crop_padding: usize,
    noise_std: f32,
}

impl Augment {
    /// The identity pipeline.
    pub fn new() -> Augment {
        Augment::default()
    }

    /// Mirror left-right with probability `p`.
    pub fn hflip(mut self, p: f32) -> Self {
        self.hflip = p;
        self
    }

    /// Mirror top-bottom with probability `p`.
    pub fn vflip(mut self, p: f32) -> Self {
        self.vflip = p;
        self
    }

    /// Rotate by an angle uniform in `±degrees`.
    pub fn rotate(mut self, degrees: f32) -> Self {
        self.degrees = degrees;
        self
    }

    /// Zoom by a factor uniform in `[lo, hi]`.
    pub fn scale(mut self, lo: f32, hi: f32) -> Self {
        self.scale = Some((lo, hi));
        self
    }

    /// Shift by up to `fraction` of the height and width (sub-pixel, bilinear).
    pub fn translate(mut self, fraction: f32) -> Self {
        self.translate = fraction;
        self
    }

    /// Pad by `padding` zeros and crop back at a random offset.
    pub fn random_crop(mut self, padding: usize) -> Self {
        self.crop_padding = padding;
        self
    }

    /// Add Gaussian noise of standard deviation `std`.
    pub fn noise(mut self, std: f32) -> Self {
        self.noise_std = std;
        self
    }

    /// Augments host images `x` of `shape` (`[B, C, H, W]` or `[B, H, W]`) in place.
    pub fn apply_images(&self, x: &mut [f32], shape: &[usize], seed: u64) -> Result<()> {
        self.check()?;
        let (h, w) = plane_dims("Augment", shape)?;
        let n: usize = shape.iter().product();
        if x.len() != n {
            return Err(Error::LengthMismatch {
                op: "Augment",
                len: x.len(),
                shape: shape.to_vec(),
                expected: n,
            });
        }
        let per_sample = n / shape[0].max(1);
        if per_sample == 0 {
            return Ok(());
        }
        for (s, sample) in x.chunks_mut(per_sample).enumerate() {
            let g = Generator::new(derive_seed(&[seed, s as u64]));
            self.apply_sample(sample, h, w, &g);
        }
        Ok(())
    }

    /// Augments a tensor batch, returning a new tensor on its device.
    pub fn apply_tensor(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let mut data = x.to_vec()?;
        self.apply_images(&mut data, x.dims(), seed)?;
        Tensor::from_vec(data, x.dims(), &x.device())
    }

    fn apply_sample(&self, sample: &mut [f32], h: usize, w: usize, g: &Generator) {
        let angle = (uniform(g, -1.0, 1.0) * self.degrees as f64).to_radians();
        let zoom = self
            .scale
            .map_or(1.0, |(lo, hi)| uniform(g, lo as f64, hi as f64));
        let ty = uniform(g, -1.0, 1.0) * self.translate as f64 * h as f64;
        let tx = uniform(g, -1.0, 1.0) * self.translate as f64 * w as f64;
        let p = self.crop_padding as f64;
        let (cy, cx) = (
            (uniform(g, 0.0, 2.0 * p + 1.0)).floor() - p,
            (uniform(g, 0.0, 2.0 * p + 1.0)).floor() - p,
        );
        let flip_h = g.uniform() < self.hflip as f64;
        let flip_v = g.uniform() < self.vflip as f64;
        let noise_seed = g.next_seed();
        let geometric = angle != 0.0 || zoom != 1.0 || ty != 0.0 || tx != 0.0;
        for (c, plane) in sample.chunks_mut(h * w).enumerate() {
            if geometric {
                let warped = warp(plane, h, w, angle as f32, zoom as f32, ty as f32, tx as f32);
                plane.copy_from_slice(&warped);
            }
            if cy != 0.0 || cx != 0.0 {
                shift(plane, h, w, cy as isize, cx as isize);
            }
            if flip_h {
                plane.chunks_mut(w).for_each(|row| row.reverse());
            }
            if flip_v {
                for i in 0..h / 2 {
                    for j in 0..w {
                        plane.swap(i * w + j, (h - 1 - i) * w + j);
                    }
                }
            }
            if self.noise_std > 0.0 {
                let base = (c * h * w) as u32;
                for (k, v) in plane.iter_mut().enumerate() {
                    *v += self.noise_std
                        * lam_core::rng::standard_normal(noise_seed, base + k as u32);
                }
            }
        }
    }

    fn check(&self) -> Result<()> {
        let probs_ok = (0.0..=1.0).contains(&self.hflip) && (0.0..=1.0).contains(&self.vflip);
        let scale_ok = self
            .scale
            .is_none_or(|(lo, hi)| lo > 0.0 && lo <= hi && hi.is_finite());
        let rest_ok = self.degrees.is_finite()
            && self.degrees >= 0.0
            && (0.0..1.0).contains(&self.translate)
            && self.noise_std.is_finite()
            && self.noise_std >= 0.0;
        if !(probs_ok && scale_ok && rest_ok) {
            return Err(Error::invalid(
                "Augment",
                format!("invalid settings {self:?}"),
            ));
        }
        Ok(())
    }
}

impl BatchTransform for Augment {
    /// Images only: a batch of `I32` features (token ids) is an error.
    fn apply(&self, batch: &mut HostBatch, seed: u64) -> Result<()> {
        let found = batch.x.dtype();
        let images = batch.x.as_f32_mut().map_err(|_| Error::DTypeMismatch {
            op: "Augment",
            expected: lam_core::DType::F32,
            found,
        })?;
        self.apply_images(images, &batch.shape, seed)
    }
}

/// One `h × w` plane rotated by `angle` radians (counter-clockwise as
/// displayed, rows downward), zoomed by `scale` and shifted by `(ty, tx)`
/// pixels about its centre, resampled bilinearly; outside is 0. An error
/// unless `plane` holds `h × w` values and `scale` is finite and positive.
pub fn warp_affine(
    plane: &[f32],
    h: usize,
    w: usize,
    angle: f32,
    scale: f32,
    ty: f32,
    tx: f32,
) -> Result<Vec<f32>> {
    if plane.len() != h * w || !(scale.is_finite() && scale > 0.0) {
        return Err(Error::invalid(
            "warp_affine",
            format!(
                "need {h}×{w} values and a scale > 0, found {} values and scale {scale}",
                plane.len()
            ),
        ));
    }
    Ok(warp(plane, h, w, angle, scale, ty, tx))
}

/// [`warp_affine`] on checked arguments.
fn warp(plane: &[f32], h: usize, w: usize, angle: f32, scale: f32, ty: f32, tx: f32) -> Vec<f32> {
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (sin, cos) = (angle as f64).sin_cos();
    let inv = 1.0 / scale as f64;
    let at = |i: isize, j: isize| -> f64 {
        if i < 0 || j < 0 || i >= h as isize || j >= w as isize {
            0.0
        } else {
            plane[i as usize * w + j as usize] as f64
        }
    };
    let mut out = vec![0.0; h * w];
    for i in 0..h {
        for j in 0..w {
            // Invert out = s·R·(src − c) + c + t.
            let (dy, dx) = (i as f64 - cy - ty as f64, j as f64 - cx - tx as f64);
            let sy = (cos * dy + sin * dx) * inv + cy;
            let sx = (-sin * dy + cos * dx) * inv + cx;
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as isize, x0 as isize);
            let v = at(y0, x0) * (1.0 - fy) * (1.0 - fx)
                + at(y0, x0 + 1) * (1.0 - fy) * fx
                + at(y0 + 1, x0) * fy * (1.0 - fx)
                + at(y0 + 1, x0 + 1) * fy * fx;
            out[i * w + j] = v as f32;
        }
    }
    out
}

/// Moves a plane's content by `(dy, dx)` whole pixels, filling with zeros.
fn shift(plane: &mut [f32], h: usize, w: usize, dy: isize, dx: isize) {
    let src = plane.to_vec();
    for i in 0..h as isize {
        for j in 0..w as isize {
            let (si, sj) = (i - dy, j - dx);
            let inside = si >= 0 && sj >= 0 && si < h as isize && sj < w as isize;
            plane[(i * w as isize + j) as usize] = if inside {
                src[(si * w as isize + sj) as usize]
            } else {
                0.0
            };
        }
    }
}

fn uniform(g: &Generator, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * g.uniform()
}
