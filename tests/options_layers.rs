//! PyTorch's layer and optimizer options, against PyTorch, on every backend:
//! MultiheadAttention `kdim`/`vdim`, `add_bias_kv`, `add_zero_attn` and
//! per-head weights; Embedding `max_norm`/`norm_type` and
//! `scale_grad_by_freq`; `nn::Softplus` with `beta`/`threshold`; LSTM
//! `proj_size`; the `RNNCell`, `LSTMCell` and `GRUCell` modules; and
//! `maximize` on every optimizer.
//!
//! Known values: `fixtures/options/layers.json`, written in float64 by
//! `fixtures/make_options_layer_fixtures.py`. Each layer case checks its
//! `state_dict` keys against PyTorch's, in order, loads PyTorch's values by
//! name (so shapes must be PyTorch's too),
//! calls the layer as PyTorch did, and compares every output, the input and
//! parameter gradients of `Σ outputs · grad_outputs`, the state the call
//! changed, and `print(module)`. Each optimizer case takes PyTorch's three
//! steps with fixed gradients. Then: bad arguments are errors, and the
//! `maximize` flag survives snapshots (and its absence in older ones).

mod common;

use std::collections::BTreeMap;

use lam::nn::*;
use lam::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use lam::prelude::*;
use serde_json::Value;

use common::fixture::{self, expect_close, tensor, Options};

const FILE: &str = "options/layers.json";

/// The layer cases of `layer` (at least `min`), each run on `dev`.
fn run_layer(layer: &str, min: usize, dev: &Device) -> lam::Result<()> {
    let cases: Vec<Value> = fixture::read(FILE)["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["layer"] == layer)
        .cloned()
        .collect();
    assert!(
        cases.len() >= min,
        "{FILE}: {} {layer} cases, expected at least {min}",
        cases.len()
    );
    fixture::run_cases(&cases, dev, run_case)
}

conformance!(multihead_attention_options, |dev| {
    run_layer("MultiheadAttention", 5, dev)
});
conformance!(embedding_options, |dev| { run_layer("Embedding", 5, dev) });
conformance!(softplus_beta_threshold, |dev| {
    run_layer("Softplus", 4, dev)
});
conformance!(lstm_proj_size, |dev| { run_layer("LSTM", 3, dev) });
conformance!(rnn_cell, |dev| { run_layer("RNNCell", 3, dev) });
conformance!(lstm_cell, |dev| { run_layer("LSTMCell", 3, dev) });
conformance!(gru_cell, |dev| { run_layer("GRUCell", 2, dev) });
conformance!(optimizers_maximize, |dev| {
    let cases = fixture::read(FILE)["optimizers"]
        .as_array()
        .expect("optimizers")
        .clone();
    assert!(cases.len() >= 8, "{FILE}: {} optimizer cases", cases.len());
    fixture::run_cases(&cases, dev, run_optimizer_case)
});

/// A case's tensor inputs by name: floats require grad, ints are I32.
type Inputs = BTreeMap<String, Tensor>;

/// Builds the layer, calls it, and compares everything the case records.
fn run_case(case: &Value, dev: &Device) -> lam::Result<()> {
    let layer = Layer::build(case, dev)?;
    let module = layer.module();
    let keys: Vec<String> = module.state_dict().into_iter().map(|(k, _)| k).collect();
    if keys != case["keys"].as_array().expect("keys").as_slice() {
        return Err(Error::invalid(
            "fixture",
            format!(
                "state_dict keys {keys:?}, PyTorch's (in order) {}",
                case["keys"]
            ),
        ));
    }
    fixture::load_state(module, &case["state"], dev)?;
    let mut inputs = Inputs::new();
    for (name, v) in case["inputs"].as_object().expect("inputs") {
        let t = if case["input_grads"].get(name).is_some() {
            tensor(v, DType::F32, dev)?.requires_grad_()?
        } else {
            tensor(v, DType::I32, dev)?
        };
        inputs.insert(name.clone(), t);
    }
    let outputs = layer.call(&inputs, &case["call"])?;
    let expected = case["outputs"].as_array().expect("outputs");
    if outputs.len() != expected.len() {
        return Err(Error::invalid(
            "fixture",
            format!("{} outputs, PyTorch has {}", outputs.len(), expected.len()),
        ));
    }
    let mut loss: Option<Tensor> = None;
    for (k, (y, want)) in outputs.iter().zip(expected).enumerate() {
        expect_close(&format!("output {k}"), y, want)?;
        let g = tensor(&case["grad_outputs"][k], DType::F32, dev)?;
        let term = y.mul(&g)?.sum_all()?;
        loss = Some(match loss {
            Some(l) => l.add(&term)?,
            None => term,
        });
    }
    loss.ok_or_else(|| Error::invalid("fixture", "no outputs"))?
        .backward()?;
    for (name, want) in case["input_grads"].as_object().expect("input_grads") {
        let g = inputs[name]
            .grad()
            .ok_or_else(|| Error::invalid("fixture", format!("{name} received no gradient")))?;
        expect_close(&format!("gradient of input {name}"), &g, want)?;
    }
    fixture::expect_param_grads(module, &case["grads"])?;
    let state = module.state_dict();
    for (name, want) in case["state_after"].as_object().expect("state_after") {
        let (_, t) = state
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::invalid("fixture", format!("no state entry {name}")))?;
        expect_close(&format!("{name} after the call"), t, want)?;
    }
    // PyTorch prints MultiheadAttention's out_proj as its internal
    // `NonDynamicallyQuantizableLinear`; the others print alike.
    if case["layer"] != "MultiheadAttention" {
        let printed = module.to_string();
        if printed != case["repr"].as_str().expect("repr") {
            return Err(Error::invalid(
                "fixture",
                format!("print(module) gives {printed:?}, PyTorch {}", case["repr"]),
            ));
        }
    }
    Ok(())
}

