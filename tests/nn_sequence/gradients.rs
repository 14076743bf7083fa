//! Gradient checks (central differences, tiny shapes: seq 3, batch 2,
//! hidden 3): the cell functions with respect to every argument, each layer
//! with respect to its input, its initial state and one parameter.

use lam::nn::functional as F;
use lam::nn::*;
use lam::prelude::*;

use crate::conformance;

use super::{check, fill_params, param_check, rnd, t};

conformance!(gradcheck_rnn_cells, |dev| {
    // input [B=2, in=2], h [2, H=3], w_ih [3, 2], w_hh [3, 3], biases [3].
    let args = [
        rnd(&[2, 2], 1, dev),
        rnd(&[2, 3], 2, dev),
        rnd(&[3, 2], 3, dev),
        rnd(&[3, 3], 4, dev),
        rnd(&[3], 5, dev),
        rnd(&[3], 6, dev),
    ];
    check(
        |a| F::rnn_tanh_cell(&a[0], &a[1], &a[2], &a[3], Some(&a[4]), Some(&a[5])),
        &args,
    )?;
    // Shifted away from the ReLU kink at 0.
    let shifted: Vec<Tensor> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 4 {
                a.add_scalar(0.3)
            } else {
                Ok(a.clone())
            }
        })
        .collect::<lam::Result<_>>()?;
    check(
        |a| F::rnn_relu_cell(&a[0], &a[1], &a[2], &a[3], Some(&a[4]), None),
        &shifted[..5],
    )
});

conformance!(gradcheck_lstm_and_gru_cells, |dev| {
    // LSTM: gates [4H = 12]; an unbatched input too.
    let lstm_args = [
        rnd(&[2, 2], 11, dev),
        rnd(&[2, 3], 12, dev),
        rnd(&[2, 3], 13, dev),
        rnd(&[12, 2], 14, dev),
        rnd(&[12, 3], 15, dev),
        rnd(&[12], 16, dev),
        rnd(&[12], 17, dev),
    ];
    let lstm = |a: &[Tensor]| -> lam::Result<Tensor> {
        let (h, c) = F::lstm_cell(
            &a[0],
            (&a[1], &a[2]),
            &a[3],
            &a[4],
            Some(&a[5]),
            Some(&a[6]),
        )?;
        Tensor::cat(&[h, c], -1)
    };
    check(lstm, &lstm_args)?;
    // GRU: gates [3H = 9]; b_hh matters separately from b_ih (inside r ⊙ …).
    let gru_args = [
        rnd(&[2, 2], 21, dev),
        rnd(&[2, 3], 22, dev),
        rnd(&[9, 2], 23, dev),
        rnd(&[9, 3], 24, dev),
        rnd(&[9], 25, dev),
        rnd(&[9], 26, dev),
    ];
    check(
        |a| F::gru_cell(&a[0], &a[1], &a[2], &a[3], Some(&a[4]), Some(&a[5])),
        &gru_args,
    )?;
    let x = rnd(&[2], 27, dev);
    let h = rnd(&[3], 28, dev);
    check(
        |a| F::gru_cell(&a[0], &a[1], &a[2], &a[3], None, None),
        &[x, h, gru_args[2].clone(), gru_args[3].clone()],
    )
});

conformance!(gradcheck_rnn_layer, |dev| {
    let config = RnnConfig::default().bidirectional(true);
    let rnn = RNN::with_config(2, 3, RnnNonlinearity::Tanh, config, dev)?;
    fill_params(&rnn, 1, 0.6)?;
    let (x, h0) = (rnd(&[3, 2, 2], 31, dev), rnd(&[2, 2, 3], 32, dev));
    // The output and the final state, with respect to the input and h0.
    check(
        |a| {
            let (out, h) = rnn.forward(&a[0], Some(&a[1]))?;
            Tensor::cat(&[out.flatten(0, -1)?, h.flatten(0, -1)?], 0)
        },
        &[x.clone(), h0],
    )?;
    param_check(&rnn, "weight_hh_l0_reverse", || {
        rnn.forward(&x, None).map(|r| r.0)
    })
});

