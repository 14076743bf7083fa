//! Known values: every case of `fixtures/nn/*.json` (made by PyTorch with
//! `fixtures/make_nn_fixtures.py`) builds the layer it names, loads PyTorch's
//! `state_dict` into it by name, runs forward and backward, and compares the
//! output, input gradient, parameter gradients and buffers after the step.

use lam::nn::*;
use lam::prelude::*;

use crate::common::fixture::{self, expect_close, tensor};
use crate::conformance;
use serde_json::Value;

/// Runs every case of `fixtures/nn/{file}.json` (at least `min`),
/// reporting all failing cases at once.
fn run_fixture_file(file: &str, min: usize, dev: &Device) -> lam::Result<()> {
    fixture::run_file(&format!("nn/{file}.json"), min, dev, run_case)
}

fn run_case(case: &Value, dev: &Device) -> lam::Result<()> {
    let layer = build(case, dev)?;
    fixture::load_state(&*layer, &case["state"], dev)?;
    let state = layer.state_dict();
    layer.set_training(case["training"].as_bool().unwrap_or(true));
    let input = &case["input"];
    let float_input = case.get("input_grad").is_some();
    let x = if float_input {
        tensor(input, DType::F32, dev)?.requires_grad_()?
    } else {
        tensor(input, DType::I32, dev)?
    };
    let y = layer.forward(&x)?;
    expect_close("output", &y, &case["output"])?;
    y.backward_with(&tensor(&case["grad_output"], DType::F32, dev)?)?;
    if float_input {
        let g = x
            .grad()
            .ok_or_else(|| Error::invalid("fixture", "input received no gradient"))?;
        expect_close("input gradient", &g, &case["input_grad"])?;
    }
    fixture::expect_param_grads(&*layer, &case["grads"])?;
    for (name, expected) in case["state_after"].as_object().expect("state_after") {
        let t = state
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone());
        let t = t.ok_or_else(|| Error::invalid("fixture", format!("no buffer {name}")))?;
        expect_close(&format!("buffer {name} after the step"), &t, expected)?;
    }
    Ok(())
}

