//! Bad input: each mistake gives an error naming it, never a panic; and
//! the inputs PyTorch accepts that are easy to get wrong (empty batches,
//! unbatched images, NaN).

use lam::nn::functional as F;
use lam::nn::*;
use lam::prelude::*;

use crate::conformance;

use super::rnd;
use crate::common;

fn expect_err(what: &str, r: lam::Result<Tensor>, needle: &str) {
    match r {
        Ok(t) => panic!(
            "{what}: expected an error, got a tensor of shape {:?}",
            t.dims()
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "{what}: error {msg:?} does not mention {needle:?}"
            );
        }
    }
}

conformance!(bad_inputs_give_errors, |dev| {
    let linear = Linear::new(3, 2, dev)?;
    expect_err(
        "linear wrong features",
        linear.forward(&rnd(&[2, 4], 1, dev)),
        "[*, 3]",
    );
    expect_err(
        "linear scalar",
        linear.forward(&Tensor::scalar(1.0, dev)?),
        "linear",
    );

    let conv = Conv2d::new(3, 4, 3, dev)?;
    expect_err(
        "conv wrong channels",
        conv.forward(&rnd(&[1, 2, 5, 5], 1, dev)),
        "3 channels",
    );
    expect_err("conv rank 2", conv.forward(&rnd(&[5, 5], 1, dev)), "rank");
    expect_err(
        "conv input smaller than kernel",
        conv.forward(&rnd(&[1, 3, 2, 5], 1, dev)),
        "smaller than",
    );
    let labels = Tensor::from_vec_i32(vec![0; 3 * 25], &[1, 3, 5, 5], dev)?;
    expect_err("conv integer input", conv.forward(&labels), "dtype");
    assert!(Conv2d::with_config(3, 4, 3, Conv2dConfig::default().groups(2), dev).is_err());
    assert!(Conv2d::with_config(3, 4, 3, Conv2dConfig::default().stride(0), dev).is_err());
    assert!(Conv2d::new(3, 4, 0, dev).is_err());
    assert!(Conv2d::new(0, 4, 3, dev).is_err());
    let w = rnd(&[4, 3, 3, 3], 2, dev);
    expect_err(
        "conv2d bad bias",
        F::conv2d(
            &rnd(&[1, 3, 4, 4], 1, dev),
            &w,
            Some(&rnd(&[3], 1, dev)),
            1,
            0,
            1,
            1,
        ),
        "bias",
    );
    expect_err(
        "conv2d rank-3 weight",
        F::conv2d(
            &rnd(&[1, 3, 4, 4], 1, dev),
            &rnd(&[4, 3, 3], 1, dev),
            None,
            1,
            0,
            1,
            1,
        ),
        "rank",
    );
    let conv1 = Conv1d::new(2, 2, 3, dev)?;
    expect_err(
        "conv1d rank 4",
        conv1.forward(&rnd(&[1, 2, 3, 3], 1, dev)),
        "rank",
    );

    expect_err(
        "maxpool rank 2",
        MaxPool2d::new(2)?.forward(&rnd(&[4, 4], 1, dev)),
        "rank",
    );
    assert!(MaxPool2d::with_config(2, MaxPool2dConfig::default().padding(2)).is_err());
    assert!(MaxPool2d::new(0).is_err());
    expect_err(
        "avgpool too small",
        AvgPool2d::new(3)?.forward(&rnd(&[1, 1, 2, 2], 1, dev)),
        "smaller than",
    );
    assert!(AdaptiveAvgPool2d::new((0, 2)).is_err());
    expect_err(
        "adaptive rank 5",
        AdaptiveAvgPool2d::new(2)?.forward(&rnd(&[1, 1, 1, 2, 2], 1, dev)),
        "rank",
    );

    let bn = BatchNorm2d::new(3, dev)?;
    expect_err(
        "batchnorm wrong channels",
        bn.forward(&rnd(&[2, 4, 2, 2], 1, dev)),
        "3 channels",
    );
    expect_err(
        "batchnorm2d rank 3",
        bn.forward(&rnd(&[2, 3, 4], 1, dev)),
        "rank",
    );
    expect_err(
        "batchnorm1d rank 4",
        BatchNorm1d::new(3, dev)?.forward(&rnd(&[2, 3, 1, 1], 1, dev)),
        "rank",
    );
    assert!(BatchNorm1d::new(0, dev).is_err());
    let ln = LayerNorm::new(&[4], dev)?;
    expect_err(
        "layernorm trailing shape",
        ln.forward(&rnd(&[2, 3], 1, dev)),
        "[4]",
    );
    assert!(LayerNorm::new(&[], dev).is_err());

    let emb = Embedding::new(5, 2, dev)?;
    // Wholly out of range, so an error at the call on every device (a mix
    // is reported by a GPU at the next readback: tests/index_bounds.rs).
    let bad = Tensor::from_vec_i32(vec![5, 6], &[2], dev)?;
    expect_err(
        "embedding index too large",
        emb.forward(&bad),
        "out of range",
    );
    let negative = Tensor::from_vec_i32(vec![-1], &[1], dev)?;
    expect_err(
        "embedding negative index",
        emb.forward(&negative),
        "out of range",
    );
    expect_err(
        "embedding float indices",
        emb.forward(&rnd(&[2], 1, dev)),
        "dtype",
    );
    let pad = EmbeddingConfig {
        padding_idx: Some(5),
        ..Default::default()
    };
    assert!(Embedding::with_config(5, 2, pad, dev).is_err());

    expect_err(
        "prelu channels",
        PReLU::new(3, dev)?.forward(&rnd(&[2, 4], 1, dev)),
        "channels",
    );
    expect_err(
        "softmax dim",
        Softmax::new(3).forward(&rnd(&[2, 3], 1, dev)),
        "out of range",
    );
    expect_err(
        "flatten dim",
        Flatten::new().forward(&rnd(&[3], 1, dev)),
        "out of range",
    );
    assert!(Dropout::new(1.5).is_err());
    assert!(Dropout::new(-0.1).is_err());
    assert!(Dropout::new(f32::NAN).is_err());
    let seq = Sequential::new()
        .add(Linear::new(3, 4, dev)?)
        .add(Linear::new(5, 1, dev)?);
    expect_err(
        "sequential mismatch",
        seq.forward(&rnd(&[2, 3], 1, dev)),
        "[*, 5]",
    );
    Ok(())
});

