// The derive says what a model owns; `impl Module` (its forward) is still
// needed, and `Display` says so.
extern crate lam_core as lam;

use lam::nn::{Linear, Module};

#[derive(Module)]
struct Net {
    fc: Linear,
}

fn main() {}
