//! Scaled dot-product attention (`Tensor::scaled_dot_product_attention`,
//! Backend `fused_attention` and `fused_attention_grad`) and
//! `MultiheadAttention`'s fused path, on every device — the fused kernels on
//! cpu, vulkan and gl, the composite on their unfused twins — and, for the
//! tests written with `attention_conformance!`, again composed around the
//! backend's `fused_attention_weights` and `fused_attention_weights_grad`
//! (on twins declining the fused attention,
//! [`common::composed_attention`]) and on vulkan and gl with the tiled
//! kernels (`AttentionKernel::Tiled`, [`common::tiled_attention`]).
//!
//! - Known values: `fixtures/attention/sdpa.json`, PyTorch's
//!   `F.scaled_dot_product_attention` in float64
//!   (`fixtures/make_attention_fixtures.py`): outputs and the gradients of
//!   `q`, `k`, `v` and additive masks.
//! - Gradient checks against central differences, with a mask and causal.
//! - `MultiheadAttention` without weights (the fused path) against the same
//!   layer with weights (the composite), masks of every kind included, and a
//!   batch whose keys are all padding (uniform attention on both paths).
//! - The fused kernels against the composite on odd sizes, strided views,
//!   head dims up to the kernels' 128, masks, NaN and fully masked rows.
//! - Bad input gives errors.
//!
//! Shapes are tiny because the GPU runs are on software rasterisers.
//!
//! Layout under `tests/attention/`: `sdpa` (known values, gradient checks,
//! masked rows, strided inputs, dropout, bad input), `fused` (the fused
//! kernels against the composite), `mha` (`MultiheadAttention`'s two paths)
//! and `dispatch` (which kernels a device runs, and a timing loop); here the
//! `attention_conformance!` macro they use.

mod common;

use lam::prelude::*;

/// `conformance!`, the same body on a twin of each device that composes
/// attention around the backend's softmax between the products
/// ([`common::composed_attention`]), and on each GPU adapter with the tiled
/// attention kernels: tests `NAME::fused::*`, `NAME::composed::{cpu,
/// vulkan, gl}` and `NAME::tiled::{vulkan, gl}`.
macro_rules! attention_conformance {
    ($name:ident, |$dev:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            conformance!(fused, |$dev| $body);

            mod composed {
                #[allow(unused_imports)]
                use super::*;

                fn body($dev: &lam::Device) -> lam::Result<()> $body

                fn run(device: Option<lam::Device>) {
                    let Some(device) = device else { return };
                    let device = $crate::common::composed_attention(&device);
                    if let Err(e) = body(&device) {
                        panic!("on {}: {e}", device.name());
                    }
                }

                #[test]
                fn cpu() {
                    use lam::DeviceExt;
                    run(Some(lam::Device::cpu()));
                }

                #[test]
                fn vulkan() {
                    run($crate::common::gpu("vulkan"));
                }

                #[test]
                fn gl() {
                    run($crate::common::gpu("gl"));
                }
            }

            mod tiled {
                #[allow(unused_imports)]
                use super::*;

                fn body($dev: &lam::Device) -> lam::Result<()> $body

                fn run(api: &str) {
                    if let Some(device) = $crate::common::tiled_attention(api) {
                        if let Err(e) = body(&device) {
                            panic!("on {} (tiled): {e}", device.name());
                        }
                    }
                }

                #[test]
                fn vulkan() {
                    run("vulkan");
                }

                #[test]
                fn gl() {
                    run("gl");
                }
            }
        }
    };
}

// Declared after `attention_conformance!`, which they use.
#[path = "attention/dispatch.rs"]
mod dispatch;
#[path = "attention/fused.rs"]
mod fused;
#[path = "attention/mha.rs"]
mod mha;
#[path = "attention/sdpa.rs"]
mod sdpa;

fn rnd(shape: &[usize], salt: u64, dev: &Device) -> Tensor {
    let n = shape.iter().product::<usize>() as u32;
    let data = (0..n)
        .map(|i| 2.0 * lam::rng::uniform01(salt, i) - 1.0)
        .collect();
    Tensor::from_vec(data, shape, dev).expect("a test tensor")
}
