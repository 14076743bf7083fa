//! Families `reduce` (reductions over axes and over everything, argmax and
//! argmin, variance, logsumexp, sum_to_shape), `softmax` (softmax,
//! log_softmax, the fused `Tensor::cross_entropy`) and `matmul`.

use lam::prelude::*;

use super::check::Tol;
use super::fixture::Args;
use super::runner::{Inputs, Outcome};

pub fn reduce_tol(op: &str, grad: bool) -> Tol {
    let base = match op {
        "logsumexp" | "var" | "std" => Tol::new(1e-6, 2e-5, 4e-6),
        _ => Tol::new(1e-7, 2e-6, 2e-6),
    };
    if grad {
        base.times(4.0)
    } else {
        base
    }
}

pub fn reduce(op: &str, a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    let t = x.at(0);
    let keep = || a.bool("keepdim");
    let y = match op {
        "sum" => t.sum(&a.isizes("dims"), keep()),
        "mean" => t.mean(&a.isizes("dims"), keep()),
        "max" => t.max(&a.isizes("dims"), keep()),
        "min" => t.min(&a.isizes("dims"), keep()),
        "var" => t.var(&a.isizes("dims"), keep(), a.bool("unbiased")),
        "std" => t.std(&a.isizes("dims"), keep(), a.f32("correction") as f64),
        "logsumexp" => t.logsumexp(&a.isizes("dims"), keep()),
        "argmax" => t.argmax(a.isize("dim"), keep()),
        "argmin" => t.argmin(a.isize("dim"), keep()),
        "sum_all" => t.sum_all(),
        "mean_all" => t.mean_all(),
        "max_all" => t.max_all(),
        "min_all" => t.min_all(),
        "sum_to_shape" => t.sum_to_shape(&a.usizes("shape")),
        other => panic!("unknown reduce op {other}"),
    }?;
    Ok(y.into())
}

pub fn softmax_tol(_op: &str, grad: bool) -> Tol {
    let base = Tol::new(1e-7, 1e-5, 1e-6);
    if grad {
        base.times(4.0)
    } else {
        base
    }
}

pub fn softmax(op: &str, a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    let t = x.at(0);
    let y = match op {
        "softmax" => t.softmax(a.isize("dim")),
        "log_softmax" => t.log_softmax(a.isize("dim")),
        "cross_entropy_method" => t.cross_entropy(x.at(1)),
        other => panic!("unknown softmax op {other}"),
    }?;
    Ok(y.into())
}

pub fn matmul_tol(_op: &str, grad: bool) -> Tol {
    let base = Tol::new(1e-6, 1e-5, 1e-5);
    if grad {
        base.times(2.0)
    } else {
        base
    }
}

pub fn matmul(_op: &str, _a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    Ok(x.at(0).matmul(x.at(1))?.into())
}
