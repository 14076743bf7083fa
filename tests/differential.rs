//! The random differential suite against PyTorch, on every device of the
//! conformance list.
//!
//! `fixtures/make_random_cases.py` (seeded; PyTorch in float32, with the
//! float64 result to measure how well-conditioned each value is) wrote a few
//! thousand random cases covering every public op of `Tensor`, every layer,
//! loss and optimizer, on random views of their inputs with NaN, ±inf,
//! empty and size-1 dims and large magnitudes. Each family below replays its
//! cases: outputs, gradients of inputs and parameters, optimizer states,
//! and errors where PyTorch raises. Cases marked `differs` hold lam's
//! documented behaviour where it deliberately departs from PyTorch, and say
//! why.
//!
//! Each family test prints its case count and largest absolute and relative
//! errors (`cargo test --test differential -- --nocapture`), and fails
//! listing every failing case, or when the fixture holds fewer cases than
//! the family's minimum.
//!
//! Layout under `tests/differential/`: `fixture` (reading the data),
//! `check` (tolerances, the report), `runner` (inputs, views, backward,
//! batched readback), and one module per family group.

mod common;

#[path = "differential/check.rs"]
mod check;
#[path = "differential/elementwise.rs"]
mod elementwise;
#[path = "differential/fixture.rs"]
mod fixture;
#[path = "differential/index.rs"]
mod index;
#[path = "differential/layers.rs"]
mod layers;
#[path = "differential/loss.rs"]
mod loss;
#[path = "differential/optim.rs"]
mod optim;
#[path = "differential/reduce.rs"]
mod reduce;
#[path = "differential/runner.rs"]
mod runner;
#[path = "differential/sequence.rs"]
mod sequence;
#[path = "differential/views.rs"]
mod views;

use runner::run_family;

/// The families and the fewest cases each must hold.
const MINIMUMS: [(&str, usize); 12] = [
    ("unary", 400),
    ("binary", 300),
    ("reduce", 380),
    ("softmax", 160),
    ("matmul", 100),
    ("view", 380),
    ("creation", 90),
    ("index", 140),
    ("layers", 320),
    ("sequence", 80),
    ("loss", 250),
    ("optim", 160),
];

fn min_cases(family: &str) -> usize {
    MINIMUMS
        .iter()
        .find(|(f, _)| *f == family)
        .map(|(_, n)| *n)
        .unwrap_or(usize::MAX)
}

#[test]
fn the_suite_holds_at_least_2000_cases() {
    let total: usize = MINIMUMS.iter().map(|(f, _)| fixture::cases(f).len()).sum();
    println!("differential suite: {total} cases");
    assert!(total >= 2000, "only {total} cases");
    assert!(MINIMUMS.iter().map(|(_, n)| n).sum::<usize>() >= 2000);
}

conformance!(unary, |dev| {
    run_family(
        "unary",
        dev,
        min_cases("unary"),
        elementwise::tol,
        elementwise::unary,
    )
});

conformance!(binary, |dev| {
    run_family(
        "binary",
        dev,
        min_cases("binary"),
        elementwise::tol,
        elementwise::binary,
    )
});

conformance!(reductions, |dev| {
    run_family(
        "reduce",
        dev,
        min_cases("reduce"),
        reduce::reduce_tol,
        reduce::reduce,
    )
});

conformance!(softmax, |dev| {
    run_family(
        "softmax",
        dev,
        min_cases("softmax"),
        reduce::softmax_tol,
        reduce::softmax,
    )
});

conformance!(matmul, |dev| {
    run_family(
        "matmul",
        dev,
        min_cases("matmul"),
        reduce::matmul_tol,
        reduce::matmul,
    )
});

conformance!(view_ops, |dev| {
    run_family("view", dev, min_cases("view"), views::view_tol, views::view)
});

conformance!(creation, |dev| {
    run_family(
        "creation",
        dev,
        min_cases("creation"),
        views::creation_tol,
        views::creation,
    )
});

conformance!(indexing, |dev| {
    run_family("index", dev, min_cases("index"), index::tol, index::index)
});

conformance!(nn_layers, |dev| {
    run_family(
        "layers",
        dev,
        min_cases("layers"),
        layers::tol,
        layers::layers,
    )
});

conformance!(sequences, |dev| {
    run_family(
        "sequence",
        dev,
        min_cases("sequence"),
        sequence::tol,
        sequence::sequence,
    )
});

/// The sequence family (MultiheadAttention, TransformerEncoderLayer) on
/// each GPU adapter with the tiled attention kernels.
mod sequences_tiled_attention {
    use super::*;

    fn run(api: &str) {
        let Some(dev) = common::tiled_attention(api) else {
            return;
        };
        let family = run_family(
            "sequence",
            &dev,
            min_cases("sequence"),
            sequence::tol,
            sequence::sequence,
        );
        if let Err(e) = family {
            panic!("on {} (tiled attention): {e}", dev.name());
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

conformance!(losses, |dev| {
    run_family("loss", dev, min_cases("loss"), loss::tol, loss::loss)
});

conformance!(optimizers, |dev| { optim::run(dev, min_cases("optim")) });
