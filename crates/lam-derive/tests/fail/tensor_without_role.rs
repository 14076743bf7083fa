// A tensor's role is never guessed: trained, saved, or neither.
extern crate lam_core as lam;

use lam::nn::{Linear, Module};
use lam::{Result, Tensor};

#[derive(Module)]
struct Net {
    fc: Linear,
    scale: Tensor,
    cache: Option<Tensor>,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc.forward(x)
    }
}

fn main() {}
