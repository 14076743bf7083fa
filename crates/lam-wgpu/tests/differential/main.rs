//! Differential tests: every Backend method on every GPU adapter found,
//! against lam-cpu (the reference) on the same inputs. Inputs are seeded
//! random values on awkward shapes (1, 3, 17, 63, 129, non-tile multiples)
//! and awkward views (transposed, narrowed with odd offsets, broadcast with
//! stride 0), so strided indexing and edge handling are exercised, not just
//! the contiguous fast paths. Floats compare with abs + rel tolerance.
//!
//! One test binary (one device set-up) with a module per op family, named
//! as the family's module in `src/ops/`.

#[path = "../common/mod.rs"]
mod common;

mod adam;
mod batch_norm;
mod copy;
mod cross_entropy;
mod elementwise;
mod elementwise_f16;
mod index;
mod lstm;
mod matmul;
mod matmul_f16;
mod matmul_tuning;
mod max_pool;
mod random;
mod reduce;
mod softmax;
mod window;

use lam_core::{Backend, Device, Storage};

use common::{cpu, gpus, up};

/// Runs `check` on every GPU with the CPU reference.
pub(crate) fn on_every_gpu(test: &str, check: impl Fn(&Device, &dyn Backend)) {
    let cpu = cpu();
    for dev in gpus(test) {
        eprintln!("{test}: {}", dev.name());
        check(&dev, &*cpu);
    }
}

/// Uploads the same data to both backends.
pub(crate) fn pair(gpu: &dyn Backend, cpu: &dyn Backend, data: &[f32]) -> (Storage, Storage) {
    (up(gpu, data), up(cpu, data))
}
