//! ONNX export: the models lam writes are the files that ONNX Runtime ran
//! (`fixtures/onnx/*.onnx`, checked by `onnx.checker` and run by
//! `fixtures/make_onnx_fixtures.py`), ONNX Runtime's outputs equal lam's at
//! two batch sizes other than the one exported, and the same models
//! exported by PyTorch have the same input/output signature. Ops export
//! cannot write are errors that name them.
//!
//! Capture and export run on every device and write the same file.
//!
//! `LAM_ONNX_OUT=fixtures/onnx cargo test -p lam --test onnx` writes the
//! models, their weights and their inputs for the fixture script.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lam::capture::{capture, Op};
use lam::nn::Visit;
use lam::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Dropout, Embedding,
    Flatten, GeluApproximate, Linear, LogSoftmax, MaxPool2d, Module, ReLU, RnnConfig,
    RnnNonlinearity, Sequential, Softmax, Tanh, TransformerActivation, TransformerEncoderLayer,
    TransformerEncoderLayerConfig, GELU, GRU, LSTM, RNN,
};
use lam::rng::with_generator;
use lam::{Device, DeviceExt, Generator, Result, Tensor};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/onnx");

/// The batch size the models are exported at, and those they are run at.
const EXPORT_BATCH: usize = 3;
const RUN_BATCHES: [usize; 2] = [1, 5];

#[derive(Module)]
struct LstmNet {
    lstm: LSTM,
    fc: Linear,
}

impl Module for LstmNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (out, _) = self.lstm.forward(x, None)?; // [B, T, 2H]
        let t = out.dims()[1];
        self.fc.forward(&out.narrow(1, t - 1, 1)?.squeeze(1)?)
    }
}

#[derive(Module)]
struct GruNet {
    gru: GRU,
    rnn: RNN,
    fc: Linear,
}

impl Module for GruNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (y, _) = self.gru.forward(x, None)?;
        let (y, _) = self.rnn.forward(&y, None)?;
        self.fc.forward(&y.mean(1, false)?)
    }
}

#[derive(Module)]
struct Encoder {
    layer: TransformerEncoderLayer,
    fc: Linear,
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = Module::forward(&self.layer, x)?;
        self.fc.forward(&y.mean(1, false)?)?.log_softmax(-1)
    }
}

#[derive(Module)]
struct EmbedNet {
    emb: Embedding,
    fc: Linear,
}

impl Module for EmbedNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let e = self.emb.forward(x)?; // [B, T, E]
        let pooled = e.max(1, false)?.add(&e.sum(1, false)?.div_scalar(4.0)?)?;
        self.fc.forward(&pooled)
    }
}

/// A model of the fixtures: its name, the model and the shape of one
/// sample of its input (`I32` token ids when `tokens` is set).
struct Case {
    name: &'static str,
    model: Box<dyn Module>,
    sample: Vec<usize>,
    tokens: Option<i32>,
    tolerance: f32,
}

/// The models, their weights drawn from a generator of their own (tests
/// run in parallel threads).
fn cases(dev: &Device) -> Result<Vec<Case>> {
    with_generator(&Generator::new(15), || build_cases(dev))
}

