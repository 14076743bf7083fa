//! Family `index`: index_select, gather, scatter_add and label casts, with
//! out-of-range indices (also ones built by `cat` and `stack`) as errors.

use lam::prelude::*;

use super::check::Tol;
use super::fixture::Args;
use super::runner::{Inputs, Outcome};

pub fn tol(op: &str, grad: bool) -> Tol {
    // Selection is exact; scatter_add and every gradient add repeats.
    if op == "scatter_add" || grad {
        Tol::new(1e-7, 1e-6, 1e-6)
    } else {
        Tol::new(0.0, 0.0, 0.0)
    }
}

pub fn index(op: &str, a: &Args, x: &Inputs, _dev: &Device) -> lam::Result<Outcome> {
    let t = x.at(0);
    let y = match op {
        "index_select" => t.index_select(a.isize("dim"), x.at(1)),
        "gather" => t.gather(a.isize("dim"), x.at(1)),
        "scatter_add" => t.scatter_add(a.isize("dim"), x.at(1), x.at(2)),
        "to_labels" => t.to_labels(),
        other => panic!("unknown index op {other}"),
    }?;
    Ok(y.into())
}
