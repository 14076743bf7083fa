//! Structure: PyTorch's parameter and buffer names, shapes and counts, the
//! default initialisation of each layer, and the `nn::init` schemes.

use lam::nn::init::{self, FanMode, Nonlinearity};
use lam::nn::*;
use lam::prelude::*;

use crate::conformance;

use crate::common;

fn names_and_shapes(m: &dyn Module) -> Vec<(String, Vec<usize>)> {
    m.state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.shape()))
        .collect()
}

fn owned(v: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    v.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
}

conformance!(parameter_names_shapes_and_counts, |dev| {
    let linear = Linear::new(3, 2, dev)?;
    assert_eq!(
        names_and_shapes(&linear),
        owned(&[("weight", &[2, 3]), ("bias", &[2])])
    );
    assert_eq!(linear.num_parameters(), 8);
    let no_bias = Linear::with_config(3, 2, LinearConfig { bias: false }, dev)?;
    assert_eq!(names_and_shapes(&no_bias), owned(&[("weight", &[2, 3])]));

    let conv = Conv2d::with_config(4, 8, (3, 2), Conv2dConfig::default().groups(2), dev)?;
    assert_eq!(
        names_and_shapes(&conv),
        owned(&[("weight", &[8, 2, 3, 2]), ("bias", &[8])])
    );
    assert_eq!(conv.num_parameters(), 8 * 2 * 3 * 2 + 8);
    let conv1 = Conv1d::new(3, 5, 4, dev)?;
    assert_eq!(
        names_and_shapes(&conv1),
        owned(&[("weight", &[5, 3, 4]), ("bias", &[5])])
    );

    let bn = BatchNorm2d::new(3, dev)?;
    assert_eq!(
        names_and_shapes(&bn),
        owned(&[
            ("weight", &[3]),
            ("bias", &[3]),
            ("running_mean", &[3]),
            ("running_var", &[3]),
            ("num_batches_tracked", &[]),
        ])
    );
    assert_eq!(bn.num_parameters(), 6);
    assert_eq!(
        bn.num_batches_tracked.as_ref().map(|t| t.dtype()),
        Some(DType::I32)
    );
    let bn_plain = BatchNorm1d::with_config(
        3,
        BatchNormConfig {
            affine: false,
            track_running_stats: false,
            ..Default::default()
        },
        dev,
    )?;
    assert!(bn_plain.state_dict().is_empty());

    let ln = LayerNorm::new(&[2, 3], dev)?;
    assert_eq!(
        names_and_shapes(&ln),
        owned(&[("weight", &[2, 3]), ("bias", &[2, 3])])
    );
    let emb = Embedding::new(10, 4, dev)?;
    assert_eq!(names_and_shapes(&emb), owned(&[("weight", &[10, 4])]));
    let prelu = PReLU::new(3, dev)?;
    assert_eq!(names_and_shapes(&prelu), owned(&[("weight", &[3])]));
    common::close(&prelu.weight.to_vec()?, &[0.25; 3], 0.0);

    let stateless: [Box<dyn Module>; 13] = [
        Box::new(ReLU),
        Box::new(LeakyReLU::default()),
        Box::new(ReLU6),
        Box::new(ELU::default()),
        Box::new(GELU::default()),
        Box::new(SiLU),
        Box::new(Sigmoid),
        Box::new(Tanh),
        Box::new(Softmax::new(1)),
        Box::new(LogSoftmax::new(1)),
        Box::new(MaxPool2d::new(2)?),
        Box::new(AdaptiveAvgPool2d::new(1)?),
        Box::new(Flatten::new()),
    ];
    for m in &stateless {
        assert!(m.state_dict().is_empty());
    }

    let seq = Sequential::new()
        .add(Linear::new(4, 3, dev)?)
        .add(ReLU)
        .add(Dropout::new(0.1)?)
        .add(
            Sequential::new()
                .add(BatchNorm1d::new(3, dev)?)
                .add(Linear::new(3, 1, dev)?),
        );
    let names: Vec<String> = seq.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "3.0.weight",
            "3.0.bias",
            "3.0.running_mean",
            "3.0.running_var",
            "3.0.num_batches_tracked",
            "3.1.weight",
            "3.1.bias"
        ]
    );
    assert_eq!(seq.num_parameters(), 4 * 3 + 3 + 3 + 3 + 3 + 1);
    assert!(seq
        .parameters()
        .iter()
        .all(|p| p.requires_grad() && p.is_leaf()));
    Ok(())
});

