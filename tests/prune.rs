//! Pruning: the masks equal `torch.nn.utils.prune`'s (fixtures/prune, made
//! by fixtures/make_prune_fixtures.py), stay through fine-tuning, and
//! `remove` keeps the zeros; structured pruning then shrinks layer pairs to
//! the same function with smaller matrices, on every device.

mod common;

use lam::nn::prune::shrink::{kept_channels, shrink_conv2d, shrink_linear};
use lam::nn::prune::{Norm, Pruning};
use lam::nn::{Conv2d, Linear, Module};
use lam::optim::{Optimizer, Sgd};
use lam::{Device, DeviceExt, Result, Tensor};
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/prune/prune.json"
);

#[derive(Module)]
struct Net {
    a: Linear,
    b: Linear,
    conv: Conv2d,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.b.forward(&self.a.forward(x)?.relu()?)
    }
}

fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("prune.json")).expect("json")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// Net with the fixture's weights.
fn net(fx: &Value, dev: &Device) -> Result<Net> {
    let net = Net {
        a: Linear::new(5, 6, dev)?,
        b: Linear::new(6, 4, dev)?,
        conv: Conv2d::new(3, 4, 3, dev)?,
    };
    for (name, t) in net.named_parameters() {
        if let Some(w) = fx["weights"].get(&name) {
            t.set_data(&Tensor::from_vec(floats(&w["data"]), t.dims(), dev)?)?;
        }
    }
    Ok(net)
}

