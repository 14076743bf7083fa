//! `lam-core`: the tensor a user writes code against, and everything that can
//! be written once for every backend.
//!
//! - [`Tensor`]: an n-d array on a [`Device`], with views, broadcasting and
//!   the op set; every fallible op returns [`Result`].
//! - [`backend`]: the [`Backend`] trait, a small closed set of primitives that
//!   `lam-cpu` and `lam-wgpu` implement.
//! - [`autograd`]: the tape. Each differentiable op records its gradient
//!   rule, written in tensor ops right beside its forward code.
//! - [`rng`]: counter-based random numbers, identical on every backend, and
//!   [`Generator`]s (seedable, savable, one per thread or job as needed).
//! - [`profile`]: time per op and per GPU kernel (`LAM_PROFILE=1`).
//!
//! This crate knows nothing of wgpu or WGSL and depends on no backend crate.

// `#[derive(Module)]` names lam's items as `::lam::nn::...` (the path users
// have); this lets lam-core's own layers use the derive under that name.
extern crate self as lam;

pub mod amp;
pub mod autograd;
pub mod backend;
pub mod capture;
pub mod checkpoint;
mod device;
mod dtype;
mod error;
pub mod layout;
pub mod loss;
pub mod nn;
pub mod optim;
pub mod profile;
pub mod rng;
mod tensor;
pub mod testing;

pub use autograd::{is_grad_enabled, no_grad, NoGradGuard};
pub use backend::{Backend, BackendStorage, DeviceKind, DeviceStats, Storage};
pub use device::Device;
pub use dtype::DType;
pub use error::{Error, Result};
/// IEEE half precision, the host type of `F16` tensors (the `half` crate's).
pub use half::f16;
pub use layout::Layout;
pub use rng::{manual_seed, Generator};
pub use tensor::{Correction, Dims, SdpaMask, SdpaOptions, Tensor};
