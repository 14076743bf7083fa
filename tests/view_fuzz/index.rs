//! Indexing on random views of both the data and the indices (Backend
//! `index_select`, `gather`, `scatter_add`), and the embedding lookup built
//! on them.

use lam::nn::functional::embedding;
use lam::prelude::*;

use super::harness::{index, normal, Case, Rng};

pub const COVERS: &[&str] = &["index_select", "gather", "scatter_add", "to_labels"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut out = Vec::new();
    let shape = rng.shape(1, 3);
    let rank = shape.len();
    let d = rng.below(rank);
    let picks = rng.size();
    out.push(Case::new(
        "index_select",
        vec![normal(&shape), index(&[picks], shape[d])],
        move |t| Ok(vec![t[0].index_select(d as isize, &t[1])?]),
    ));
    let mut idx_shape: Vec<usize> = shape.iter().map(|&s| 1 + rng.below(s)).collect();
    idx_shape[d] = rng.size();
    out.push(Case::new(
        "gather",
        vec![normal(&shape), index(&idx_shape, shape[d])],
        move |t| Ok(vec![t[0].gather(d as isize, &t[1])?]),
    ));
    let base = shape.clone();
    out.push(
        Case::new(
            "scatter_add",
            vec![
                normal(&shape),
                index(&idx_shape, shape[d]),
                normal(&idx_shape),
            ],
            move |t| Ok(vec![t[0].scatter_add(d as isize, &t[1], &t[2])?]),
        )
        .tol(1e-5),
    );
    let _ = base;
    let rows = 2 + rng.size();
    out.push(Case::new(
        "embedding",
        vec![index(&rng.shape(1, 2), rows), normal(&[rows, rng.size()])],
        |t| Ok(vec![embedding(&t[0], &t[1], None)?]),
    ));
    out.push(
        Case::new("to_labels", vec![index(&rng.shape(1, 2), 5)], |t| {
            // F32 holding whole numbers, converted back to labels.
            let labels = t[0].to_dtype(lam::DType::F32)?.to_labels()?;
            let table = Tensor::arange(0.0, 5.0, 1.0, &t[0].device())?;
            Ok(vec![table.index_select(0, &labels.flatten(0, -1)?)?])
        })
        .no_grad(),
    );
    out
}