/// The layer a case builds, with the call it makes.
enum Layer {
    Mha(MultiheadAttention),
    Embedding(Embedding),
    Softplus(Softplus),
    Lstm(LSTM),
    RnnCell(RNNCell),
    LstmCell(LSTMCell),
    GruCell(GRUCell),
}

impl Layer {
    fn build(case: &Value, dev: &Device) -> lam::Result<Layer> {
        let c = &case["config"];
        let o = Options(c);
        let opt_usize = |key: &str| c.get(key).and_then(Value::as_u64).map(|v| v as usize);
        let (input, hidden) = (o.usize("input", 0), o.usize("hidden", 0));
        Ok(match case["layer"].as_str().expect("layer") {
            "MultiheadAttention" => {
                let config = MultiheadAttentionConfig {
                    batch_first: o.bool("batch_first", false),
                    kdim: opt_usize("kdim"),
                    vdim: opt_usize("vdim"),
                    add_bias_kv: o.bool("add_bias_kv", false),
                    add_zero_attn: o.bool("add_zero_attn", false),
                    ..Default::default()
                };
                let (e, h) = (o.usize("embed_dim", 0), o.usize("num_heads", 0));
                Layer::Mha(MultiheadAttention::with_config(e, h, config, dev)?)
            }
            "Embedding" => {
                let norm_type = match &c["norm_type"] {
                    Value::String(s) if s == "inf" => f32::INFINITY,
                    _ => o.f32("norm_type", 2.0),
                };
                let config = EmbeddingConfig {
                    padding_idx: opt_usize("padding_idx"),
                    max_norm: c.get("max_norm").and_then(Value::as_f64).map(|v| v as f32),
                    norm_type,
                    scale_grad_by_freq: o.bool("scale_grad_by_freq", false),
                };
                let (num, dim) = (o.usize("num", 0), o.usize("dim", 0));
                Layer::Embedding(Embedding::with_config(num, dim, config, dev)?)
            }
            "Softplus" => {
                Layer::Softplus(Softplus::new(o.f32("beta", 1.0), o.f32("threshold", 20.0)))
            }
            "LSTM" => {
                let config = RnnConfig::default()
                    .proj_size(o.usize("proj_size", 0))
                    .num_layers(o.usize("num_layers", 1))
                    .bias(o.bool("bias", true))
                    .batch_first(o.bool("batch_first", false))
                    .bidirectional(o.bool("bidirectional", false));
                Layer::Lstm(LSTM::with_config(input, hidden, config, dev)?)
            }
            "RNNCell" => {
                let nonlinearity = match c.get("nonlinearity").and_then(Value::as_str) {
                    Some("relu") => RnnNonlinearity::Relu,
                    _ => RnnNonlinearity::Tanh,
                };
                let bias = o.bool("bias", true);
                Layer::RnnCell(RNNCell::with_config(
                    input,
                    hidden,
                    nonlinearity,
                    bias,
                    dev,
                )?)
            }
            "LSTMCell" => {
                let bias = o.bool("bias", true);
                Layer::LstmCell(LSTMCell::with_bias(input, hidden, bias, dev)?)
            }
            "GRUCell" => {
                let bias = o.bool("bias", true);
                Layer::GruCell(GRUCell::with_bias(input, hidden, bias, dev)?)
            }
            other => panic!("{FILE}: unknown layer {other}"),
        })
    }

