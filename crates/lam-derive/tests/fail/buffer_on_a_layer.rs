// `param` and `buffer` are for tensors: a layer is a child, not a buffer.
extern crate lam_core as lam;

use lam::nn::{Linear, Module};
use lam::{Result, Tensor};

#[derive(Module)]
struct Net {
    #[module(buffer)]
    fc: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc.forward(x)
    }
}

fn main() {}
