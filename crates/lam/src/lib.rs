//! # lam
//!
//! Train and run neural networks in Rust on whatever GPU a machine has —
//! Vulkan, Metal, DX12 or GL through wgpu — or on the CPU, with one API.
//!
//! This facade re-exports `lam-core` (tensors, autodiff, layers, losses,
//! optimizers) and adds device selection through [`DeviceExt`]:
//! `Device::cpu()`, `Device::gpu()`, `Device::auto()`, `Device::list()`.
//! [`profile`] times ops and GPU kernels (`LAM_PROFILE=1`).
//!
//! To ship a model: [`onnx::export`] writes it for ONNX Runtime and other
//! runtimes, `nn::prune` and `nn::quant` shrink it (pruning as
//! `torch.nn.utils.prune`, int8 as `quantize_dynamic`, weight sharing), and
//! [`infer::Predictor`] loads a checkpoint and predicts in batches.
//!
//! A model is a struct with `#[derive(Module)]` (which says what it owns,
//! under PyTorch's `state_dict` names) and an `impl Module` with its
//! `forward`; `println!("{model}")` prints it as PyTorch does and
//! `model.summary(&shape)` tabulates it. Tensors take PyTorch's operators,
//! each returning a `Result`: `(&a + &b)?`, `(&x * 2.0)?`, `(-&x)?`.
//!
//! ```
//! use lam::prelude::*;
//!
//! # fn main() -> lam::Result<()> {
//! let dev = Device::cpu();
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], &dev)?.requires_grad_()?;
//! let y = x.matmul(&x)?.sum_all()?;
//! y.backward()?;
//! assert_eq!(y.item()?, 54.0);
//! # Ok(()) }
//! ```

mod devices;
pub mod infer;
pub mod onnx;

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

pub use devices::{AdapterInfo, DeviceExt};
pub use lam_core::*;

/// The names most programs need: `use lam::prelude::*;`.
pub mod prelude {
    pub use crate::devices::DeviceExt;
    pub use lam_core::nn::Module;
    pub use lam_core::optim::Optimizer;
    pub use lam_core::{manual_seed, no_grad, DType, Device, Error, Result, Tensor};
}