    fn module(&self) -> &dyn Module {
        match self {
            Layer::Mha(m) => m,
            Layer::Embedding(m) => m,
            Layer::Softplus(m) => m,
            Layer::Lstm(m) => m,
            Layer::RnnCell(m) => m,
            Layer::LstmCell(m) => m,
            Layer::GruCell(m) => m,
        }
    }

    /// The call PyTorch made, on `inputs`; its outputs in PyTorch's order.
    fn call(&self, inputs: &Inputs, call: &Value) -> lam::Result<Vec<Tensor>> {
        let get = |name: &str| inputs.get(name);
        let input = || get("input").expect("an input");
        Ok(match self {
            Layer::Mha(m) => {
                let average = call
                    .get("average_attn_weights")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let (q, k, v) = (&inputs["query"], &inputs["key"], &inputs["value"]);
                let kpm = get("key_padding_mask").map(AttnMask::Bool);
                let mask = get("attn_mask").map(AttnMask::Bool);
                let (out, weights) = m.forward_with_weights(q, k, v, kpm, mask, average)?;
                vec![out, weights]
            }
            Layer::Embedding(m) => vec![m.forward(input())?],
            Layer::Softplus(m) => vec![m.forward(input())?],
            Layer::Lstm(m) => {
                let state = get("h0").zip(get("c0"));
                let (out, (h, c)) = m.forward(input(), state)?;
                vec![out, h, c]
            }
            Layer::RnnCell(m) => vec![m.forward(input(), get("hx"))?],
            Layer::LstmCell(m) => {
                let (h, c) = m.forward(input(), get("hx").zip(get("cx")))?;
                vec![h, c]
            }
            Layer::GruCell(m) => vec![m.forward(input(), get("hx"))?],
        })
    }
}

/// Three steps of one optimizer with `maximize`, against PyTorch's.
fn run_optimizer_case(case: &Value, dev: &Device) -> lam::Result<()> {
    let params: Vec<Tensor> = case["params"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| tensor(p, DType::F32, dev)?.requires_grad_())
        .collect::<lam::Result<_>>()?;
    let mut opt = optimizer(case, params.clone())?;
    for (step, (grads, after)) in case["grads"]
        .as_array()
        .expect("grads")
        .iter()
        .zip(case["steps"].as_array().expect("steps"))
        .enumerate()
    {
        for (p, g) in params.iter().zip(grads.as_array().expect("a step's grads")) {
            p.set_grad(Some(tensor(g, DType::F32, dev)?))?;
        }
        opt.step()?;
        for (k, (p, want)) in params
            .iter()
            .zip(after.as_array().expect("after"))
            .enumerate()
        {
            expect_close(&format!("parameter {k} after step {}", step + 1), p, want)?;
        }
    }
    Ok(())
}

