//! Families `view` (every view and join of `Tensor`, applied to views) and
//! `creation` (constructors, and sizes whose product overflows).

use lam::prelude::*;

use super::check::Tol;
use super::fixture::{float, list, Args};
use super::runner::{Inputs, Outcome};

/// Views move values without arithmetic: they must be exact. Their
/// gradients sum where a view repeats elements (expand, broadcast).
pub fn view_tol(_op: &str, grad: bool) -> Tol {
    if grad {
        Tol::new(1e-7, 2e-6, 2e-6)
    } else {
        Tol::new(0.0, 0.0, 0.0)
    }
}

pub fn view(op: &str, a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    let t = x.at(0);
    let one = |r: lam::Result<Tensor>| r.map(Outcome::from);
    match op {
        "reshape" => one(t.reshape(&a.isizes("shape"))),
        "reshape_exact" => one(t.reshape_exact(&a.usizes("shape"))),
        "permute" => one(t.permute(&a.usizes("dims"))),
        "transpose" => one(t.transpose(a.isize("a"), a.isize("b"))),
        "t" => one(t.t()),
        "unsqueeze" => one(t.unsqueeze(a.isize("dim"))),
        "squeeze" => one(t.squeeze(a.isize("dim"))),
        "squeeze_all" => one(t.squeeze_all()),
        "flatten" => one(t.flatten(a.isize("start"), a.isize("end"))),
        "broadcast_to" => one(t.broadcast_to(&a.usizes("shape"))),
        "expand" => one(t.expand(&a.isizes("shape"))),
        "narrow" => one(t.narrow(a.isize("dim"), a.usize("start"), a.usize("len"))),
        "slice" => one(t.slice(a.isize("dim"), a.usize("start"), a.usize("end"))),
        "slice_step" => one(t.slice_step(
            a.isize("dim"),
            a.usize("start"),
            a.usize("end"),
            a.usize("step"),
        )),
        "get" => one(t.get(a.usize("index"))),
        "contiguous" => one(t.contiguous()),
        "cat" => one(Tensor::cat(&x.tensors, a.isize("dim"))),
        "stack" => one(Tensor::stack(&x.tensors, a.isize("dim"))),
        "chunk" => Ok(t.chunk(a.usize("chunks"), a.isize("dim"))?.into()),
        "split" => Ok(t.split(a.usize("size"), a.isize("dim"))?.into()),
        other => panic!("unknown view op {other}"),
    }
}

pub fn creation_tol(_op: &str, _grad: bool) -> Tol {
    Tol::new(0.0, 1e-6, 0.0)
}

pub fn creation(op: &str, a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let y = match op {
        "zeros" => Tensor::zeros(&a.usizes("shape"), dev),
        "ones" => Tensor::ones(&a.usizes("shape"), dev),
        "full" => Tensor::full(&a.usizes("shape"), a.f32("value"), dev),
        "eye" => Tensor::eye(a.usize("n"), dev),
        "arange" => Tensor::arange(a.f32("start"), a.f32("end"), a.f32("step"), dev),
        "scalar" => Tensor::scalar(a.f32("value"), dev),
        "zeros_like" => Tensor::zeros_like(x.at(0)),
        "ones_like" => Tensor::ones_like(x.at(0)),
        "from_vec" => Tensor::from_vec(list(&a.0["data"], float), &a.usizes("shape"), dev),
        other => panic!("unknown creation op {other}"),
    }?;
    Ok(y.into())
}