conformance!(gradcheck_lstm_layer, |dev| {
    let config = RnnConfig::default().num_layers(2).batch_first(true);
    let lstm = LSTM::with_config(2, 3, config, dev)?;
    fill_params(&lstm, 2, 0.6)?;
    let x = rnd(&[2, 3, 2], 41, dev);
    let (h0, c0) = (rnd(&[2, 2, 3], 42, dev), rnd(&[2, 2, 3], 43, dev));
    check(
        |a| {
            let (out, (h, c)) = lstm.forward(&a[0], Some((&a[1], &a[2])))?;
            Tensor::cat(
                &[out.flatten(0, -1)?, h.flatten(0, -1)?, c.flatten(0, -1)?],
                0,
            )
        },
        &[x.clone(), h0, c0],
    )?;
    param_check(&lstm, "bias_hh_l1", || lstm.forward(&x, None).map(|r| r.0))
});

// Both of an LSTM layer's weights get their gradients from one product
// (`[x | h]ᵀ δ`, split in two): each half checked against the derivative, in
// both directions and in a layer whose input is another layer's output.
conformance!(gradcheck_lstm_layer_weights, |dev| {
    let config = RnnConfig::default().num_layers(2).bidirectional(true);
    let lstm = LSTM::with_config(2, 3, config, dev)?;
    fill_params(&lstm, 4, 0.6)?;
    let x = rnd(&[3, 2, 2], 44, dev);
    for name in [
        "weight_ih_l0",
        "weight_hh_l0_reverse",
        "weight_ih_l1_reverse",
        "weight_hh_l1",
        "bias_ih_l0_reverse",
    ] {
        param_check(&lstm, name, || lstm.forward(&x, None).map(|r| r.0))?;
    }
    Ok(())
});

conformance!(gradcheck_gru_layer, |dev| {
    let gru = GRU::new(2, 3, dev)?;
    fill_params(&gru, 3, 0.6)?;
    let (x, h0) = (rnd(&[3, 2, 2], 51, dev), rnd(&[1, 2, 3], 52, dev));
    check(
        |a| {
            let (out, h) = gru.forward(&a[0], Some(&a[1]))?;
            Tensor::cat(&[out.flatten(0, -1)?, h.flatten(0, -1)?], 0)
        },
        &[x.clone(), h0],
    )?;
    param_check(&gru, "bias_hh_l0", || gru.forward(&x, None).map(|r| r.0))
});

conformance!(gradcheck_multihead_attention, |dev| {
    let mha = MultiheadAttention::new(4, 2, dev)?;
    fill_params(&mha, 4, 0.6)?;
    let (q, k, v) = (
        rnd(&[2, 2, 4], 61, dev),
        rnd(&[3, 2, 4], 62, dev),
        rnd(&[3, 2, 4], 63, dev),
    );
    let padding = t(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0], &[2, 3], dev);
    let causal = rnd(&[2, 3], 64, dev);
    check(
        |a| {
            let (out, w) = mha.forward(
                &a[0],
                &a[1],
                &a[2],
                Some(AttnMask::Bool(&padding)),
                Some(AttnMask::Additive(&causal)),
                true,
            )?;
            let w = w.expect("weights");
            Tensor::cat(&[out.flatten(0, -1)?, w.flatten(0, -1)?], 0)
        },
        &[q.clone(), k.clone(), v.clone()],
    )?;
    param_check(&mha, "in_proj_weight", || {
        mha.forward(&q, &k, &v, Some(AttnMask::Bool(&padding)), None, false)
            .map(|r| r.0)
    })
});

conformance!(gradcheck_transformer_encoder_layer, |dev| {
    for norm_first in [false, true] {
        let config = TransformerEncoderLayerConfig {
            dim_feedforward: 5,
            dropout: 0.0,
            activation: TransformerActivation::Gelu,
            norm_first,
            ..Default::default()
        };
        let layer = TransformerEncoderLayer::with_config(4, 2, config, dev)?;
        fill_params(&layer, 5, 0.6)?;
        // Spread out, so no LayerNorm row has a tiny variance (whose sharp
        // curvature would defeat central differences at eps 1e-2).
        let x = rnd(&[3, 2, 4], 71, dev).mul_scalar(2.0)?;
        let mask = causal_mask(3, dev)?;
        check(
            |a| layer.forward(&a[0], Some(AttnMask::Bool(&mask)), None),
            std::slice::from_ref(&x),
        )?;
        param_check(&layer, "norm1.weight", || layer.forward(&x, None, None))?;
    }
    Ok(())
});