/// The optimizer a case names, with its options and `maximize`.
fn optimizer(case: &Value, params: Vec<Tensor>) -> lam::Result<Box<dyn Optimizer>> {
    let o = Options(&case["options"]);
    let (lr, wd) = (o.f32("lr", 0.0), o.f32("weight_decay", 0.0));
    Ok(match case["optimizer"].as_str().expect("optimizer") {
        "sgd" => Box::new(
            Sgd::new(params, lr)?
                .momentum(o.f32("momentum", 0.0))
                .nesterov(o.bool("nesterov", false))
                .weight_decay(wd)
                .maximize(true),
        ),
        "adam" => Box::new(
            Adam::new(params, lr)?
                .amsgrad(o.bool("amsgrad", false))
                .weight_decay(wd)
                .maximize(true),
        ),
        "adamw" => Box::new(AdamW::new(params, lr)?.weight_decay(wd).maximize(true)),
        "rmsprop" => Box::new(
            RmsProp::new(params, lr)?
                .centered(o.bool("centered", false))
                .momentum(o.f32("momentum", 0.0))
                .weight_decay(wd)
                .maximize(true),
        ),
        "adagrad" => Box::new(
            Adagrad::new(params, lr)?
                .lr_decay(o.f32("lr_decay", 0.0))
                .weight_decay(wd)
                .maximize(true),
        ),
        other => panic!("{FILE}: unknown optimizer {other}"),
    })
}

fn rnd(shape: &[usize], salt: u64, dev: &Device) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n as u32)
        .map(|i| 2.0 * lam::rng::uniform01(salt, i) - 1.0)
        .collect();
    Tensor::from_vec(data, shape, dev).expect("a test tensor")
}

fn expect_err<T>(what: &str, r: lam::Result<T>, mentions: &str) {
    match r {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => assert!(
            e.to_string().contains(mentions),
            "{what}: the error {e} does not mention {mentions:?}"
        ),
    }
}

