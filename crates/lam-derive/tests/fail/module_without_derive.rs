// A hand-written Module without a Visit: the compiler points at the derive.
extern crate lam_core as lam;

use lam::nn::{Linear, Module};
use lam::{Result, Tensor};

struct Net {
    fc: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc.forward(x)
    }
}

fn main() {}
