//! Preprocessing: fitted imputation and feature scaling, denoising filters
//! and seeded image augmentation.
//!
//! - `impute`: [`Imputer`] fills missing values (NaN, as
//!   [`crate::data::csv::Missing::Nan`] reads them) with each feature's
//!   mean, median or a constant ([`Impute`]), fitted like the scalers.
//! - `scale`: [`MinMaxScaler`] (onto `[0, 1]` or `[-1, 1]`) and
//!   [`Standardizer`], both [`Scaler`]s: `fit` on the training split,
//!   `transform` every split, `save` beside the model and [`load_scaler`].
//! - `denoise`: [`gaussian_blur`] and [`median_filter`] for image batches,
//!   [`moving_average`] for series (SciPy's definitions, checked against it).
//! - `augment`: [`Augment`], a per-batch [`crate::data::BatchTransform`]
//!   (flips, rotation, scale/translate with bilinear sampling, random crop
//!   with padding, Gaussian noise), and the [`warp_affine`] it is built on.

mod augment;
mod denoise;
mod impute;
mod scale;
mod scale_file;

pub use augment::{warp_affine, Augment};
pub use denoise::{gaussian_blur, median_filter, moving_average, moving_average_tensor};
pub use impute::{Impute, Imputer};
pub use scale::{MinMaxScaler, Scaler, Standardizer};
pub use scale_file::load_scaler;