/// The layer a fixture case describes, with PyTorch's options.
fn build(case: &Value, dev: &Device) -> lam::Result<Box<dyn Module>> {
    let c = &case["config"];
    let o = fixture::Options(c);
    let size_of = |key: &str| -> Option<Size2> {
        match c.get(key)? {
            Value::Number(n) => n.as_u64().map(|v| Size2::from(v as usize)),
            Value::Array(a) => Some(Size2::new(a[0].as_u64()? as usize, a[1].as_u64()? as usize)),
            _ => None,
        }
    };
    let size_or = |key: &str, default: usize| size_of(key).unwrap_or(Size2::from(default));
    let layer: Box<dyn Module> = match case["layer"].as_str().expect("layer type") {
        "Linear" => {
            let config = LinearConfig {
                bias: o.bool("bias", true),
            };
            Box::new(Linear::with_config(
                o.usize("in", 0),
                o.usize("out", 0),
                config,
                dev,
            )?)
        }
        "Conv2d" => {
            let config = Conv2dConfig::default()
                .stride(size_or("stride", 1))
                .padding(size_or("padding", 0))
                .dilation(size_or("dilation", 1))
                .groups(o.usize("groups", 1))
                .bias(o.bool("bias", true));
            let kernel = size_or("kernel", 1);
            Box::new(Conv2d::with_config(
                o.usize("in", 0),
                o.usize("out", 0),
                kernel,
                config,
                dev,
            )?)
        }
        "Conv1d" => {
            let config = Conv1dConfig::default()
                .stride(o.usize("stride", 1))
                .padding(o.usize("padding", 0))
                .dilation(o.usize("dilation", 1))
                .groups(o.usize("groups", 1))
                .bias(o.bool("bias", true));
            let kernel = o.usize("kernel", 1);
            Box::new(Conv1d::with_config(
                o.usize("in", 0),
                o.usize("out", 0),
                kernel,
                config,
                dev,
            )?)
        }
        "MaxPool2d" => {
            let mut config = MaxPool2dConfig::default()
                .padding(size_or("padding", 0))
                .dilation(size_or("dilation", 1));
            config.stride = size_of("stride");
            Box::new(MaxPool2d::with_config(size_or("kernel", 1), config)?)
        }
        "AvgPool2d" => {
            let mut config = AvgPool2dConfig::default()
                .padding(size_or("padding", 0))
                .count_include_pad(o.bool("count_include_pad", true));
            config.stride = size_of("stride");
            Box::new(AvgPool2d::with_config(size_or("kernel", 1), config)?)
        }
        "AdaptiveAvgPool2d" => Box::new(AdaptiveAvgPool2d::new(size_or("output_size", 1))?),
        kind @ ("BatchNorm1d" | "BatchNorm2d") => {
            let config = BatchNormConfig {
                eps: o.f32("eps", 1e-5),
                // Absent means PyTorch's default; null means a cumulative average.
                momentum: match c.get("momentum") {
                    None => Some(0.1),
                    Some(v) => v.as_f64().map(|m| m as f32),
                },
                affine: o.bool("affine", true),
                track_running_stats: o.bool("track_running_stats", true),
            };
            let n = o.usize("features", 0);
            if kind == "BatchNorm1d" {
                Box::new(BatchNorm1d::with_config(n, config, dev)?)
            } else {
                Box::new(BatchNorm2d::with_config(n, config, dev)?)
            }
        }
        "LayerNorm" => {
            let shape: Vec<usize> = c["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|v| v.as_u64().unwrap_or(0) as usize)
                .collect();
            let config = LayerNormConfig {
                eps: o.f32("eps", 1e-5),
                elementwise_affine: o.bool("elementwise_affine", true),
                bias: o.bool("bias", true),
            };
            Box::new(LayerNorm::with_config(&shape, config, dev)?)
        }
        "Embedding" => {
            let config = EmbeddingConfig {
                padding_idx: c
                    .get("padding_idx")
                    .and_then(Value::as_u64)
                    .map(|v| v as usize),
                ..Default::default()
            };
            Box::new(Embedding::with_config(
                o.usize("num", 0),
                o.usize("dim", 0),
                config,
                dev,
            )?)
        }
        "Flatten" => Box::new(Flatten::with_dims(
            c.get("start_dim").and_then(Value::as_i64).unwrap_or(1) as isize,
            c.get("end_dim").and_then(Value::as_i64).unwrap_or(-1) as isize,
        )),
        "ReLU" => Box::new(ReLU),
        "ReLU6" => Box::new(ReLU6),
        "SiLU" => Box::new(SiLU),
        "Sigmoid" => Box::new(Sigmoid),
        "Tanh" => Box::new(Tanh),
        "LeakyReLU" => Box::new(LeakyReLU::new(o.f32("negative_slope", 0.01))),
        "ELU" => Box::new(ELU::new(o.f32("alpha", 1.0))),
        "GELU" => Box::new(GELU::new(
            match c.get("approximate").and_then(Value::as_str) {
                Some("tanh") => GeluApproximate::Tanh,
                _ => GeluApproximate::None,
            },
        )),
        "Softmax" => Box::new(Softmax::new(c["dim"].as_i64().unwrap_or(-1) as isize)),
        "LogSoftmax" => Box::new(LogSoftmax::new(c["dim"].as_i64().unwrap_or(-1) as isize)),
        "PReLU" => Box::new(PReLU::new(o.usize("num_parameters", 1), dev)?),
        "SequentialMlp" => Box::new(
            Sequential::new()
                .add(Linear::new(4, 5, dev)?)
                .add(ReLU)
                .add(Linear::new(5, 2, dev)?)
                .add(Tanh),
        ),
        "SequentialCnn" => Box::new(
            Sequential::new()
                .add(Conv2d::with_config(
                    1,
                    2,
                    3,
                    Conv2dConfig::default().padding(1),
                    dev,
                )?)
                .add(BatchNorm2d::new(2, dev)?)
                .add(ReLU)
                .add(MaxPool2d::new(2)?)
                .add(Flatten::new())
                .add(Linear::new(8, 3, dev)?),
        ),
        other => {
            return Err(Error::invalid(
                "fixture",
                format!("unknown layer type {other}"),
            ))
        }
    };
    Ok(layer)
}

/// One conformance test per fixture file (`fixtures/nn/{file}.json`), each
/// with the least number of cases the file holds, and `FILES`, the list
/// of them.
macro_rules! known_values {
    ($($test:ident: $file:literal, $min:literal;)*) => {
        $(conformance!($test, |dev| { run_fixture_file($file, $min, dev) });)*

        const FILES: &[&str] = &[$($file),*];
    };
}

known_values! {
    known_values_linear: "linear", 4;
    known_values_conv: "conv", 9;
    known_values_pool: "pool", 12;
    known_values_norm: "norm", 13;
    known_values_embedding: "embedding", 2;
    known_values_activation: "activation", 17;
    known_values_container: "container", 4;
}

#[test]
fn fixtures_cover_every_layer() {
    // Dropout is random (its mask cannot match PyTorch's); it is tested
    // statistically below.
    let required = [
        "Linear",
        "Conv1d",
        "Conv2d",
        "MaxPool2d",
        "AvgPool2d",
        "AdaptiveAvgPool2d",
        "Flatten",
        "BatchNorm1d",
        "BatchNorm2d",
        "LayerNorm",
        "Embedding",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "ReLU6",
        "ELU",
        "GELU",
        "SiLU",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "LogSoftmax",
        "SequentialMlp",
        "SequentialCnn",
    ];
    let present: Vec<String> = FILES
        .iter()
        .flat_map(|file| fixture::file_cases(&format!("nn/{file}.json"), 1))
        .map(|c| c["layer"].as_str().unwrap_or_default().to_string())
        .collect();
    for layer in required {
        assert!(
            present.iter().any(|p| p == layer),
            "no fixture case for {layer}"
        );
    }
}