conformance!(default_initialisation_matches_pytorch, |dev| {
    // Linear and Conv: U(-1/√fan_in, 1/√fan_in) for weight and bias.
    let linear = Linear::new(16, 64, dev)?;
    let conv = Conv2d::new(4, 32, 3, dev)?;
    for (w, b, fan_in) in [
        (&linear.weight, linear.bias.as_ref(), 16.0f32),
        (&conv.weight, conv.bias.as_ref(), 36.0),
    ] {
        let bound = 1.0 / fan_in.sqrt();
        for values in [
            w.to_vec()?,
            b.map(|b| b.to_vec()).transpose()?.unwrap_or_default(),
        ] {
            assert!(values.iter().all(|v| v.abs() <= bound), "outside ±{bound}");
            let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(max > 0.7 * bound, "values do not fill ±{bound} (max {max})");
        }
    }
    // Embedding: N(0, 1).
    let emb = Embedding::new(100, 40, dev)?.weight.to_vec()?;
    let (mean, std) = moments(&emb);
    assert!(
        mean.abs() < 0.08 && (std - 1.0).abs() < 0.08,
        "embedding mean {mean} std {std}"
    );
    // BatchNorm / LayerNorm: weight 1, bias 0, running stats 0 and 1.
    let bn = BatchNorm1d::new(2, dev)?;
    for (t, v) in [
        (&bn.weight, 1.0),
        (&bn.bias, 0.0),
        (&bn.running_mean, 0.0),
        (&bn.running_var, 1.0),
    ] {
        common::close(&t.as_ref().expect("present").to_vec()?, &[v; 2], 0.0);
    }
    Ok(())
});

fn moments(v: &[f32]) -> (f32, f32) {
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
    (mean, var.sqrt())
}

#[test]
fn init_gains_and_fans_match_torch() {
    // torch.nn.init.calculate_gain
    assert_eq!(init::calculate_gain(Nonlinearity::Linear), 1.0);
    assert_eq!(init::calculate_gain(Nonlinearity::Sigmoid), 1.0);
    assert!((init::calculate_gain(Nonlinearity::Tanh) - 5.0 / 3.0).abs() < 1e-6);
    assert!((init::calculate_gain(Nonlinearity::Relu) - std::f32::consts::SQRT_2).abs() < 1e-6);
    assert!((init::calculate_gain(Nonlinearity::LeakyRelu(0.01)) - 1.414_143).abs() < 1e-5);
    assert!(
        (init::calculate_gain(Nonlinearity::LeakyRelu(5f32.sqrt())) - (1.0f32 / 3.0).sqrt()).abs()
            < 1e-6
    );
    assert_eq!(init::calculate_gain(Nonlinearity::Selu), 0.75);
    assert_eq!(init::fans(&[8, 4]).ok(), Some((4, 8)));
    assert_eq!(init::fans(&[8, 4, 3, 2]).ok(), Some((24, 48)));
    assert!(init::fans(&[5]).is_err());
}

conformance!(init_schemes_have_the_right_spread, |dev| {
    let shape = [200, 100, 3];
    let (fan_in, fan_out) = (300.0f32, 600.0f32);
    let gain = 2.0;
    let xu = init::xavier_uniform(&shape, gain, dev)?.to_vec()?;
    let bound = gain * (6.0 / (fan_in + fan_out)).sqrt();
    assert!(xu.iter().all(|v| v.abs() <= bound));
    let expected_std = gain * (2.0 / (fan_in + fan_out)).sqrt();
    let (_, std) = moments(&xu);
    assert!(
        (std / expected_std - 1.0).abs() < 0.03,
        "xavier_uniform std {std} vs {expected_std}"
    );
    let (_, std) = moments(&init::xavier_normal(&shape, gain, dev)?.to_vec()?);
    assert!(
        (std / expected_std - 1.0).abs() < 0.03,
        "xavier_normal std {std} vs {expected_std}"
    );

    let relu_std = 2f32.sqrt() / fan_in.sqrt();
    let ku = init::kaiming_uniform(&shape, FanMode::FanIn, Nonlinearity::Relu, dev)?.to_vec()?;
    assert!(ku.iter().all(|v| v.abs() <= 3f32.sqrt() * relu_std));
    let (_, std) = moments(&ku);
    assert!(
        (std / relu_std - 1.0).abs() < 0.03,
        "kaiming_uniform std {std} vs {relu_std}"
    );
    let fan_out_std = (5.0 / 3.0) / fan_out.sqrt();
    let (mean, std) =
        moments(&init::kaiming_normal(&shape, FanMode::FanOut, Nonlinearity::Tanh, dev)?.to_vec()?);
    assert!(
        mean.abs() < 0.01 && (std / fan_out_std - 1.0).abs() < 0.03,
        "kaiming_normal std {std}"
    );

    // In-place forms keep the parameter's identity.
    let layer = Linear::new(50, 40, dev)?;
    let id = layer.weight.id();
    init::xavier_uniform_(&layer.weight, 1.0)?;
    init::kaiming_normal_(&layer.weight, FanMode::FanIn, Nonlinearity::Relu)?;
    assert_eq!(layer.weight.id(), id);
    assert!(layer.weight.requires_grad());
    init::constant_(&layer.weight, 0.5)?;
    common::close(&layer.weight.to_vec()?, &[0.5; 2000], 0.0);
    assert!(init::xavier_uniform(&[3], 1.0, dev).is_err());
    assert!(init::kaiming_normal(&[0, 4], FanMode::FanOut, Nonlinearity::Relu, dev).is_err());
    Ok(())
});
