// Misspelt options, two roles, a renamed skipped field, and a container
// option on a field.
extern crate lam_core as lam;

use lam::nn::{Linear, Module};
use lam::{Result, Tensor};

#[derive(Module)]
#[module(no_display, crate = "lam", layers)]
struct Net {
    #[module(parm)]
    a: Tensor,
    #[module(param, skip)]
    b: Tensor,
    #[module(skip, name = "c2")]
    c: Tensor,
    #[module(no_display)]
    d: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

fn main() {}
