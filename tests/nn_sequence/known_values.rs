//! Known values: every case of `fixtures/sequence/*.json` (made by PyTorch
//! with `fixtures/make_sequence_fixtures.py`) builds the layer it names,
//! loads PyTorch's `state_dict` into it by name, runs forward with the
//! case's inputs, backpropagates `Σ result · grad_output`, and compares every
//! result, input gradient and parameter gradient.

use std::collections::BTreeMap;

use lam::nn::*;
use lam::prelude::*;

use crate::common::fixture::{self, expect_close, tensor};
use crate::conformance;
use serde_json::Value;

/// Runs every case of `fixtures/sequence/{file}.json` (at least `min`),
/// reporting all failing cases at once.
fn run_fixture_file(file: &str, min: usize, dev: &Device) -> lam::Result<()> {
    fixture::run_file(&format!("sequence/{file}.json"), min, dev, run_case)
}

/// The layer of a case, which each take different forward arguments.
enum Layer {
    Rnn(RNN),
    Lstm(LSTM),
    Gru(GRU),
    Mha(MultiheadAttention),
    Encoder(Box<TransformerEncoderLayer>),
}

impl Layer {
    fn module(&self) -> &dyn Module {
        match self {
            Layer::Rnn(m) => m,
            Layer::Lstm(m) => m,
            Layer::Gru(m) => m,
            Layer::Mha(m) => m,
            Layer::Encoder(m) => m.as_ref(),
        }
    }

    /// The named results of the forward pass, as the fixture names them.
    fn run(
        &self,
        inputs: &BTreeMap<String, Tensor>,
        kinds: &Value,
    ) -> lam::Result<Vec<(&'static str, Tensor)>> {
        let get = |k: &str| inputs.get(k);
        let x = || get("x").expect("input x");
        let mask = |k: &str| -> Option<AttnMask<'_>> {
            let m = get(k)?;
            Some(match kinds[k].as_str() {
                Some("bool") => AttnMask::Bool(m),
                _ => AttnMask::Additive(m),
            })
        };
        Ok(match self {
            Layer::Rnn(m) => {
                let (out, h) = m.forward(x(), get("h0"))?;
                vec![("output", out), ("h_n", h)]
            }
            Layer::Gru(m) => {
                let (out, h) = m.forward(x(), get("h0"))?;
                vec![("output", out), ("h_n", h)]
            }
            Layer::Lstm(m) => {
                let state = get("h0").zip(get("c0"));
                let (out, (h, c)) = m.forward(x(), state)?;
                vec![("output", out), ("h_n", h), ("c_n", c)]
            }
            Layer::Mha(m) => {
                let (q, k, v) = (
                    get("query").expect("query"),
                    get("key").expect("key"),
                    get("value").expect("value"),
                );
                let (out, w) =
                    m.forward(q, k, v, mask("key_padding_mask"), mask("attn_mask"), true)?;
                vec![("output", out), ("weights", w.expect("weights"))]
            }
            Layer::Encoder(m) => {
                let src = get("src").expect("src");
                let out = TransformerEncoderLayer::forward(
                    m,
                    src,
                    mask("src_mask"),
                    mask("src_key_padding_mask"),
                )?;
                vec![("output", out)]
            }
        })
    }
}

fn run_case(case: &Value, dev: &Device) -> lam::Result<()> {
    let layer = build(case, dev)?;
    let module = layer.module();
    fixture::load_state(module, &case["state"], dev)?;
    module.set_training(case["training"].as_bool().unwrap_or(true));

    let kinds = &case["mask_kinds"];
    let mut inputs = BTreeMap::new();
    for (name, v) in case["inputs"].as_object().expect("inputs") {
        let x = tensor(v, DType::F32, dev)?;
        let x = if kinds.get(name).is_some() {
            x
        } else {
            x.requires_grad_()?
        };
        inputs.insert(name.clone(), x);
    }
    let results = layer.run(&inputs, kinds)?;
    let mut loss: Option<Tensor> = None;
    for (name, y) in &results {
        expect_close(name, y, &case["outputs"][*name])?;
        let term = y
            .mul(&tensor(&case["grad_outputs"][*name], DType::F32, dev)?)?
            .sum_all()?;
        loss = Some(match loss {
            None => term,
            Some(l) => l.add(&term)?,
        });
    }
    loss.expect("at least one result").backward()?;
    for (name, expected) in case["input_grads"].as_object().expect("input_grads") {
        let g = inputs[name].grad().ok_or_else(|| {
            Error::invalid("fixture", format!("input {name} received no gradient"))
        })?;
        expect_close(&format!("gradient of input {name}"), &g, expected)?;
    }
    fixture::expect_param_grads(module, &case["grads"])?;
    Ok(())
}