#[test]
fn inputs_on_another_device_are_errors() {
    let here = Device::cpu();
    let other = Device::new(std::sync::Arc::new(lam_cpu::CpuBackend::new()));
    let x = Tensor::ones(&[2, 3], &other).expect("tensor");
    let err = Linear::new(3, 2, &here)
        .expect("layer")
        .forward(&x)
        .expect_err("device mismatch");
    assert!(err.to_string().contains("different devices"), "{err}");
    let img = Tensor::ones(&[1, 1, 4, 4], &other).expect("tensor");
    assert!(Conv2d::new(1, 1, 3, &here)
        .expect("layer")
        .forward(&img)
        .is_err());
    assert!(BatchNorm2d::new(1, &here)
        .expect("layer")
        .forward(&img)
        .is_err());
}

conformance!(empty_batches_and_unbatched_inputs, |dev| {
    // PyTorch accepts an empty batch for these layers.
    let empty = Tensor::zeros(&[0, 3], dev)?;
    assert_eq!(Linear::new(3, 2, dev)?.forward(&empty)?.dims(), &[0, 2]);
    let conv = Conv2d::with_config(2, 4, 3, Conv2dConfig::default().padding(1), dev)?;
    assert_eq!(
        conv.forward(&Tensor::zeros(&[0, 2, 5, 5], dev)?)?.dims(),
        &[0, 4, 5, 5]
    );
    let images = Tensor::zeros(&[0, 2, 4, 4], dev)?;
    assert_eq!(MaxPool2d::new(2)?.forward(&images)?.dims(), &[0, 2, 2, 2]);
    assert_eq!(AvgPool2d::new(2)?.forward(&images)?.dims(), &[0, 2, 2, 2]);
    assert_eq!(
        AdaptiveAvgPool2d::new(3)?.forward(&images)?.dims(),
        &[0, 2, 3, 3]
    );
    let tokens = Tensor::from_vec_i32(vec![], &[0], dev)?;
    assert_eq!(Embedding::new(4, 3, dev)?.forward(&tokens)?.dims(), &[0, 3]);
    // Batch statistics of nothing are an error, as in PyTorch.
    expect_err(
        "batchnorm empty batch",
        BatchNorm2d::new(2, dev)?.forward(&images),
        "more than 1 value",
    );
    // An unbatched image gives the batched result without the batch dim.
    let x = rnd(&[2, 5, 5], 3, dev);
    let one = conv.forward(&x)?;
    let batched = conv.forward(&x.unsqueeze(0)?)?;
    assert_eq!(one.dims(), &[4, 5, 5]);
    common::close(&one.to_vec()?, &batched.to_vec()?, 1e-6);
    // NaN flows through rather than failing.
    let nan = Tensor::full(&[1, 3], f32::NAN, dev)?;
    assert!(Linear::new(3, 2, dev)?
        .forward(&nan)?
        .to_vec()?
        .iter()
        .all(|v| v.is_nan()));
    Ok(())
});