fn build_cases(dev: &Device) -> Result<Vec<Case>> {
    let mlp = Sequential::new()
        .add(Linear::new(10, 16, dev)?)
        .add(ReLU)
        .add(Dropout::new(0.2)?)
        .add(Linear::new(16, 8, dev)?)
        .add(Tanh)
        .add(Linear::new(8, 3, dev)?)
        .add(LogSoftmax::new(-1));
    let cnn = Sequential::new()
        .add(Conv2d::with_config(
            1,
            4,
            3,
            Conv2dConfig::default().padding(1),
            dev,
        )?)
        .add(BatchNorm2d::new(4, dev)?)
        .add(ReLU)
        .add(MaxPool2d::new(2)?)
        .add(Conv2d::with_config(
            4,
            6,
            3,
            Conv2dConfig::default().groups(2).dilation(1).stride(1),
            dev,
        )?)
        .add(GELU::new(GeluApproximate::None))
        .add(AdaptiveAvgPool2d::new(1)?)
        .add(Flatten::new())
        .add(Linear::new(6, 3, dev)?)
        .add(Softmax::new(1));
    // Running statistics other than the initial zeros and ones.
    for _ in 0..3 {
        cnn.forward(
            &Tensor::randn(&[4, 1, 8, 8], dev)?
                .mul_scalar(2.0)?
                .add_scalar(0.5)?,
        )?;
    }
    let conv1d = Sequential::new()
        .add(Conv1d::with_config(
            3,
            4,
            3,
            Conv1dConfig::default().stride(2).padding(1).dilation(2),
            dev,
        )?)
        .add(ReLU)
        .add(Flatten::new())
        .add(Linear::new(12, 2, dev)?);
    let lstm = LstmNet {
        lstm: LSTM::with_config(
            5,
            6,
            RnnConfig::default()
                .num_layers(2)
                .batch_first(true)
                .bidirectional(true),
            dev,
        )?,
        fc: Linear::new(12, 3, dev)?,
    };
    let gru = GruNet {
        gru: GRU::with_config(5, 6, RnnConfig::default().batch_first(true), dev)?,
        rnn: RNN::with_config(
            6,
            4,
            RnnNonlinearity::Relu,
            RnnConfig::default().batch_first(true).bidirectional(true),
            dev,
        )?,
        fc: Linear::new(8, 2, dev)?,
    };
    let encoder = Encoder {
        layer: TransformerEncoderLayer::with_config(
            8,
            2,
            TransformerEncoderLayerConfig {
                dim_feedforward: 16,
                batch_first: true,
                activation: TransformerActivation::Gelu,
                ..Default::default()
            },
            dev,
        )?,
        fc: Linear::new(8, 3, dev)?,
    };
    let embed = EmbedNet {
        emb: Embedding::new(20, 8, dev)?,
        fc: Linear::new(8, 3, dev)?,
    };
    let case = |name, model: Box<dyn Module>, sample: &[usize], tolerance| Case {
        name,
        model,
        sample: sample.to_vec(),
        tokens: None,
        tolerance,
    };
    Ok(vec![
        case("mlp", Box::new(mlp), &[10], 1e-5),
        case("cnn", Box::new(cnn), &[1, 8, 8], 1e-5),
        case("conv1d", Box::new(conv1d), &[3, 7], 1e-5),
        case("lstm", Box::new(lstm), &[7, 5], 1e-4),
        case("gru", Box::new(gru), &[6, 5], 1e-4),
        case("transformer", Box::new(encoder), &[5, 8], 1e-4),
        Case {
            tokens: Some(20),
            ..case("embedding", Box::new(embed), &[4], 1e-5)
        },
    ])
}

fn input(case: &Case, batch: usize, dev: &Device, gen: &Generator) -> Result<Tensor> {
    let mut shape = vec![batch];
    shape.extend(&case.sample);
    match case.tokens {
        Some(n) => Tensor::randint_with(0, n, &shape, dev, gen),
        None => Tensor::randn_with(&shape, dev, gen),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn to_json(t: &Tensor) -> Result<Value> {
    let data: Vec<f64> = match t.dtype() {
        lam::DType::F32 | lam::DType::F16 => t.to_vec()?.into_iter().map(f64::from).collect(),
        lam::DType::I32 => t.to_vec_i32()?.into_iter().map(f64::from).collect(),
    };
    Ok(json!({ "shape": t.shape(), "data": data }))
}

fn from_json(v: &Value, int: bool, dev: &Device) -> Result<Tensor> {
    let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).expect("shape");
    let data: Vec<f64> = serde_json::from_value(v["data"].clone()).expect("data");
    if int {
        Tensor::from_vec_i32(data.iter().map(|&x| x as i32).collect(), &shape, dev)
    } else {
        Tensor::from_vec(data.iter().map(|&x| x as f32).collect(), &shape, dev)
    }
}

/// `LAM_ONNX_OUT=DIR`: the files the fixture script reads.
#[test]
fn write_models_for_the_fixture_script() -> Result<()> {
    let Ok(dir) = std::env::var("LAM_ONNX_OUT") else {
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).map_err(|e| lam::Error::io(&dir, e))?;
    let dev = Device::cpu();
    for case in cases(&dev)? {
        let gen = Generator::new(1);
        let example = input(&case, EXPORT_BATCH, &dev, &gen)?;
        lam::onnx::export(
            case.model.as_ref(),
            &example,
            dir.join(format!("{}.onnx", case.name)),
        )?;
        lam::checkpoint::save_model(
            case.model.as_ref(),
            dir.join(format!("{}.safetensors", case.name)),
        )?;
        case.model.eval();
        let mut runs = Vec::new();
        for batch in RUN_BATCHES {
            let x = input(&case, batch, &dev, &gen)?;
            let y = lam::no_grad(|| case.model.forward(&x))?;
            runs.push(json!({ "input": to_json(&x)?, "lam": to_json(&y)? }));
        }
        let doc = json!({ "int_input": case.tokens.is_some(), "runs": runs });
        let path = dir.join(format!("{}.lam.json", case.name));
        std::fs::write(&path, doc.to_string()).map_err(|e| lam::Error::io(&path, e))?;
    }
    Ok(())
}

#[test]
fn exported_models_are_the_files_onnx_runtime_ran_and_agree_with_it() -> Result<()> {
    let dev = Device::cpu();
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("report.json")).expect("fixtures/onnx/report.json"),
    )
    .expect("report json");
    for case in cases(&dev)? {
        let name = case.name;
        let example = input(&case, EXPORT_BATCH, &dev, &Generator::new(1))?;
        let bytes = lam::onnx::to_bytes(case.model.as_ref(), &example)?;
        let committed = std::fs::read(fixture(&format!("{name}.onnx"))).expect("fixture model");
        assert!(
            bytes == committed,
            "{name}: lam now writes a different file than fixtures/onnx/{name}.onnx; \
             regenerate with fixtures/make_onnx_fixtures.py"
        );
        let entry = &report["models"][name];
        assert_eq!(entry["checker"], json!(true), "{name}: onnx.checker");
        if !entry["torch_signature"].is_null() {
            assert_eq!(
                entry["torch_signature"],
                json!(true),
                "{name}: PyTorch's signature"
            );
        }
        let ort: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("{name}.ort.json"))).expect("ort outputs"),
        )
        .expect("ort json");
        case.model.eval();
        let runs = ort["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), RUN_BATCHES.len());
        for run in runs {
            let x = from_json(&run["input"], case.tokens.is_some(), &dev)?;
            let expected = from_json(&run["ort"], false, &dev)?;
            let y = lam::no_grad(|| case.model.forward(&x))?;
            assert_eq!(y.shape(), expected.shape(), "{name}");
            let err = y
                .to_vec()?
                .iter()
                .zip(expected.to_vec()?)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                err <= case.tolerance,
                "{name} at batch {}: |lam - ORT| = {err} > {}",
                x.dims()[0],
                case.tolerance
            );
        }
    }
    Ok(())
}

