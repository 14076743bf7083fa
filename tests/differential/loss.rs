//! Family `loss`: every loss of `lam::loss` with its options.

use lam::loss::*;
use lam::prelude::*;

use super::check::Tol;
use super::fixture::Args;
use super::runner::{Inputs, Outcome};

pub fn tol(_op: &str, grad: bool) -> Tol {
    let base = Tol::new(1e-6, 2e-5, 1e-5);
    if grad {
        base.times(4.0)
    } else {
        base
    }
}

fn reduction(a: &Args) -> Reduction {
    match a.str("reduction") {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        other => panic!("unknown reduction {other}"),
    }
}

pub fn loss(op: &str, a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    let d = x.data();
    let (input, target) = (&d[0], &d[1]);
    let r = reduction(a);
    let weight = || a.bool("weight").then(|| d[2].clone());
    let y = match op {
        "cross_entropy" => {
            let mut l = CrossEntropyLoss::new()
                .reduction(r)
                .label_smoothing(a.f32("label_smoothing"))
                .ignore_index(a.i32("ignore_index"));
            if let Some(w) = weight() {
                l = l.weight(w);
            }
            l.forward(input, target)
        }
        "nll_loss" | "nll_log_softmax" => {
            let mut l = NllLoss::new()
                .reduction(r)
                .ignore_index(a.i32("ignore_index"));
            if let Some(w) = weight() {
                l = l.weight(w);
            }
            if op == "nll_log_softmax" {
                let class_dim = if input.rank() > 1 { 1 } else { 0 };
                l.forward(&input.log_softmax(class_dim)?, target)
            } else {
                l.forward(input, target)
            }
        }
        "mse_loss" => MseLoss::new().reduction(r).forward(input, target),
        "l1_loss" => L1Loss::new().reduction(r).forward(input, target),
        "smooth_l1_loss" => SmoothL1Loss::new()
            .beta(a.f32("beta"))
            .reduction(r)
            .forward(input, target),
        "huber_loss" => HuberLoss::new()
            .delta(a.f32("delta"))
            .reduction(r)
            .forward(input, target),
        "binary_cross_entropy" => {
            let mut l = BceLoss::new().reduction(r);
            if let Some(w) = weight() {
                l = l.weight(w);
            }
            l.forward(input, target)
        }
        "binary_cross_entropy_with_logits" => {
            let mut l = BceWithLogitsLoss::new().reduction(r);
            if a.has("weight") && a.bool("weight") {
                l = l.weight(d[2].clone());
            }
            if a.has("pos_weight") && a.bool("pos_weight") {
                l = l.pos_weight(d[d.len() - 1].clone());
            }
            l.forward(input, target)
        }
        other => panic!("unknown loss {other}"),
    }?;
    Ok(y.into())
}
