//! Gradient checks of every layer's functional form with respect to the
//! input and each parameter (central differences on small shapes), and of a
//! few layers and containers through `Module::forward`.

use lam::nn::functional as F;
use lam::nn::*;
use lam::prelude::*;

use crate::conformance;

use super::{check, distinct, rnd, t, vals_off_zero};
use crate::common;

conformance!(gradcheck_linear, |dev| {
    let (x, w, b) = (
        rnd(&[3, 4], 1, dev),
        rnd(&[2, 4], 2, dev),
        rnd(&[2], 3, dev),
    );
    check(|a| F::linear(&a[0], &a[1], Some(&a[2])), &[x.clone(), w, b])?;
    // Through the layer, with respect to its input.
    let layer = Linear::new(4, 3, dev)?;
    check(|a| layer.forward(&a[0]), &[x])
});

conformance!(gradcheck_conv2d, |dev| {
    let (x, w, b) = (
        rnd(&[2, 4, 5, 4], 4, dev),
        rnd(&[4, 2, 3, 2], 5, dev),
        rnd(&[4], 6, dev),
    );
    check(
        |a| F::conv2d(&a[0], &a[1], Some(&a[2]), (2, 1), 1, 1, 2),
        &[x.clone(), w.clone(), b],
    )?;
    check(|a| F::conv2d(&a[0], &a[1], None, 1, (2, 1), 2, 2), &[x, w])
});

conformance!(gradcheck_conv1d, |dev| {
    let (x, w, b) = (
        rnd(&[2, 3, 7], 7, dev),
        rnd(&[2, 3, 3], 8, dev),
        rnd(&[2], 9, dev),
    );
    check(
        |a| F::conv1d(&a[0], &a[1], Some(&a[2]), 2, 1, 1, 1),
        &[x.clone(), w.clone(), b],
    )?;
    check(|a| F::conv1d(&a[0], &a[1], None, 1, 0, 2, 1), &[x, w])
});

conformance!(gradcheck_pooling, |dev| {
    let x = t(&distinct(2 * 2 * 5 * 6, 11), &[2, 2, 5, 6], dev);
    check(
        |a| F::max_pool2d(&a[0], 3, 2, 1, 1),
        std::slice::from_ref(&x),
    )?;
    check(
        |a| F::max_pool2d(&a[0], (2, 3), (1, 2), 0, (2, 1)),
        std::slice::from_ref(&x),
    )?;
    check(
        |a| F::avg_pool2d(&a[0], 3, 2, 1, true),
        std::slice::from_ref(&x),
    )?;
    check(
        |a| F::avg_pool2d(&a[0], 3, 2, 1, false),
        std::slice::from_ref(&x),
    )?;
    check(
        |a| F::adaptive_avg_pool2d(&a[0], (3, 4)),
        std::slice::from_ref(&x),
    )?;
    // Negative values: padding must act as -inf, not 0.
    let negative = x.sub_scalar(10.0)?;
    check(|a| F::max_pool2d(&a[0], 2, 2, 1, 1), &[negative])?;
    let layer = MaxPool2d::new(2)?;
    check(|a| layer.forward(&a[0]), &[x])
});

