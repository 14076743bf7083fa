//! View fuzzing: every Backend method and every public `Tensor` op runs on
//! random views of its inputs — offsets, gaps, transposes, broadcasts,
//! split pieces, size-1 and odd dims — and must give what it gives on fresh
//! contiguous copies of the same values, on the same device (forward values
//! and gradients). A backend or `lam-core` path that ignores any part of a
//! layout fails here, whatever the other backends do.
//!
//! Cases live in one file per op family under `tests/view_fuzz/`, named
//! as the family's files in lam-core, lam-cpu, lam-wgpu and shaders/; the
//! harness is `tests/view_fuzz/harness.rs`. Each family runs on every
//! conformance device (cpu, vulkan, gl and their unfused twins) for a few
//! seeded rounds. Two tests keep the coverage honest: every Backend method
//! of the trait's method list must be called by the cases, and every public
//! op of `Tensor` must be named by a family's `COVERS` list (or be on the
//! short list of non-ops below, with the reason).

mod common;

/// The harness and one module of cases per op family, in `tests/view_fuzz/`.
#[path = "view_fuzz"]
mod cases {
    pub mod adam;
    pub mod attention;
    pub mod attention_weights;
    pub mod batch_norm;
    pub mod copy;
    pub mod cross_entropy;
    pub mod elementwise;
    pub mod harness;
    pub mod index;
    pub mod layer_norm;
    pub mod lstm;
    pub mod matmul;
    pub mod max_pool;
    pub mod quant;
    pub mod random;
    pub mod reduce;
    pub mod sgd;
    pub mod softmax;
    pub mod unscale;
    pub mod window;
}

use cases::harness::{self, Case, Rng};
use lam::prelude::*;

/// Every family: its name, its cases and the public ops it names.
type Family = (
    &'static str,
    fn(&mut Rng) -> Vec<Case>,
    &'static [&'static str],
);

const FAMILIES: &[Family] = &[
    ("adam", cases::adam::cases, cases::adam::COVERS),
    (
        "attention",
        cases::attention::cases,
        cases::attention::COVERS,
    ),
    (
        "attention_weights",
        cases::attention_weights::cases,
        cases::attention_weights::COVERS,
    ),
    (
        "batch_norm",
        cases::batch_norm::cases,
        cases::batch_norm::COVERS,
    ),
    ("copy", cases::copy::cases, cases::copy::COVERS),
    (
        "cross_entropy",
        cases::cross_entropy::cases,
        cases::cross_entropy::COVERS,
    ),
    (
        "elementwise",
        cases::elementwise::cases,
        cases::elementwise::COVERS,
    ),
    ("index", cases::index::cases, cases::index::COVERS),
    (
        "layer_norm",
        cases::layer_norm::cases,
        cases::layer_norm::COVERS,
    ),
    ("lstm", cases::lstm::cases, cases::lstm::COVERS),
    ("matmul", cases::matmul::cases, cases::matmul::COVERS),
    ("max_pool", cases::max_pool::cases, cases::max_pool::COVERS),
    ("quant", cases::quant::cases, cases::quant::COVERS),
    ("random", cases::random::cases, cases::random::COVERS),
    ("reduce", cases::reduce::cases, cases::reduce::COVERS),
    ("sgd", cases::sgd::cases, cases::sgd::COVERS),
    ("softmax", cases::softmax::cases, cases::softmax::COVERS),
    ("unscale", cases::unscale::cases, cases::unscale::COVERS),
    ("window", cases::window::cases, cases::window::COVERS),
];

/// Seeded rounds per family and device: each round draws new shapes, new
/// view recipes and new values (`LAM_FUZZ_ROUNDS` and `LAM_FUZZ_SEED` run
/// more, or others: see `common::fuzz_rounds`).
const ROUNDS: u64 = 6;