/// The layer a fixture case describes, with PyTorch's options.
fn build(case: &Value, dev: &Device) -> lam::Result<Layer> {
    let c = &case["config"];
    let o = fixture::Options(c);
    let rnn_config = || RnnConfig {
        num_layers: o.usize("num_layers", 1),
        bias: o.bool("bias", true),
        batch_first: o.bool("batch_first", false),
        dropout: o.f32("dropout", 0.0),
        bidirectional: o.bool("bidirectional", false),
        proj_size: o.usize("proj_size", 0),
    };
    let (input, hidden) = (o.usize("input_size", 0), o.usize("hidden_size", 0));
    Ok(match case["layer"].as_str().expect("layer type") {
        "RNN" => {
            let nonlinearity = match c.get("nonlinearity").and_then(Value::as_str) {
                Some("relu") => RnnNonlinearity::Relu,
                _ => RnnNonlinearity::Tanh,
            };
            Layer::Rnn(RNN::with_config(
                input,
                hidden,
                nonlinearity,
                rnn_config(),
                dev,
            )?)
        }
        "LSTM" => Layer::Lstm(LSTM::with_config(input, hidden, rnn_config(), dev)?),
        "GRU" => Layer::Gru(GRU::with_config(input, hidden, rnn_config(), dev)?),
        "MultiheadAttention" => {
            let config = MultiheadAttentionConfig {
                dropout: o.f32("dropout", 0.0),
                bias: o.bool("bias", true),
                batch_first: o.bool("batch_first", false),
                ..Default::default()
            };
            Layer::Mha(MultiheadAttention::with_config(
                o.usize("embed_dim", 0),
                o.usize("num_heads", 0),
                config,
                dev,
            )?)
        }
        "TransformerEncoderLayer" => {
            let defaults = TransformerEncoderLayerConfig::default();
            let config = TransformerEncoderLayerConfig {
                dim_feedforward: o.usize("dim_feedforward", defaults.dim_feedforward),
                dropout: o.f32("dropout", defaults.dropout),
                activation: match c.get("activation").and_then(Value::as_str) {
                    Some("gelu") => TransformerActivation::Gelu,
                    _ => TransformerActivation::Relu,
                },
                layer_norm_eps: o.f32("layer_norm_eps", defaults.layer_norm_eps),
                batch_first: o.bool("batch_first", false),
                norm_first: o.bool("norm_first", false),
                bias: o.bool("bias", true),
            };
            Layer::Encoder(Box::new(TransformerEncoderLayer::with_config(
                o.usize("d_model", 0),
                o.usize("nhead", 0),
                config,
                dev,
            )?))
        }
        other => {
            return Err(Error::invalid(
                "fixture",
                format!("unknown layer type {other}"),
            ))
        }
    })
}

conformance!(known_values_recurrent, |dev| {
    run_fixture_file("recurrent", 10, dev)
});
conformance!(known_values_recurrent_gates, |dev| {
    run_fixture_file("recurrent_gates", 6, dev)
});
conformance!(known_values_attention, |dev| {
    run_fixture_file("attention", 8, dev)
});

#[test]
fn fixtures_cover_every_layer_and_option() {
    let all: Vec<Value> = ["recurrent", "recurrent_gates", "attention"]
        .iter()
        .flat_map(|file| fixture::file_cases(&format!("sequence/{file}.json"), 1))
        .collect();
    for layer in [
        "RNN",
        "LSTM",
        "GRU",
        "MultiheadAttention",
        "TransformerEncoderLayer",
    ] {
        assert!(
            all.iter().any(|c| c["layer"] == layer),
            "no fixture case for {layer}"
        );
    }
    // Each recurrent layer is covered bidirectional and batch_first.
    for layer in ["RNN", "LSTM", "GRU"] {
        for option in ["bidirectional", "batch_first"] {
            assert!(
                all.iter()
                    .any(|c| c["layer"] == layer && c["config"][option] == true),
                "no {layer} case with {option}"
            );
        }
    }
}