#[test]
fn capture_names_parameters_and_tracks_the_batch_axis() -> Result<()> {
    let dev = Device::cpu();
    let model = Sequential::new()
        .add(Linear::new(4, 3, &dev)?)
        .add(ReLU)
        .add(Flatten::new());
    let graph = capture(&model, &Tensor::randn(&[2, 4], &dev)?)?;
    let names: Vec<&str> = graph.values.iter().map(|v| v.name.as_str()).collect();
    assert!(
        names.contains(&"0.weight") && names.contains(&"0.bias"),
        "{names:?}"
    );
    assert!(matches!(graph.nodes[0].op, Op::Linear { .. }));
    assert_eq!(graph.value(graph.output).batch_axis, Some(0));
    // The model's modes come back as they were.
    let mut modes = Vec::new();
    model.visit("", &mut |_, e| {
        if let lam::nn::Entry::Mode(flag) = e {
            modes.push(flag.load(std::sync::atomic::Ordering::Relaxed));
        }
    });
    assert!(modes.iter().all(|&m| m), "{modes:?}");
    Ok(())
}

#[derive(Module)]
struct Scatter;

impl Module for Scatter {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let index = Tensor::zeros(x.dims(), &x.device())?.to_dtype(lam::DType::I32)?;
        x.scatter_add(1, &index, x)
    }
}

#[test]
fn an_op_export_cannot_write_is_an_error_naming_it() -> Result<()> {
    let dev = Device::cpu();
    let err = lam::onnx::to_bytes(&Scatter, &Tensor::randn(&[2, 3], &dev)?).unwrap_err();
    assert!(err.to_string().contains("scatter_add"), "{err}");
    let identity = Sequential::new();
    assert!(lam::onnx::to_bytes(&identity, &Tensor::randn(&[2, 3], &dev)?).is_err());
    Ok(())
}

#[test]
fn exported_files_name_their_parameters_as_the_state_dict() -> Result<()> {
    let dev = Device::cpu();
    let case = cases(&dev)?
        .into_iter()
        .find(|c| c.name == "mlp")
        .expect("mlp");
    let bytes = lam::onnx::to_bytes(case.model.as_ref(), &Tensor::randn(&[2, 10], &dev)?)?;
    let text = String::from_utf8_lossy(&bytes);
    let state: BTreeMap<String, Tensor> = case.model.state_dict().into_iter().collect();
    for name in state.keys() {
        assert!(text.contains(name.as_str()), "{name} missing from the file");
    }
    Ok(())
}

conformance!(every_device_writes_the_same_file, |dev| {
    let cpu = Device::cpu();
    for case in cases(&cpu)? {
        case.model.to_device(dev)?;
        let example = input(&case, EXPORT_BATCH, &cpu, &Generator::new(1))?.to_device(dev)?;
        let bytes = lam::onnx::to_bytes(case.model.as_ref(), &example)?;
        let committed = std::fs::read(fixture(&format!("{}.onnx", case.name))).expect("fixture");
        assert!(
            bytes == committed,
            "{}: a different file on {}",
            case.name,
            dev.name()
        );
    }
    Ok(())
});
