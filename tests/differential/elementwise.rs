//! Families `unary` and `binary`: every elementwise `Tensor` op, the
//! activations' functional forms, scalar forms, comparisons and `where`.

use lam::prelude::*;

use super::check::Tol;
use super::fixture::Args;
use super::runner::{Inputs, Outcome};

/// Functions whose float32 results may differ from PyTorch's by a few ulps.
const TRANSCENDENTAL: [&str; 13] = [
    "exp",
    "log",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "gelu",
    "gelu_tanh",
    "silu",
    "softplus",
    "elu",
    "pow_scalar",
    "pow",
];

pub fn tol(op: &str, grad: bool) -> Tol {
    let base = if TRANSCENDENTAL.contains(&op) {
        Tol::new(1e-6, 2e-5, 0.0)
    } else {
        Tol::new(1e-7, 4e-7, 0.0)
    };
    if grad {
        base.times(4.0)
    } else {
        base
    }
}

pub fn unary(op: &str, a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    let t = x.at(0);
    let y = match op {
        "neg" => t.neg(),
        "abs" => t.abs(),
        "exp" => t.exp(),
        "log" => t.log(),
        "sqrt" => t.sqrt(),
        "square" => t.square(),
        "recip" => t.recip(),
        "sin" => t.sin(),
        "cos" => t.cos(),
        "tanh" => t.tanh(),
        "sigmoid" => t.sigmoid(),
        "relu" => t.relu(),
        "relu6" => t.relu6(),
        "leaky_relu" => t.leaky_relu(a.f32("alpha")),
        "elu" => t.elu(a.f32("alpha")),
        "gelu" => t.gelu(),
        "gelu_tanh" => lam::nn::functional::gelu_tanh(t),
        "silu" => t.silu(),
        "softplus" => t.softplus(),
        "clamp" => t.clamp(a.f32("lo"), a.f32("hi")),
        "sign" => t.sign(),
        "step" => t.step(),
        "add_scalar" => t.add_scalar(a.f32("c")),
        "sub_scalar" => t.sub_scalar(a.f32("c")),
        "mul_scalar" => t.mul_scalar(a.f32("c")),
        "div_scalar" => t.div_scalar(a.f32("c")),
        "pow_scalar" => t.pow_scalar(a.f32("p")),
        "gt_scalar" => t.gt_scalar(a.f32("c")),
        "lt_scalar" => t.lt_scalar(a.f32("c")),
        other => panic!("unknown unary op {other}"),
    }?;
    Ok(y.into())
}

pub fn binary(op: &str, _a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    let (a, b) = (x.at(0), x.at(1));
    let y = match op {
        "add" => a.add(b),
        "sub" => a.sub(b),
        "mul" => a.mul(b),
        "div" => a.div(b),
        "pow" => a.pow(b),
        "maximum" => a.maximum(b),
        "minimum" => a.minimum(b),
        "eq" => a.eq(b),
        "ne" => a.ne(b),
        "lt" => a.lt(b),
        "le" => a.le(b),
        "gt" => a.gt(b),
        "ge" => a.ge(b),
        "where" => Tensor::where_cond(a, b, x.at(2)),
        "relu_grad" => a.relu_grad(b),
        other => panic!("unknown binary op {other}"),
    }?;
    Ok(y.into())
}
