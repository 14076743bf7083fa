//! `#[derive(Module)]`, `print(model)` and `summary`, against what PyTorch
//! says about the same model (fixtures/derive/modules.json, made by
//! fixtures/make_derive_fixtures.py): state_dict keys, shapes and order,
//! parameter order, the printed tree, every module with its own parameter
//! count, and the output shapes forward hooks see. Then each kind of field
//! the derive accepts, on its own.

use std::collections::BTreeMap;

use lam::nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNormConfig, Conv1d, Conv2d,
    Conv2dConfig, Dropout, Embedding, EmbeddingConfig, Flatten, LayerNorm, Linear, LinearConfig,
    MaxPool2d, Mode, PReLU, RnnConfig, Sequential, Softmax, Tanh, ELU, GELU, GRU, LSTM,
};
use lam::prelude::*;
use lam::DType;
use serde_json::Value;

const FIXTURE: &str = include_str!("../fixtures/derive/modules.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixtures/derive/modules.json parses")
}

fn cpu() -> Device {
    Device::cpu()
}

/// `fc` then `norm`, with a residual: PyTorch's `Block`.
#[derive(Module)]
struct Block {
    fc: Linear,
    norm: LayerNorm,
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        &self.norm.forward(&self.fc.forward(x)?.relu()?)? + x
    }
}

/// PyTorch's `Net`: a list of blocks, a dict of heads, an optional layer,
/// a BatchNorm, a raw parameter, a buffer, and fields that hold no tensor.
#[derive(Module)]
struct Net {
    embed: Linear,
    blocks: Vec<Block>,
    heads: BTreeMap<String, Linear>,
    proj: Option<Linear>,
    bn: BatchNorm1d,
    #[module(param)]
    scale: Tensor,
    #[module(buffer)]
    steps: Tensor,
    /// Not part of the model: skipped (PyTorch's plain attribute).
    #[module(skip)]
    cache: Option<Tensor>,
    hidden: usize,
}

impl Net {
    fn new(with_proj: bool, dev: &Device) -> Result<Net> {
        let block = || -> Result<Block> {
            Ok(Block {
                fc: Linear::new(4, 4, dev)?,
                norm: LayerNorm::new(&[4], dev)?,
            })
        };
        let heads = [("a", 2), ("b", 1)]
            .into_iter()
            .map(|(k, n)| Ok((k.to_string(), Linear::new(4, n, dev)?)))
            .collect::<Result<_>>()?;
        Ok(Net {
            embed: Linear::new(3, 4, dev)?,
            blocks: vec![block()?, block()?],
            heads,
            proj: with_proj.then(|| Linear::new(4, 4, dev)).transpose()?,
            bn: BatchNorm1d::new(4, dev)?,
            scale: Tensor::ones(&[1], dev)?.requires_grad_()?,
            steps: Tensor::zeros(&[1], dev)?,
            cache: Some(Tensor::zeros(&[7], dev)?),
            hidden: 4,
        })
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.embed.forward(x)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        if let Some(proj) = &self.proj {
            x = proj.forward(&x)?;
        }
        let x = self.bn.forward(&x)?;
        &self.heads["a"].forward(&x)? * &self.scale
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a shape")
        .iter()
        .map(|d| d.as_u64().expect("a size") as usize)
        .collect()
}

fn model_case(with_proj: bool) -> Value {
    let name = if with_proj {
        "with_proj"
    } else {
        "without_proj"
    };
    fixture()["models"][name].clone()
}

#[test]
fn derived_state_dict_is_pytorchs() -> Result<()> {
    for with_proj in [true, false] {
        let case = model_case(with_proj);
        let net = Net::new(with_proj, &cpu())?;
        let ours: Vec<(String, Vec<usize>, String)> = net
            .state_dict()
            .into_iter()
            .map(|(k, t)| {
                let dtype = match t.dtype() {
                    DType::F32 => "float32",
                    DType::F16 => "float16",
                    // PyTorch's int64 counter is an I32 buffer here (converted on save).
                    DType::I32 => "int64",
                };
                (k, t.shape(), dtype.to_string())
            })
            .collect();
        let torch: Vec<(String, Vec<usize>, String)> = case["state_dict"]
            .as_array()
            .expect("state_dict")
            .iter()
            .map(|e| {
                let key = e[0].as_str().expect("key").to_string();
                (key, shape(&e[1]), e[2].as_str().expect("dtype").to_string())
            })
            .collect();
        assert_eq!(ours, torch, "with_proj = {with_proj}");
        let names: Vec<String> = net.named_parameters().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            strings(&case["parameters"]),
            "with_proj = {with_proj}"
        );
        // The skipped tensor is nowhere: not trained, not saved.
        assert!(net.cache.is_some() && net.hidden == 4);
        assert!(net.state_dict().iter().all(|(k, _)| !k.contains("cache")));
    }
    Ok(())
}