#[test]
fn masks_equal_pytorch() -> Result<()> {
    let fx = fixture();
    let dev = Device::cpu();
    type Call = fn(&mut Pruning, &Net) -> Result<()>;
    let cases: [(&str, Call); 7] = [
        ("l1", |p, n| p.l1_unstructured(n, "a.weight", 0.3).map(drop)),
        ("l1_twice", |p, n| {
            p.l1_unstructured(n, "a.weight", 0.3)?;
            p.l1_unstructured(n, "a.weight", 0.5).map(drop)
        }),
        ("l1_count", |p, n| {
            p.l1_unstructured(n, "conv.weight", 7usize).map(drop)
        }),
        ("global", |p, n| {
            p.global_unstructured(n, &["a.weight", "b.weight", "conv.weight"], 0.4)
                .map(drop)
        }),
        ("ln2_rows", |p, n| {
            p.ln_structured(n, "a.weight", 0.5, Norm::L2, 0).map(drop)
        }),
        ("ln1_conv_out", |p, n| {
            p.ln_structured(n, "conv.weight", 0.5, Norm::L1, 0)
                .map(drop)
        }),
        ("ln1_conv_in", |p, n| {
            p.ln_structured(n, "conv.weight", 2usize, Norm::L1, 1)
                .map(drop)
        }),
    ];
    for (case, call) in cases {
        let model = net(&fx, &dev)?;
        let mut pruning = Pruning::new();
        call(&mut pruning, &model)?;
        let expected = fx["cases"][case].as_object().expect("case");
        let names: Vec<&str> = pruning.names().collect();
        assert_eq!(names.len(), expected.len(), "{case}: {names:?}");
        for (name, mask) in expected {
            let ours = pruning.mask(name).expect("mask").to_vec()?;
            assert_eq!(ours, floats(mask), "{case}: mask of {name}");
            // The weights the forward sees are the masked ones.
            let params = model.named_parameters();
            let w = &params.iter().find(|(n, _)| n == name).expect("param").1;
            for (v, m) in w.to_vec()?.iter().zip(&ours) {
                assert!(
                    *m != 0.0 || *v == 0.0,
                    "{case}: {name} keeps a pruned value"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn masks_survive_fine_tuning_and_remove_keeps_the_zeros() -> Result<()> {
    let dev = Device::cpu();
    let model = net(&fixture(), &dev)?;
    let mut pruning = Pruning::new();
    pruning.global_unstructured(&model, &["a.weight", "b.weight"], 0.5)?;
    let before = Pruning::report(&model)?;
    let mut opt = pruning.wrap(Sgd::new(model.parameters(), 0.1)?);
    let x = Tensor::randn(&[8, 5], &dev)?;
    for _ in 0..3 {
        opt.zero_grad();
        let y = model.forward(&x)?;
        y.square()?.mean_all()?.backward()?;
        opt.step()?;
    }
    let after = Pruning::report(&model)?;
    let zeros = |r: &lam::nn::prune::SparsityReport, name: &str| {
        r.rows
            .iter()
            .find(|row| row.name == name)
            .map(|row| row.zeros)
    };
    for name in ["a.weight", "b.weight"] {
        assert_eq!(zeros(&after, name), zeros(&before, name), "{name}");
    }
    assert_eq!(after.total().zeros, before.total().zeros);
    let total = after
        .rows
        .iter()
        .filter(|r| r.name.ends_with("weight") && !r.name.starts_with("conv"))
        .map(|r| r.numel)
        .sum::<usize>();
    assert_eq!(after.total().zeros, total / 2);
    assert!(after.to_string().contains("a.weight"));
    pruning.remove("a.weight")?;
    assert!(pruning.mask("a.weight").is_none());
    assert!(pruning.remove("a.weight").is_err());
    Ok(())
}

#[test]
fn bad_pruning_requests_are_errors() -> Result<()> {
    let dev = Device::cpu();
    let model = net(&fixture(), &dev)?;
    let mut p = Pruning::new();
    assert!(p.l1_unstructured(&model, "nope.weight", 0.5).is_err());
    assert!(p.l1_unstructured(&model, "a.weight", 1.5).is_err());
    assert!(p.l1_unstructured(&model, "a.weight", 31usize).is_err());
    assert!(p
        .ln_structured(&model, "a.weight", 0.5, Norm::L1, 2)
        .is_err());
    let a = Linear::new(5, 6, &dev)?;
    let b = Linear::new(6, 4, &dev)?;
    assert!(shrink_linear(&a, &b, &[]).is_err());
    assert!(shrink_linear(&a, &b, &[3, 1]).is_err());
    assert!(shrink_linear(&a, &b, &[6]).is_err());
    assert!(shrink_linear(&b, &a, &[0]).is_err());
    Ok(())
}

conformance!(shrunk_layers_compute_what_the_masked_ones_did, |dev| {
    // Linear pair: neurons pruned by L1 norm, their biases zeroed too, so a
    // pruned neuron outputs exactly zero.
    let a = Linear::new(8, 10, dev)?;
    let b = Linear::new(10, 3, dev)?;
    let mut p = Pruning::new();
    p.ln_structured(&a, "weight", 0.5, Norm::L1, 0)?;
    let keep = kept_channels(p.mask("weight").expect("mask"), 0)?;
    assert_eq!(keep.len(), 5);
    let bias = a.bias.as_ref().expect("bias");
    let row_mask: Vec<f32> = (0..10)
        .map(|i| if keep.contains(&i) { 1.0 } else { 0.0 })
        .collect();
    bias.set_data(&bias.mul(&Tensor::from_vec(row_mask, &[10], dev)?)?)?;
    let x = Tensor::randn(&[7, 8], dev)?;
    let masked = b.forward(&a.forward(&x)?.relu()?)?;
    let (a2, b2) = shrink_linear(&a, &b, &keep)?;
    assert_eq!(a2.weight.dims(), &[5, 8]);
    assert_eq!(b2.weight.dims(), &[3, 5]);
    let shrunk = b2.forward(&a2.forward(&x)?.relu()?)?;
    lam::testing::assert_close(&shrunk.to_vec()?, &masked.to_vec()?, 1e-5, 1e-5)?;
    // Fine-tuning the shrunk pair (the optimizers update in place) leaves
    // the original layers as they were: the shrunk ones own copies.
    let before: Vec<Vec<f32>> = [&a, &b]
        .iter()
        .flat_map(|l| l.parameters())
        .map(|p| p.to_vec())
        .collect::<Result<_>>()?;
    let mut params = a2.parameters();
    params.extend(b2.parameters());
    let mut opt = Sgd::new(params, 0.5)?.momentum(0.9);
    b2.forward(&a2.forward(&x)?.relu()?)?
        .sum_all()?
        .backward()?;
    opt.step()?;
    let after: Vec<Vec<f32>> = [&a, &b]
        .iter()
        .flat_map(|l| l.parameters())
        .map(|p| p.to_vec())
        .collect::<Result<_>>()?;
    assert_eq!(before, after, "the original layers are untouched");

    // Conv pair.
    let c1 = Conv2d::new(2, 6, 3, dev)?;
    let c2 = Conv2d::new(6, 4, 3, dev)?;
    let mut p = Pruning::new();
    p.ln_structured(&c1, "weight", 0.5, Norm::L2, 0)?;
    let keep = kept_channels(p.mask("weight").expect("mask"), 0)?;
    let bias = c1.bias.as_ref().expect("bias");
    let row_mask: Vec<f32> = (0..6)
        .map(|i| if keep.contains(&i) { 1.0 } else { 0.0 })
        .collect();
    bias.set_data(&bias.mul(&Tensor::from_vec(row_mask, &[6], dev)?)?)?;
    let x = Tensor::randn(&[2, 2, 9, 9], dev)?;
    let masked = c2.forward(&c1.forward(&x)?.relu()?)?;
    let (c1s, c2s) = shrink_conv2d(&c1, &c2, &keep)?;
    let shrunk = c2s.forward(&c1s.forward(&x)?.relu()?)?;
    lam::testing::assert_close(&shrunk.to_vec()?, &masked.to_vec()?, 1e-4, 1e-4)?;
    Ok(())
});
