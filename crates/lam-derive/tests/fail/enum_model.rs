// An enum's variants own different tensors: a model is a struct.
extern crate lam_core as lam;

use lam::nn::{Linear, Module, LSTM};

#[derive(Module)]
enum Body {
    Lstm(LSTM),
    Linear(Linear),
}

fn main() {}