#[test]
fn derived_model_prints_as_pytorch() -> Result<()> {
    for with_proj in [true, false] {
        let net = Net::new(with_proj, &cpu())?;
        let torch = model_case(with_proj)["repr"]
            .as_str()
            .expect("repr")
            .to_string();
        assert_eq!(net.to_string(), torch);
        // The same text through a trait object.
        let boxed: Box<dyn Module> = Box::new(net);
        assert_eq!(format!("{}", boxed.as_ref()), torch);
    }
    Ok(())
}

#[test]
fn layers_print_as_pytorch() -> Result<()> {
    let dev = &cpu();
    let layers: Vec<(&str, Box<dyn Module>)> = vec![
        ("Linear::new(3, 4)", Box::new(Linear::new(3, 4, dev)?)),
        (
            "Linear::with_config(3, 4, bias: false)",
            Box::new(Linear::with_config(
                3,
                4,
                LinearConfig { bias: false },
                dev,
            )?),
        ),
        (
            "Conv2d::with_config(1, 16, 3, padding 1)",
            Box::new(Conv2d::with_config(
                1,
                16,
                3,
                Conv2dConfig::default().padding(1),
                dev,
            )?),
        ),
        (
            "Conv2d::with_config(4, 8, (3, 5), stride 2, dilation 2, groups 2, bias false)",
            Box::new(Conv2d::with_config(
                4,
                8,
                (3, 5),
                Conv2dConfig::default()
                    .stride(2)
                    .dilation(2)
                    .groups(2)
                    .bias(false),
                dev,
            )?),
        ),
        ("Conv1d::new(2, 3, 5)", Box::new(Conv1d::new(2, 3, 5, dev)?)),
        ("MaxPool2d::new(2)", Box::new(MaxPool2d::new(2)?)),
        ("AvgPool2d::new(3)", Box::new(AvgPool2d::new(3)?)),
        (
            "AdaptiveAvgPool2d::new(1)",
            Box::new(AdaptiveAvgPool2d::new(1)?),
        ),
        ("BatchNorm1d::new(4)", Box::new(BatchNorm1d::new(4, dev)?)),
        (
            "BatchNorm2d::with_config(8, momentum None, affine false)",
            Box::new(BatchNorm2d::with_config(
                8,
                BatchNormConfig {
                    momentum: None,
                    affine: false,
                    ..Default::default()
                },
                dev,
            )?),
        ),
        ("LayerNorm::new(&[4])", Box::new(LayerNorm::new(&[4], dev)?)),
        (
            "LayerNorm::new(&[2, 3])",
            Box::new(LayerNorm::new(&[2, 3], dev)?),
        ),
        ("Dropout::new(0.25)", Box::new(Dropout::new(0.25)?)),
        (
            "Embedding::new(10, 3)",
            Box::new(Embedding::new(10, 3, dev)?),
        ),
        (
            "Embedding::with_config(10, 3, padding_idx 0)",
            Box::new(Embedding::with_config(
                10,
                3,
                EmbeddingConfig {
                    padding_idx: Some(0),
                    ..Default::default()
                },
                dev,
            )?),
        ),
        ("Flatten::new()", Box::new(Flatten::new())),
        ("ReLU", Box::new(lam::nn::ReLU)),
        ("Tanh", Box::new(Tanh)),
        (
            "LeakyReLU::default()",
            Box::new(lam::nn::LeakyReLU::default()),
        ),
        ("ELU::new(0.5)", Box::new(ELU::new(0.5))),
        ("GELU::default()", Box::new(GELU::default())),
        ("Softmax::new(-1)", Box::new(Softmax::new(-1))),
        ("PReLU::new(3)", Box::new(PReLU::new(3, dev)?)),
        (
            "LSTM::with_config(1, 32, batch_first)",
            Box::new(LSTM::with_config(
                1,
                32,
                RnnConfig::default().batch_first(true),
                dev,
            )?),
        ),
        (
            "GRU::with_config(4, 8, num_layers 2, bidirectional, dropout 0.5)",
            Box::new(GRU::with_config(
                4,
                8,
                RnnConfig::default()
                    .num_layers(2)
                    .bidirectional(true)
                    .dropout(0.5),
                dev,
            )?),
        ),
        (
            "Sequential(Linear(784, 128), ReLU, Linear(128, 10))",
            Box::new(
                Sequential::new()
                    .add(Linear::new(784, 128, dev)?)
                    .add(lam::nn::ReLU)
                    .add(Linear::new(128, 10, dev)?),
            ),
        ),
    ];
    let torch = fixture()["layers"].clone();
    assert_eq!(layers.len(), torch.as_object().expect("layers").len());
    for (name, layer) in &layers {
        let expected = torch[name].as_str().unwrap_or_else(|| panic!("{name}"));
        assert_eq!(format!("{}", layer.as_ref()), expected, "{name}");
    }
    Ok(())
}