conformance!(gradcheck_batch_norm, |dev| {
    let (x, w, b) = (
        rnd(&[4, 3, 2], 12, dev),
        rnd(&[3], 13, dev),
        rnd(&[3], 14, dev),
    );
    check(
        |a| F::batch_norm(&a[0], None, None, Some(&a[1]), Some(&a[2]), true, 0.1, 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    )?;
    let (rm, rv) = (
        rnd(&[3], 15, dev),
        rnd(&[3], 16, dev).abs()?.add_scalar(0.5)?,
    );
    check(
        |a| {
            F::batch_norm(
                &a[0],
                Some(&rm),
                Some(&rv),
                Some(&a[1]),
                Some(&a[2]),
                false,
                0.1,
                1e-5,
            )
        },
        &[x, w, b],
    )?;
    // Through the 2-d layer in training mode.
    let bn = BatchNorm2d::new(2, dev)?;
    check(|a| bn.forward(&a[0]), &[rnd(&[3, 2, 2, 2], 17, dev)])
});

conformance!(gradcheck_layer_norm, |dev| {
    let (x, w, b) = (
        rnd(&[2, 3, 4], 18, dev),
        rnd(&[3, 4], 19, dev),
        rnd(&[3, 4], 20, dev),
    );
    check(
        |a| F::layer_norm(&a[0], &[3, 4], Some(&a[1]), Some(&a[2]), 1e-5),
        &[x.clone(), w, b],
    )?;
    check(|a| F::layer_norm(&a[0], &[4], None, None, 1e-5), &[x])
});

conformance!(gradcheck_embedding, |dev| {
    let idx = Tensor::from_vec_i32(vec![2, 0, 2, 3], &[2, 2], dev)?;
    check(
        |a| F::embedding(&idx, &a[0], None),
        &[rnd(&[4, 3], 21, dev)],
    )?;
    // padding_idx deliberately withholds the padding row's gradient, so
    // instead of a finite-difference check: row 2 gets nothing, row 0 its
    // one lookup, row 3 its one lookup, row 1 none.
    let w = rnd(&[4, 3], 22, dev).requires_grad_()?;
    let g = rnd(&[2, 2, 3], 23, dev);
    F::embedding(&idx, &w, Some(2))?.backward_with(&g)?;
    let gv = g.to_vec()?;
    let mut expected = vec![0.0; 12];
    expected[0..3].copy_from_slice(&gv[3..6]);
    expected[9..12].copy_from_slice(&gv[9..12]);
    common::close(&w.grad().expect("gradient").to_vec()?, &expected, 0.0);
    Ok(())
});

conformance!(gradcheck_activations, |dev| {
    let x = t(&vals_off_zero(24, 23), &[2, 3, 4], dev);
    let wide = x.mul_scalar(8.0)?; // reaches past relu6's upper kink
    type Act = fn(&Tensor) -> lam::Result<Tensor>;
    let unary: [(&str, Act); 12] = [
        ("relu", |x| F::relu(x)),
        ("leaky_relu", |x| F::leaky_relu(x, 0.2)),
        ("relu6", |x| F::relu6(x)),
        ("elu", |x| F::elu(x, 0.7)),
        ("gelu", |x| F::gelu(x)),
        ("gelu_tanh", |x| F::gelu_tanh(x)),
        ("silu", |x| F::silu(x)),
        ("sigmoid", |x| F::sigmoid(x)),
        ("tanh", |x| F::tanh(x)),
        ("softmax", |x| F::softmax(x, 1)),
        ("log_softmax", |x| F::log_softmax(x, -1)),
        ("gelu layer", |x| GELU::default().forward(x)),
    ];
    for (name, f) in unary {
        let input = if name == "relu6" {
            wide.clone()
        } else {
            x.clone()
        };
        check(|a| f(&a[0]), &[input])
            .map_err(|e| Error::invalid("gradcheck", format!("{name}: {e}")))?;
    }
    // PReLU with respect to input and the (shared or per-channel) slope.
    check(
        |a| F::prelu(&a[0], &a[1]),
        &[x.clone(), t(&[0.3], &[1], dev)],
    )?;
    check(
        |a| F::prelu(&a[0], &a[1]),
        &[x, t(&[0.1, -0.4, 0.6], &[3], dev)],
    )
});

conformance!(gradcheck_containers, |dev| {
    let seq = Sequential::new()
        .add(Conv2d::with_config(
            2,
            3,
            3,
            Conv2dConfig::default().padding(1),
            dev,
        )?)
        .add(SiLU)
        .add(AvgPool2d::new(2)?)
        .add(Flatten::new())
        .add(Linear::new(12, 2, dev)?);
    check(|a| seq.forward(&a[0]), &[rnd(&[2, 2, 4, 4], 24, dev)])
});