/// Every bad option or shape is an error naming it.
#[test]
fn bad_options_are_errors() -> lam::Result<()> {
    let dev = Device::cpu();
    let x = rnd(&[2, 3], 1, &dev);

    expect_err(
        "softplus beta 0",
        functional::softplus(&x, 0.0, 20.0),
        "beta",
    );
    expect_err(
        "Softplus beta inf",
        Softplus::new(f32::INFINITY, 1.0).forward(&x),
        "beta",
    );
    expect_err(
        "softplus NaN threshold",
        functional::softplus(&x, 1.0, f32::NAN),
        "threshold",
    );

    let emb = |config: EmbeddingConfig| Embedding::with_config(5, 2, config, &dev);
    expect_err(
        "max_norm < 0",
        emb(EmbeddingConfig::default().max_norm(-1.0)),
        "max_norm",
    );
    expect_err(
        "max_norm NaN",
        emb(EmbeddingConfig::default().max_norm(f32::NAN)),
        "max_norm",
    );
    expect_err(
        "norm_type 0",
        emb(EmbeddingConfig::default().norm_type(0.0)),
        "norm_type",
    );
    // An index out of range: an error, and no row renormalised.
    let e = emb(EmbeddingConfig::default().max_norm(0.1))?;
    let before = e.weight.to_vec()?;
    let ids = Tensor::from_vec_i32(vec![0, 7], &[2], &dev)?;
    expect_err("index out of range", e.forward(&ids), "7");
    assert_eq!(
        e.weight.to_vec()?,
        before,
        "a failed lookup changed the weight"
    );
    let ids = Tensor::from_vec_i32(vec![-1], &[1], &dev)?;
    let freq = emb(EmbeddingConfig::default().scale_grad_by_freq(true))?;
    expect_err("negative index", freq.forward(&ids), "-1");

    let proj = |p: usize| RnnConfig::default().proj_size(p);
    expect_err(
        "proj_size = hidden",
        LSTM::with_config(3, 4, proj(4), &dev),
        "proj_size",
    );
    expect_err(
        "proj_size on GRU",
        GRU::with_config(3, 4, proj(2), &dev),
        "LSTM",
    );
    let tanh = RnnNonlinearity::Tanh;
    expect_err(
        "proj_size on RNN",
        RNN::with_config(3, 4, tanh, proj(2), &dev),
        "LSTM",
    );
    let lstm = LSTM::with_config(3, 4, proj(2), &dev)?;
    let seq = rnd(&[5, 2, 3], 2, &dev);
    let (h_wrong, c) = (rnd(&[1, 2, 4], 3, &dev), rnd(&[1, 2, 4], 4, &dev));
    expect_err(
        "h0 of hidden_size",
        lstm.forward(&seq, Some((&h_wrong, &c))),
        "[1, 2, 2]",
    );

    let mha =
        |config: MultiheadAttentionConfig| MultiheadAttention::with_config(4, 2, config, &dev);
    let kdim = |k: usize| MultiheadAttentionConfig {
        kdim: Some(k),
        ..Default::default()
    };
    expect_err("kdim 0", mha(kdim(0)), "kdim");
    let m = mha(kdim(3))?;
    let (q, k4) = (rnd(&[3, 2, 4], 5, &dev), rnd(&[5, 2, 4], 6, &dev));
    expect_err(
        "key of embed_dim",
        m.forward(&q, &k4, &k4, None, None, false),
        "kdim 3",
    );
    let m = mha(MultiheadAttentionConfig {
        add_bias_kv: true,
        add_zero_attn: true,
        ..Default::default()
    })?;
    let mask = rnd(&[3, 6], 7, &dev);
    let wrong = Some(AttnMask::Additive(&mask));
    expect_err(
        "attn_mask over added keys",
        m.forward(&q, &k4, &k4, None, wrong, false),
        "[3, 5]",
    );

    let cell = RNNCell::new(3, 4, &dev)?;
    expect_err(
        "RNNCell input size",
        cell.forward(&rnd(&[2, 5], 8, &dev), None),
        "3",
    );
    expect_err(
        "RNNCell rank",
        cell.forward(&rnd(&[1, 2, 3], 9, &dev), None),
        "input",
    );
    let lstm_cell = LSTMCell::new(3, 4, &dev)?;
    let (h, c) = (rnd(&[2, 4], 10, &dev), rnd(&[2, 3], 11, &dev));
    expect_err(
        "LSTMCell cx shape",
        lstm_cell.forward(&x, Some((&h, &c))),
        "state",
    );
    expect_err("GRUCell hidden 0", GRUCell::new(3, 0, &dev), "hidden_size");
    Ok(())
}

/// Averaged weights are the per-head weights' mean, and `forward` returns
/// the same output and averaged weights as `forward_with_weights`.
#[test]
fn per_head_weights_average_to_forwards() -> lam::Result<()> {
    let dev = Device::cpu();
    let config = MultiheadAttentionConfig {
        add_bias_kv: true,
        add_zero_attn: true,
        ..Default::default()
    };
    let m = MultiheadAttention::with_config(6, 3, config, &dev)?;
    let (q, k) = (rnd(&[2, 4, 6], 1, &dev), rnd(&[5, 4, 6], 2, &dev));
    let (out, avg) = m.forward(&q, &k, &k, None, None, true)?;
    let avg = avg.expect("weights");
    let (out2, heads) = m.forward_with_weights(&q, &k, &k, None, None, false)?;
    assert_eq!(heads.dims(), [4, 3, 2, 7]);
    assert_eq!(out.to_vec()?, out2.to_vec()?);
    common::close(&heads.mean(&[1], false)?.to_vec()?, &avg.to_vec()?, 1e-6);
    Ok(())
}