#[test]
fn summary_rows_are_pytorchs_modules() -> Result<()> {
    let fx = fixture();
    let input = shape(&fx["input"]);
    for with_proj in [true, false] {
        let case = model_case(with_proj);
        let net = Net::new(with_proj, &cpu())?;
        net.train();
        let summary = net.summary(&input)?;
        // Paths rebuilt from depths, as PyTorch's named_modules names them.
        let mut stack: Vec<String> = Vec::new();
        let mut ours = Vec::new();
        for row in &summary.rows {
            stack.truncate(row.depth.saturating_sub(1));
            if row.depth > 0 {
                stack.push(row.name.clone());
            }
            ours.push((stack.join("."), row.type_name.clone(), row.params as u64));
        }
        let torch: Vec<(String, String, u64)> = case["modules"]
            .as_array()
            .expect("modules")
            .iter()
            .map(|m| {
                let name = m[0].as_str().expect("name").to_string();
                let kind = m[1].as_str().expect("type").to_string();
                (name, kind, m[2].as_u64().expect("count"))
            })
            .collect();
        assert_eq!(ours, torch, "with_proj = {with_proj}");
        // Shapes: every layer of lam's records its output; the user's own
        // modules (Block) and the collections show none.
        for ((path, kind, _), row) in ours.iter().zip(&summary.rows) {
            let recorded = &case["outputs"][path.as_str()];
            match &row.output_shape {
                Some(s) => assert_eq!(*s, shape(recorded), "{path}"),
                None => assert!(
                    kind == "Block" || kind.starts_with("Module") || recorded.is_null(),
                    "{path} ({kind}) has no recorded shape"
                ),
            }
        }
        let total: usize = net.parameters().iter().map(|p| p.numel()).sum();
        assert_eq!(summary.total_params, total);
        assert_eq!(summary.trainable_params, total);
        let text = summary.to_string();
        assert!(text.contains(&format!("Total params: {total}")), "{text}");
        assert!(text.contains("├─embed (Linear)"), "{text}");
        assert!(text.contains("│    └─fc (Linear)"), "{text}");
        // The summary ran in evaluation mode and left the model as it was.
        assert!(net.bn.is_training());
        assert_eq!(
            net.bn.num_batches_tracked.as_ref().map(|t| t.item()),
            Some(Ok(0.0))
        );
    }
    Ok(())
}

#[test]
fn summary_of_a_sequential_records_every_layer() -> Result<()> {
    let dev = cpu();
    let model = Sequential::new()
        .add(Linear::new(784, 128, &dev)?)
        .add(lam::nn::ReLU)
        .add(Linear::new(128, 10, &dev)?)
        .add(lam::nn::ReLU);
    let summary = model.summary(&[2, 784])?;
    let shapes: Vec<Option<Vec<usize>>> = summary
        .rows
        .iter()
        .map(|r| r.output_shape.clone())
        .collect();
    let expected = [
        vec![2, 10],
        vec![2, 128],
        vec![2, 128],
        vec![2, 10],
        vec![2, 10],
    ];
    assert_eq!(shapes, expected.map(Some).to_vec());
    assert_eq!(summary.total_params, 784 * 128 + 128 + 128 * 10 + 10);
    // A model without tensors needs an input that says where it runs.
    let empty = Sequential::new().add(lam::nn::ReLU);
    let err = empty.summary(&[2, 3]).expect_err("no device to take");
    assert!(err.to_string().contains("summary_with"), "{err}");
    let s = empty.summary_with(&Tensor::zeros(&[2, 3], &dev)?)?;
    assert_eq!(s.rows[1].output_shape, Some(vec![2, 3]));
    Ok(())
}

