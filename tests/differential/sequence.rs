//! Family `sequence`: RNN, LSTM and GRU layers, the single-step cells,
//! MultiheadAttention and TransformerEncoderLayer, with parameters loaded
//! by PyTorch's names.

use lam::nn::functional as F;
use lam::nn::*;
use lam::prelude::*;

use super::check::Tol;
use super::fixture::Args;
use super::layers::load;
use super::runner::{Inputs, Outcome};

pub fn tol(_op: &str, grad: bool) -> Tol {
    let base = Tol::new(1e-6, 2e-5, 2e-5);
    if grad {
        base.times(4.0)
    } else {
        base
    }
}

pub fn sequence(op: &str, a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let d = x.data();
    match op {
        "RNN" | "RNN_relu" | "LSTM" | "GRU" => recurrent(op, a, x, dev),
        "rnn_tanh_cell" | "rnn_relu_cell" | "gru_cell" => {
            let (w, b) = cell_weights(&d, 2, a.bool("bias"));
            let f = match op {
                "rnn_tanh_cell" => F::rnn_tanh_cell,
                "rnn_relu_cell" => F::rnn_relu_cell,
                _ => F::gru_cell,
            };
            Ok(f(&d[0], &d[1], w[0], w[1], b[0], b[1])?.into())
        }
        "lstm_cell" => {
            let (w, b) = cell_weights(&d, 3, a.bool("bias"));
            let (h, c) = F::lstm_cell(&d[0], (&d[1], &d[2]), w[0], w[1], b[0], b[1])?;
            Ok(vec![h, c].into())
        }
        "MultiheadAttention" => attention(a, x, dev),
        "TransformerEncoderLayer" => transformer(a, x, dev),
        other => panic!("unknown sequence op {other}"),
    }
}

/// The two weights and optional biases following `first` data inputs.
fn cell_weights(d: &[Tensor], first: usize, bias: bool) -> ([&Tensor; 2], [Option<&Tensor>; 2]) {
    let w = [&d[first], &d[first + 1]];
    let b = if bias {
        [Some(&d[first + 2]), Some(&d[first + 3])]
    } else {
        [None, None]
    };
    (w, b)
}

fn recurrent(op: &str, a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let cfg = RnnConfig::default()
        .num_layers(a.usize("layers"))
        .bias(a.bool("bias"))
        .batch_first(a.bool("batch_first"))
        .bidirectional(a.bool("bidirectional"));
    let (i, h) = (a.usize("input"), a.usize("hidden"));
    let d = x.data();
    let state = a.bool("state");
    let (outputs, params) = match op {
        "LSTM" => {
            let m = LSTM::with_config(i, h, cfg, dev)?;
            load(&m, x)?;
            let (y, (hn, cn)) = m.forward(&d[0], state.then(|| (&d[1], &d[2])))?;
            (vec![y, hn, cn], m.named_parameters())
        }
        "GRU" => {
            let m = GRU::with_config(i, h, cfg, dev)?;
            load(&m, x)?;
            let (y, hn) = m.forward(&d[0], state.then(|| &d[1]))?;
            (vec![y, hn], m.named_parameters())
        }
        _ => {
            let act = if op == "RNN_relu" {
                RnnNonlinearity::Relu
            } else {
                RnnNonlinearity::Tanh
            };
            let m = RNN::with_config(i, h, act, cfg, dev)?;
            load(&m, x)?;
            let (y, hn) = m.forward(&d[0], state.then(|| &d[1]))?;
            (vec![y, hn], m.named_parameters())
        }
    };
    Ok(Outcome { outputs, params })
}

/// The key-padding mask and attention mask of a case, in lam's terms.
fn masks<'a>(kind: &str, rest: &'a [Tensor]) -> (Option<AttnMask<'a>>, Option<AttnMask<'a>>) {
    let Some(m) = rest.first() else {
        return (None, None);
    };
    let mask = if kind.contains("bool") {
        AttnMask::Bool(m)
    } else {
        AttnMask::Additive(m)
    };
    match kind {
        "none" => (None, None),
        k if k.starts_with("padding") => (Some(mask), None),
        _ => (None, Some(mask)),
    }
}

fn attention(a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let cfg = MultiheadAttentionConfig {
        dropout: 0.0,
        bias: a.bool("bias"),
        batch_first: a.bool("batch_first"),
        ..Default::default()
    };
    let m = MultiheadAttention::with_config(a.usize("embed"), a.usize("heads"), cfg, dev)?;
    load(&m, x)?;
    let d = x.data();
    let cross = a.bool("cross");
    let (q, k, v) = if cross {
        (&d[0], &d[1], &d[2])
    } else {
        (&d[0], &d[0], &d[0])
    };
    let rest = if cross { &d[3..] } else { &d[1..] };
    let (kpm, am) = masks(a.str("mask"), rest);
    let (y, w) = m.forward(q, k, v, kpm, am, a.bool("need_weights"))?;
    let mut outputs = vec![y];
    outputs.extend(w);
    Ok(Outcome {
        outputs,
        params: m.named_parameters(),
    })
}

fn transformer(a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let training = a.bool("training");
    let cfg = TransformerEncoderLayerConfig {
        dim_feedforward: a.usize("ff"),
        dropout: if training { 0.0 } else { 0.1 },
        activation: if a.bool("gelu") {
            TransformerActivation::Gelu
        } else {
            TransformerActivation::Relu
        },
        layer_norm_eps: a.f32("eps"),
        batch_first: a.bool("batch_first"),
        norm_first: a.bool("norm_first"),
        bias: a.bool("bias"),
    };
    let m = TransformerEncoderLayer::with_config(a.usize("d_model"), a.usize("heads"), cfg, dev)?;
    load(&m, x)?;
    m.set_training(training);
    let d = x.data();
    let (kpm, am) = masks(a.str("mask"), &d[1..]);
    let y = m.forward(&d[0], am, kpm)?;
    Ok(Outcome {
        outputs: vec![y],
        params: m.named_parameters(),
    })
}