/// `maximize` is a hyper-parameter of every snapshot; a snapshot written
/// before it existed loads as `maximize = false`.
#[test]
fn maximize_is_in_snapshots() -> lam::Result<()> {
    let dev = Device::cpu();
    let p = rnd(&[3], 1, &dev).requires_grad_()?;
    let opt = Adam::new(vec![p.clone()], 0.1)?.maximize(true);
    let state = opt.state_dict()?;
    assert_eq!(state.hyper.get("maximize"), Some(&1.0));
    let mut fresh = Adam::new(vec![p.clone()], 0.1)?;
    fresh.load_state_dict(&state)?;
    assert_eq!(fresh.state_dict()?.hyper.get("maximize"), Some(&1.0));

    let mut old = state.clone();
    old.hyper.remove("maximize");
    let mut loaded = Adam::new(vec![p.clone()], 0.1)?.maximize(true);
    loaded.load_state_dict(&old)?;
    assert_eq!(loaded.state_dict()?.hyper.get("maximize"), Some(&0.0));

    // Ascent: one SGD step with maximize moves along the gradient.
    let mut sgd = Sgd::new(vec![p.clone()], 0.5)?.maximize(true);
    let before = p.to_vec()?;
    p.set_grad(Some(Tensor::ones(&[3], &dev)?))?;
    sgd.step()?;
    let after = p.to_vec()?;
    for (a, b) in after.iter().zip(&before) {
        assert!((a - b - 0.5).abs() < 1e-6, "{a} vs {b} + 0.5");
    }
    Ok(())
}

/// Finite differences agree with backpropagation through the new options
/// (the fixtures compare against PyTorch; this needs no reference).
#[test]
fn gradients_match_finite_differences() -> lam::Result<()> {
    use lam::testing::{gradcheck, GradCheck};
    let dev = Device::cpu();
    let check = |f: &dyn Fn(&[Tensor]) -> lam::Result<Tensor>, inputs: &[Tensor]| {
        gradcheck(f, inputs, GradCheck::default())
    };

    // Softplus on both sides of its threshold (β x = 3), away from the kink.
    let x = Tensor::from_vec(vec![-2.0, -0.3, 0.4, 1.2, 1.9, 2.6], &[6], &dev)?;
    check(&|a| functional::softplus(&a[0], 2.0, 3.0), &[x])?;

    let config = MultiheadAttentionConfig {
        kdim: Some(3),
        vdim: Some(2),
        add_bias_kv: true,
        add_zero_attn: true,
        ..Default::default()
    };
    let mha = MultiheadAttention::with_config(4, 2, config, &dev)?;
    let (q, k, v) = (
        rnd(&[2, 2, 4], 21, &dev),
        rnd(&[3, 2, 3], 22, &dev),
        rnd(&[3, 2, 2], 23, &dev),
    );
    check(
        &|a| {
            let (out, w) = mha.forward_with_weights(&a[0], &a[1], &a[2], None, None, false)?;
            Tensor::cat(&[out.flatten(0, -1)?, w.flatten(0, -1)?], 0)
        },
        &[q, k, v],
    )?;

    let lstm = LSTM::with_config(2, 3, RnnConfig::default().proj_size(2), &dev)?;
    let (x, h0, c0) = (
        rnd(&[3, 2, 2], 31, &dev),
        rnd(&[1, 2, 2], 32, &dev),
        rnd(&[1, 2, 3], 33, &dev),
    );
    check(
        &|a| {
            let (out, (h, c)) = lstm.forward(&a[0], Some((&a[1], &a[2])))?;
            Tensor::cat(
                &[out.flatten(0, -1)?, h.flatten(0, -1)?, c.flatten(0, -1)?],
                0,
            )
        },
        &[x, h0, c0],
    )?;
    Ok(())
}
