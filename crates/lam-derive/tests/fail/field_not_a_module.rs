// A field the derive would treat as a child must be a module (or a
// collection of them); a HashMap has no order, so it is not one either.
extern crate lam_core as lam;

use std::collections::HashMap;

use lam::nn::{Linear, Module};
use lam::{Result, Tensor};

struct Settings {
    lr: f32,
}

#[derive(Module)]
struct Net {
    fc: Linear,
    settings: Settings,
    heads: HashMap<String, Linear>,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc.forward(x)
    }
}

fn main() {}
