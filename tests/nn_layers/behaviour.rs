//! Behaviour that depends on the mode: Dropout and BatchNorm in training and
//! evaluation; and a small CNN built from the layers that must learn.

use lam::nn::*;
use lam::prelude::*;

use crate::conformance;

use super::t;
use crate::common;

conformance!(dropout_train_and_eval, |dev| {
    let p = 0.3;
    let drop = Dropout::new(p)?;
    let x = Tensor::full(&[20_000], 2.0, dev)?.requires_grad_()?;
    let y = drop.forward(&x)?;
    let values = y.to_vec()?;
    let kept = 2.0 / (1.0 - p);
    assert!(values.iter().all(|&v| v == 0.0 || (v - kept).abs() < 1e-5));
    let dropped = values.iter().filter(|&&v| v == 0.0).count() as f32 / values.len() as f32;
    assert!(
        (dropped - p).abs() < 0.02,
        "dropped fraction {dropped}, expected {p}"
    );
    // The gradient is the same mask, scaled.
    y.sum_all()?.backward()?;
    let g = x.grad().expect("gradient").to_vec()?;
    for (gv, yv) in g.iter().zip(&values) {
        assert!((gv * 2.0 - yv).abs() < 1e-5);
    }
    // Two calls draw different masks.
    assert_ne!(drop.forward(&x)?.to_vec()?, values);
    // Eval: the identity, and the flag is reported through visit.
    drop.eval();
    assert!(!drop.is_training());
    common::close(&drop.forward(&x)?.to_vec()?, &x.to_vec()?, 0.0);
    drop.train();
    assert!(drop.is_training());
    // Edge probabilities.
    common::close(
        &Dropout::new(0.0)?.forward(&x)?.to_vec()?,
        &x.to_vec()?,
        0.0,
    );
    common::close(
        &Dropout::new(1.0)?.forward(&x)?.to_vec()?,
        &[0.0; 20_000],
        0.0,
    );
    Ok(())
});

conformance!(batch_norm_train_and_eval, |dev| {
    let bn = BatchNorm1d::new(2, dev)?;
    // Channel 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1 constant 5.
    let x = t(&[1.0, 5.0, 2.0, 5.0, 3.0, 5.0, 6.0, 5.0], &[4, 2], dev);
    let y = bn.forward(&x)?.to_vec()?;
    let s = (3.5f32 + 1e-5).sqrt();
    common::close(
        &y,
        &[-2.0 / s, 0.0, -1.0 / s, 0.0, 0.0, 0.0, 3.0 / s, 0.0],
        1e-5,
    );
    let rm = bn.running_mean.as_ref().expect("tracked");
    let rv = bn.running_var.as_ref().expect("tracked");
    let count = bn.num_batches_tracked.as_ref().expect("tracked");
    common::close(&rm.to_vec()?, &[0.3, 0.5], 1e-6);
    common::close(&rv.to_vec()?, &[0.9 + 0.1 * 14.0 / 3.0, 0.9], 1e-6);
    assert_eq!(count.to_vec_i32()?, vec![1]);
    bn.forward(&x)?;
    assert_eq!(count.to_vec_i32()?, vec![2]);
    common::close(&rm.to_vec()?, &[0.57, 0.95], 1e-6);

    // Eval: running statistics, nothing updated, no batch dependence.
    bn.eval();
    let (m, v) = (rm.to_vec()?, rv.to_vec()?);
    let single = t(&[4.0, 1.0], &[1, 2], dev);
    let y = bn.forward(&single)?.to_vec()?;
    let expected: Vec<f32> = [4.0f32, 1.0]
        .iter()
        .enumerate()
        .map(|(c, x)| (x - m[c]) / (v[c] + 1e-5).sqrt())
        .collect();
    common::close(&y, &expected, 1e-5);
    common::close(&rm.to_vec()?, &m, 0.0);
    assert_eq!(count.to_vec_i32()?, vec![2]);
    // Training with one value per channel is an error (as PyTorch), and changes nothing.
    bn.train();
    assert!(bn.forward(&single).is_err());
    assert_eq!(count.to_vec_i32()?, vec![2]);
    common::close(&rm.to_vec()?, &m, 0.0);
    // Mode reaches layers nested in containers.
    let seq = Sequential::new().add(Linear::new(2, 2, dev)?).add(bn);
    seq.eval();
    assert!(seq.forward(&single).is_ok());
    Ok(())
});

conformance!(small_cnn_learns_bar_orientation, |dev| {
    // 6×6 images with one horizontal (class 0) or vertical (class 1) bar.
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for pos in 0..6 {
        for class in 0..2 {
            let mut img = [0f32; 36];
            for i in 0..6 {
                let (r, c) = if class == 0 { (pos, i) } else { (i, pos) };
                img[r * 6 + c] = 1.0;
            }
            images.extend(img);
            labels.push(class);
        }
    }
    let x = t(&images, &[12, 1, 6, 6], dev);
    let y = Tensor::from_vec_i32(labels, &[12], dev)?;
    let model = Sequential::new()
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
        .add(Flatten::new())
        .add(Dropout::new(0.1)?)
        .add(Linear::new(36, 2, dev)?);
    let loss_of = |m: &Sequential| -> lam::Result<f32> { m.forward(&x)?.cross_entropy(&y)?.item() };
    model.eval();
    let initial = loss_of(&model)?;
    model.train();
    for _ in 0..60 {
        model.zero_grad();
        model.forward(&x)?.cross_entropy(&y)?.backward()?;
        lam::no_grad(|| -> lam::Result<()> {
            for p in model.parameters() {
                if let Some(g) = p.grad() {
                    p.set_data(&p.sub(&g.mul_scalar(0.3)?)?)?;
                }
            }
            Ok(())
        })?;
    }
    model.eval();
    let logits = model.forward(&x)?;
    let final_loss = logits.cross_entropy(&y)?.item()?;
    let correct = logits.argmax(1, false)?.eq(&y)?.sum_all()?.item()?;
    assert!(
        final_loss < initial / 5.0,
        "loss {initial} → {final_loss}: did not fall 5×"
    );
    assert_eq!(correct, 12.0, "accuracy {correct}/12");
    Ok(())
});