/// Runs family `name` for [`ROUNDS`] rounds (by default) on `dev` (for
/// `attention_weights`, on its twin declining the fused attention, so that
/// lam-core composes attention around `fused_attention_weights`); returns
/// the case count.
fn run_family(name: &str, dev: &Device) -> lam::Result<usize> {
    let composed;
    let dev = if name == "attention_weights" {
        composed = lam::testing::Declining::device(dev, common::FUSED_ATTENTION);
        &composed
    } else {
        dev
    };
    let (_, cases, _) = FAMILIES
        .iter()
        .find(|(n, ..)| *n == name)
        .expect("a family of FAMILIES");
    let (rounds, base) = (common::fuzz_rounds(ROUNDS), common::fuzz_seed_base());
    let mut count = 0;
    for round in 0..rounds {
        let seed = base + 0x5eed_0000 + round * 7919 + name.len() as u64;
        let mut rng = Rng::new(seed);
        for case in cases(&mut rng) {
            harness::check(&mut rng, dev, &case).map_err(|e| {
                lam::Error::invalid("view_fuzz", format!("{} (seed {seed}): {e}", case.name))
            })?;
            count += 1;
        }
    }
    assert!(
        count >= rounds as usize,
        "family {name} ran only {count} cases"
    );
    eprintln!("view fuzz {name} on {dev}: {count} cases");
    Ok(count)
}

macro_rules! family_tests {
    ($($name:ident),* $(,)?) => {
        $(conformance!($name, |dev| {
            run_family(stringify!($name), dev)?;
            Ok(())
        });)*
    };
}

family_tests!(
    adam,
    attention,
    attention_weights,
    batch_norm,
    copy,
    cross_entropy,
    elementwise,
    index,
    layer_norm,
    lstm,
    matmul,
    max_pool,
    random,
    reduce,
    sgd,
    softmax,
    unscale,
    window,
);

/// Gradient methods offered only after the backend ran their forward
/// method, because they read that method's outputs (the unfused twin
/// declines the forward, so never reaches them).
const AFTER_A_FUSED_FORWARD: &[&str] = &["fused_lstm_sequence_grad"];

#[test]
fn every_backend_method_meets_a_view() {
    // On the CPU and on its unfused twin: the first takes every fused path,
    // the second every composite one; both record through a Recorder.
    for base in [Device::cpu(), common::unfused(&Device::cpu())] {
        let (dev, recorder) = lam::testing::Recorder::device(&base);
        for (name, ..) in FAMILIES {
            run_family(name, &dev).expect("the family runs");
        }
        dev.synchronize().expect("synchronize");
        let mut missing = recorder.missing();
        if common::is_unfused(&base) {
            missing.retain(|m| !AFTER_A_FUSED_FORWARD.contains(m));
        }
        assert!(
            missing.is_empty(),
            "Backend methods no view-fuzz case calls: {missing:?} (calls: {:?})",
            recorder.calls()
        );
    }
}

/// Public `Tensor` functions that are not ops on tensor values, so have no
/// view to vary: constructors from host data or a seed, accessors of shape,
/// identity and autograd state, and the crate-facing storage hooks.
const NOT_OPS: &[&str] = &[
    // Constructors: no tensor input.
    "from_vec",
    "from_slice",
    "from_vec_i32",
    "scalar",
    "zeros",
    "ones",
    "full",
    "arange",
    "eye",
    "rand",
    "randn",
    "uniform",
    "normal",
    "randint",
    "bernoulli",
    "rand_with",
    "randn_with",
    "uniform_with",
    "normal_with",
    "randint_with",
    "bernoulli_with",
    "from_storage",
    // Accessors.
    "id",
    "dims",
    "shape",
    "dim",
    "rank",
    "numel",
    "dtype",
    "device",
    "layout",
    "storage",
    "requires_grad",
    "is_leaf",
    "grad",
    // Autograd state.
    "requires_grad_",
    "detach",
    "zero_grad",
    "backward",
    "move_to_",
];

#[test]
fn every_public_tensor_op_is_fuzzed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../lam-core/src/tensor");
    let mut public = Vec::new();
    for entry in std::fs::read_dir(dir).expect("lam-core's tensor sources") {
        let path = entry.expect("a directory entry").path();
        let source = std::fs::read_to_string(&path).expect("a source file");
        for line in source.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("pub fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                public.push((
                    name,
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string(),
                ));
            }
        }
    }
    assert!(
        public.len() > 100,
        "found only {} public functions in {dir}",
        public.len()
    );
    let covered: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|(_, _, c)| c.iter().copied())
        .collect();
    let missing: Vec<String> = public
        .iter()
        .filter(|(name, _)| !covered.contains(&name.as_str()) && !NOT_OPS.contains(&name.as_str()))
        .map(|(name, file)| format!("{name} ({file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "public Tensor ops no view-fuzz family covers: {missing:?}"
    );
}
