//! Random arguments never panic: every public `Tensor` op, layer and loss is called with
//! random shapes (rank 0 to 4, sizes 0 to 3), random dims (in and out of
//! range, negative), random index values (in and out of range) and random
//! sizes and counts, and must return a value or an error — a panic fails
//! the test and names the call. Values are not checked here (the view-fuzz
//! and differential suites do that); this suite looks for the arguments no
//! author thought of. It runs on the CPU and on each GPU adapter. A quarter
//! of the float tensors are `F16`, which every op either takes or refuses
//! with an error.
//!
//! Layout under `tests/api_fuzz/`: the calls of `tensor_ops`, `layers` and
//! `losses`; here the random arguments and the driver.

mod common;

#[path = "api_fuzz/layers.rs"]
mod layers;
#[path = "api_fuzz/losses.rs"]
mod losses;
#[path = "api_fuzz/tensor_ops.rs"]
mod tensor_ops;

use std::panic::{catch_unwind, AssertUnwindSafe};

use lam::nn::PaddingMode;
use lam::prelude::*;

/// SplitMix64, so a failure names a reproducible seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shape(&mut self) -> Vec<usize> {
        let rank = self.below(5);
        (0..rank).map(|_| self.below(4)).collect()
    }

    /// A dim for a tensor of `rank`: usually valid, sometimes not.
    fn dim(&mut self) -> isize {
        self.below(11) as isize - 5
    }

    fn dims(&mut self) -> Vec<isize> {
        (0..self.below(3)).map(|_| self.dim()).collect()
    }

    fn float(&mut self) -> f32 {
        [
            0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            f32::NAN,
            f32::INFINITY,
            -3.5,
            1e30,
        ][self.below(9)]
    }

    fn tensor(&mut self, dev: &Device) -> lam::Result<Tensor> {
        let shape = self.shape();
        let n: usize = shape.iter().product();
        let v = (0..n).map(|_| self.float()).collect();
        let t = Tensor::from_vec(v, &shape, dev)?;
        if self.below(4) == 0 {
            return t.to_dtype(DType::F16);
        }
        Ok(t)
    }

    fn index(&mut self, dev: &Device) -> lam::Result<Tensor> {
        let shape = self.shape();
        let n: usize = shape.iter().product();
        let v = (0..n).map(|_| self.below(6) as i32 - 1).collect();
        Tensor::from_vec_i32(v, &shape, dev)
    }
}

type Call = fn(&mut Rng, &Device) -> lam::Result<()>;

/// Every padding mode, drawn by index.
const MODES: [PaddingMode; 4] = [
    PaddingMode::Zeros,
    PaddingMode::Reflect,
    PaddingMode::Replicate,
    PaddingMode::Circular,
];

/// Every call: a name and a use of the op with random arguments. The
/// result is dropped (read back where an error could surface late). A
/// call's seed follows from its place in this order.
const CALLS: [&[(&str, Call)]; 3] = [tensor_ops::CALLS, layers::CALLS, losses::CALLS];

/// `rounds` rounds of every call on `dev` (by default: `LAM_FUZZ_ROUNDS`
/// and `LAM_FUZZ_SEED` run more, or others, see `common::fuzz_rounds`).
fn fuzz(dev: &Device, rounds: u64) -> lam::Result<()> {
    let (rounds, base) = (common::fuzz_rounds(rounds), common::fuzz_seed_base());
    let mut failures = Vec::new();
    for round in 0..rounds {
        for (k, (name, call)) in CALLS.iter().flat_map(|calls| calls.iter()).enumerate() {
            let seed = base + round * 1000 + k as u64;
            let mut rng = Rng(seed);
            let outcome = catch_unwind(AssertUnwindSafe(|| call(&mut rng, dev)));
            if outcome.is_err() {
                failures.push(format!("{name} (seed {seed})"));
            }
        }
    }
    // A device-side fault from an out-of-range index on a GPU surfaces at
    // the next readback; clear it so other tests on the device are unaffected.
    let _ = dev.synchronize();
    assert!(failures.is_empty(), "panicked on {dev}: {failures:?}");
    Ok(())
}

#[test]
fn random_arguments_never_panic_on_the_cpu() -> lam::Result<()> {
    fuzz(&Device::cpu(), 300)
}

#[test]
fn random_arguments_never_panic_on_gpus() -> lam::Result<()> {
    // Private devices: out-of-range indices fault on the device, which must
    // not reach tests running beside this one on the shared devices.
    for api in ["vulkan", "gl"] {
        if let Some(shared) = common::gpu(api) {
            fuzz(&common::private_device(&shared), 40)?;
        }
    }
    Ok(())
}