/// Every other kind of field, each with the key it gets.
#[derive(Module)]
struct Fields<B> {
    #[module(param, name = "w")]
    weight: Tensor,
    #[module(param)]
    maybe: Option<Tensor>,
    #[module(param)]
    list: Vec<Tensor>,
    #[module(buffer)]
    table: BTreeMap<String, Tensor>,
    #[module(name = "type")]
    r#type: Linear,
    grid: [Linear; 2],
    nested: Vec<Vec<Linear>>,
    boxed: Box<dyn Module>,
    generic: B,
    dropout: Dropout,
    absent: Option<Linear>,
    mode: Mode,
    label: String,
    sizes: Vec<usize>,
}

impl<B: Module> Module for Fields<B> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.generic.forward(x)
    }
}

/// A tuple struct: fields are named by position, as in `nn.Sequential`.
#[derive(Module)]
struct Pair(Linear, #[module(param)] Tensor);

impl Module for Pair {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        &self.0.forward(x)? + &self.1
    }
}

#[test]
fn every_kind_of_field_gets_its_key() -> Result<()> {
    let dev = &cpu();
    let lin = |i, o| Linear::new(i, o, dev);
    let t = |n| Tensor::zeros(&[n], dev);
    let model = Fields {
        weight: t(1)?.requires_grad_()?,
        maybe: None,
        list: vec![t(2)?.requires_grad_()?, t(3)?.requires_grad_()?],
        table: [("x".to_string(), t(4)?), ("a".to_string(), t(5)?)].into(),
        r#type: lin(1, 1)?,
        grid: [lin(1, 1)?, lin(1, 1)?],
        nested: vec![vec![], vec![lin(1, 1)?]],
        boxed: Box::new(lin(1, 1)?),
        generic: lin(2, 2)?,
        dropout: Dropout::new(0.5)?,
        absent: None,
        mode: Mode::new(),
        label: "not visited".into(),
        sizes: vec![1, 2],
    };
    let keys: Vec<String> = model.state_dict().into_iter().map(|(k, _)| k).collect();
    let expected = [
        "w",
        "list.0",
        "list.1",
        "table.a",
        "table.x",
        "type.weight",
        "type.bias",
        "grid.0.weight",
        "grid.0.bias",
        "grid.1.weight",
        "grid.1.bias",
        "nested.1.0.weight",
        "nested.1.0.bias",
        "boxed.weight",
        "boxed.bias",
        "generic.weight",
        "generic.bias",
    ];
    assert_eq!(keys, expected);
    // Buffers are saved, not trained.
    assert_eq!(model.parameters().len(), expected.len() - 2);
    // eval() reaches the flags of fields and of children.
    model.eval();
    assert!(!model.dropout.is_training() && !model.mode.is_training());
    model.train();
    assert!(model.dropout.is_training() && model.mode.is_training());
    assert!(model.label.len() + model.sizes.len() > 0);

    let pair = Pair(lin(2, 2)?, t(2)?.requires_grad_()?);
    let keys: Vec<String> = pair.state_dict().into_iter().map(|(k, _)| k).collect();
    // The struct's own parameter first, then the child: PyTorch's order.
    assert_eq!(keys, ["1", "0.weight", "0.bias"]);
    assert_eq!(
        pair.to_string(),
        "Pair(\n  (0): Linear(in_features=2, out_features=2, bias=True)\n)"
    );
    Ok(())
}

#[test]
fn derived_models_move_train_and_save_through_their_fields() -> Result<()> {
    let dev = cpu();
    let net = Net::new(true, &dev)?;
    let dir = std::env::temp_dir().join(format!("lam-derive-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join("net.safetensors");
    lam::checkpoint::save_model(&net, &path)?;
    let other = Net::new(true, &dev)?;
    lam::checkpoint::load_model(&other, &path)?;
    for ((k, a), (_, b)) in net.state_dict().iter().zip(other.state_dict()) {
        if a.dtype() == DType::F32 {
            assert_eq!(a.to_vec()?, b.to_vec()?, "{k}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
