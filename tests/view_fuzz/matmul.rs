//! Matrix products on random views (Backend `matmul`, `fused_matmul_f16`,
//! `fused_linear`, `fused_linear_f16`): vectors, matrices, broadcast
//! batches, an F16 product, and Linear with and without bias and ReLU, in
//! f32 and under autocast.

use lam::nn::functional::{linear, linear_act};
use lam::nn::LinearActivation;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &["matmul", "linear", "linear_act"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut out = Vec::new();
    let (m, k, n) = (rng.size() + 1, rng.size() + 2, rng.size());
    let batch = rng.shape(0, 2);
    let other: Vec<usize> = batch
        .iter()
        .map(|&b| if rng.chance(0.4) { 1 } else { b })
        .collect();
    let mut a = batch.clone();
    a.extend([m, k]);
    let mut b = other;
    b.extend([k, n]);
    for (name, x, y) in [
        ("matmul batched", a.clone(), b.clone()),
        ("matmul matrix·vector", vec![m, k], vec![k]),
        ("matmul vector·matrix", vec![k], vec![k, n]),
        ("matmul vector·vector", vec![k], vec![k]),
        ("matmul batch·matrix", a.clone(), vec![k, n]),
    ] {
        out.push(
            Case::new(name, vec![normal(&x), normal(&y)], |t| {
                Ok(vec![t[0].matmul(&t[1])?])
            })
            .tol(1e-5),
        );
    }
    // An F16 product (Backend `fused_matmul_f16` where the backend has
    // it), its operands cast from the views, with gradients through the
    // casts.
    out.push(
        Case::new("matmul f16 batched", vec![normal(&a), normal(&b)], |t| {
            let half = |x: &lam::Tensor| x.to_dtype(lam::DType::F16);
            Ok(vec![half(&t[0])?.matmul(&half(&t[1])?)?])
        })
        .tol(1e-3),
    );
    let mut input = rng.shape(0, 2);
    input.push(k);
    out.push(
        Case::new(
            "linear",
            vec![normal(&input), normal(&[n + 1, k]), normal(&[n + 1])],
            |t| {
                Ok(vec![
                    linear(&t[0], &t[1], Some(&t[2]))?,
                    linear(&t[0], &t[1], None)?,
                ])
            },
        )
        .tol(1e-5),
    );
    out.push(
        Case::new(
            "linear_act relu",
            vec![normal(&input), normal(&[n + 2, k]), normal(&[n + 2])],
            |t| {
                Ok(vec![linear_act(
                    &t[0],
                    &t[1],
                    Some(&t[2]),
                    LinearActivation::Relu,
                )?])
            },
        )
        .tol(1e-5),
    );
    // Under autocast (Backend `fused_linear_f16` where the backend has it):
    // the F16 product, the F32 bias and the ReLU.
    out.push(
        Case::new(
            "linear_act autocast",
            vec![normal(&input), normal(&[n + 3, k]), normal(&[n + 3])],
            |t| {
                let _ac = lam::amp::autocast_forced(&t[0].device(), lam::DType::F16)?;
                Ok(vec![
                    linear_act(&t[0], &t[1], Some(&t[2]), LinearActivation::Relu)?,
                    linear(&t[0], &t[1], Some(&t[2]))?,
                ])
            },
        )
        .tol(1e-3),
    );
    out
}
