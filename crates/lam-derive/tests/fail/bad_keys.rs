// Keys follow PyTorch's rules: unique, non-empty, no dots.
extern crate lam_core as lam;

use lam::nn::{Linear, Module};
use lam::{Result, Tensor};

#[derive(Module)]
struct Net {
    fc: Linear,
    #[module(name = "fc")]
    other: Linear,
    #[module(name = "head.out")]
    head: Linear,
    #[module(param, name = "")]
    w: Tensor,
    #[module(name = "n")]
    size: usize,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc.forward(x)
    }
}

fn main() {}
