//! The int8 linear of dynamic quantization on random views (Backend
//! `matmul_i8`): inputs of any rank and layout, packed weights and scales
//! as views, with and without bias, with dynamic and static input scales.

use lam::nn::quant::{linear_int8, linear_int8_static};

use super::harness::{index, normal, positive, Case, Rng};

pub const COVERS: &[&str] = &["linear_int8", "linear_int8_static"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let (k, n) = (rng.size() + 1, rng.size() + 1);
    let mut input = rng.shape(0, 2);
    input.push(k);
    let words = k.div_ceil(4);
    let rows: usize = input[..input.len() - 1].iter().product();
    vec![Case::new(
        "linear_int8",
        vec![
            normal(&input),
            index(&[n, words], 1 << 30),
            positive(&[n]),
            normal(&[n]),
            positive(&[rows]),
        ],
        move |t| {
            Ok(vec![
                linear_int8(&t[0], &t[1], &t[2], Some(&t[3]), k)?,
                linear_int8(&t[0], &t[1], &t[2], None, k)?,
                linear_int8_static(&t[0], &t[4], &t[1], &t[2], Some(&t[3]), k)?,
            ])
        },
    )
    .no_grad()
    .tol(1e-5)]
}
