//! The LSTM and GRU gates of one step on random views of the projections
//! and the state (Backend `fused_lstm_cell`, `fused_gru_cell` and their
//! gradients, or the composite on the unfused devices), alone and inside
//! the cell functions; and a bidirectional LSTM layer on views of its input
//! and initial state (Backend `fused_lstm_layer` or, for a wide input,
//! `fused_lstm_sequence`, and their gradient, or the step-by-step loop).

use lam::nn::functional::{gru_cell, gru_gates, lstm_cell, lstm_gates};
use lam::nn::{Module, RnnConfig, LSTM};
use lam::Tensor;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut cases: Vec<Case> = (0..3).flat_map(|_| one_round(rng)).collect();
    // An input this wide is projected before the loop (`fused_lstm_sequence`),
    // not inside it (`fused_lstm_layer`), on the CPU.
    cases.push(lstm_layer("lstm_layer_wide_input", rng.size(), 2048, 64));
    cases
}

fn one_round(rng: &mut Rng) -> Vec<Case> {
    let (b, h, inp) = (rng.size(), rng.size(), rng.size());
    vec![
        Case::new(
            "lstm_gates",
            vec![normal(&[b, 4 * h]), normal(&[b, 4 * h]), normal(&[b, h])],
            |t| {
                let (h1, c1) = lstm_gates(&t[0], &t[1], &t[2])?;
                Ok(vec![h1, c1])
            },
        )
        .tol(1e-5),
        Case::new(
            "gru_gates",
            vec![normal(&[b, 3 * h]), normal(&[b, 3 * h]), normal(&[b, h])],
            |t| Ok(vec![gru_gates(&t[0], &t[1], &t[2])?]),
        )
        .tol(1e-5),
        Case::new(
            "lstm_cell",
            vec![
                normal(&[b, inp]),
                normal(&[b, h]),
                normal(&[b, h]),
                normal(&[4 * h, inp]),
                normal(&[4 * h, h]),
                normal(&[4 * h]),
            ],
            |t| {
                let (h1, c1) = lstm_cell(&t[0], (&t[1], &t[2]), &t[3], &t[4], Some(&t[5]), None)?;
                Ok(vec![h1, c1])
            },
        )
        .tol(1e-4),
        Case::new(
            "gru_cell",
            vec![
                normal(&[b, inp]),
                normal(&[b, h]),
                normal(&[3 * h, inp]),
                normal(&[3 * h, h]),
                normal(&[3 * h]),
            ],
            |t| {
                Ok(vec![gru_cell(
                    &t[0],
                    &t[1],
                    &t[2],
                    &t[3],
                    None,
                    Some(&t[4]),
                )?])
            },
        )
        .tol(1e-4),
        lstm_layer("lstm_layer", b, inp, h),
    ]
}

/// A bidirectional LSTM layer of `inp` features and hidden size `h` on
/// views of its input `[3, b, inp]` and initial state.
fn lstm_layer(name: &'static str, b: usize, inp: usize, h: usize) -> Case {
    Case::new(
        name,
        vec![normal(&[3, b, inp]), normal(&[2, b, h]), normal(&[2, b, h])],
        move |t| {
            let config = RnnConfig::default().bidirectional(true);
            let lstm = LSTM::with_config(inp, h, config, &t[0].device())?;
            // The same weights on every call, whatever the views.
            for (k, p) in lstm.parameters().iter().enumerate() {
                let v: Vec<f32> = (0..p.numel())
                    .map(|i| ((i * 7 + k * 3) % 13) as f32 * 0.08 - 0.48)
                    .collect();
                p.set_data(&Tensor::from_vec(v, p.dims(), &p.device())?)?;
            }
            let (out, (hn, cn)) = lstm.forward(&t[0], Some((&t[1], &t[2])))?;
            Ok(vec![out, hn, cn])
        },
    )
    .tol(1e-4)
}
