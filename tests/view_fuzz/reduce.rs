//! Reductions on random views over random axes, with and without keepdim
//! (Backend `reduce`): sums, means, variances, extrema and their indices.

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[
    "sum",
    "sum_all",
    "mean",
    "mean_all",
    "max",
    "min",
    "max_all",
    "min_all",
    "argmax",
    "argmin",
    "var",
    "var_mean",
    "std",
    "sum_to_shape",
    "logsumexp",
];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut out = Vec::new();
    for _ in 0..2 {
        let shape = rng.shape(1, 4);
        let rank = shape.len();
        let dims: Vec<isize> = (0..rank as isize).filter(|_| rng.chance(0.5)).collect();
        let keep = rng.chance(0.5);
        let one = rng.below(rank) as isize - if rng.chance(0.5) { rank as isize } else { 0 };
        let d = dims.clone();
        out.push(
            Case::new("sum", vec![normal(&shape)], move |t| {
                Ok(vec![t[0].sum(&d, keep)?])
            })
            .tol(1e-5),
        );
        let d = dims.clone();
        out.push(
            Case::new("mean", vec![normal(&shape)], move |t| {
                Ok(vec![t[0].mean(&d, keep)?])
            })
            .tol(1e-5),
        );
        let d = dims.clone();
        out.push(
            Case::new("var_mean", vec![normal(&shape)], move |t| {
                let (v, m) = t[0].var_mean(&d, keep, true)?;
                Ok(vec![
                    v,
                    m,
                    t[0].var(&d, keep, false)?,
                    t[0].std(&d, keep, true)?,
                    t[0].std(&d, keep, 0.5)?,
                ])
            })
            .tol(1e-5),
        );
        let d = dims.clone();
        out.push(Case::new("max/min", vec![normal(&shape)], move |t| {
            Ok(vec![t[0].max(&d, keep)?, t[0].min(&d, keep)?])
        }));
        out.push(
            Case::new("argmax/argmin", vec![normal(&shape)], move |t| {
                Ok(vec![t[0].argmax(one, keep)?, t[0].argmin(one, keep)?])
            })
            .no_grad(),
        );
        let d = dims.clone();
        out.push(
            Case::new("logsumexp", vec![normal(&shape)], move |t| {
                Ok(vec![t[0].logsumexp(&d, keep)?])
            })
            .tol(1e-5),
        );
        out.push(
            Case::new("all", vec![normal(&shape)], |t| {
                let x = &t[0];
                Ok(vec![
                    x.sum_all()?,
                    x.mean_all()?,
                    x.max_all()?,
                    x.min_all()?,
                ])
            })
            .tol(1e-5),
        );
        let target: Vec<usize> = shape
            .iter()
            .skip(rng.below(rank + 1))
            .map(|&s| if rng.chance(0.4) { 1 } else { s })
            .collect();
        out.push(
            Case::new("sum_to_shape", vec![normal(&shape)], move |t| {
                Ok(vec![t[0].sum_to_shape(&target)?])
            })
            .tol(1e-5),
        );
    }
    out
}
