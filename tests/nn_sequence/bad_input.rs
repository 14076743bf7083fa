//! Bad input: each mistake gives an error naming it, never a panic.

use lam::nn::functional as F;
use lam::nn::*;
use lam::prelude::*;

use crate::conformance;

use super::rnd;

fn expect_err<T>(what: &str, r: lam::Result<T>, needle: &str) {
    match r {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "{what}: error {msg:?} does not mention {needle:?}"
            );
        }
    }
}

conformance!(recurrent_bad_inputs_give_errors, |dev| {
    let rnn = RNN::new(3, 4, dev)?;
    expect_err(
        "wrong feature size",
        rnn.forward(&rnd(&[5, 2, 2], 1, dev), None),
        "[seq, batch, 3]",
    );
    let batch_first = GRU::with_config(3, 4, RnnConfig::default().batch_first(true), dev)?;
    expect_err(
        "wrong feature size, batch_first",
        batch_first.forward(&rnd(&[2, 5, 4], 1, dev), None),
        "[batch, seq, 3]",
    );
    expect_err(
        "rank 4",
        rnn.forward(&rnd(&[1, 5, 2, 3], 1, dev), None),
        "rank",
    );
    expect_err("rank 1", Module::forward(&rnn, &rnd(&[3], 1, dev)), "rank");
    expect_err(
        "wrong h0 batch",
        rnn.forward(&rnd(&[5, 2, 3], 1, dev), Some(&rnd(&[1, 3, 4], 2, dev))),
        "initial state of shape [1, 2, 4]",
    );
    expect_err(
        "h0 for the wrong number of layers",
        rnn.forward(&rnd(&[5, 2, 3], 1, dev), Some(&rnd(&[2, 2, 4], 2, dev))),
        "initial state",
    );
    expect_err(
        "unbatched with a batched h0",
        rnn.forward(&rnd(&[5, 3], 1, dev), Some(&rnd(&[1, 2, 4], 2, dev))),
        "initial state of shape [1, 4]",
    );
    let lstm = LSTM::new(3, 4, dev)?;
    let (h0, c0) = (rnd(&[1, 2, 4], 2, dev), rnd(&[1, 2, 3], 3, dev));
    expect_err(
        "wrong c0",
        lstm.forward(&rnd(&[5, 2, 3], 1, dev), Some((&h0, &c0))),
        "initial state",
    );
    expect_err(
        "empty sequence",
        lstm.forward(&Tensor::zeros(&[0, 2, 3], dev)?, None),
        "non-empty",
    );
    let labels = Tensor::from_vec_i32(vec![0; 6], &[2, 1, 3], dev)?;
    expect_err("integer input", lstm.forward(&labels, None), "dtype");

    expect_err("hidden 0", RNN::new(3, 0, dev), "positive");
    expect_err(
        "no layers",
        GRU::with_config(3, 4, RnnConfig::default().num_layers(0), dev),
        "positive",
    );
    expect_err(
        "dropout above 1",
        LSTM::with_config(3, 4, RnnConfig::default().dropout(1.5), dev),
        "dropout",
    );

    // Cell functions with mismatched weights.
    let (x, h) = (rnd(&[2, 3], 1, dev), rnd(&[2, 4], 2, dev));
    expect_err(
        "lstm_cell weight_hh not 4H",
        F::lstm_cell(
            &x,
            (&h, &h),
            &rnd(&[16, 3], 3, dev),
            &rnd(&[12, 4], 4, dev),
            None,
            None,
        ),
        "weight_hh",
    );
    expect_err(
        "gru_cell weight_ih",
        F::gru_cell(
            &x,
            &h,
            &rnd(&[9, 3], 3, dev),
            &rnd(&[12, 4], 4, dev),
            None,
            None,
        ),
        "weight_ih",
    );
    expect_err(
        "rnn_tanh_cell wrong input",
        F::rnn_tanh_cell(
            &rnd(&[2, 5], 1, dev),
            &h,
            &rnd(&[4, 3], 3, dev),
            &rnd(&[4, 4], 4, dev),
            None,
            None,
        ),
        "input",
    );
    expect_err(
        "rnn_relu_cell wrong hidden",
        F::rnn_relu_cell(
            &x,
            &rnd(&[3, 4], 2, dev),
            &rnd(&[4, 3], 3, dev),
            &rnd(&[4, 4], 4, dev),
            None,
            None,
        ),
        "state",
    );
    expect_err(
        "gru_cell wrong bias",
        F::gru_cell(
            &x,
            &h,
            &rnd(&[12, 3], 3, dev),
            &rnd(&[12, 4], 4, dev),
            Some(&rnd(&[4], 5, dev)),
            None,
        ),
        "bias",
    );
    Ok(())
});

conformance!(attention_bad_inputs_give_errors, |dev| {
    expect_err(
        "embed_dim not divisible",
        MultiheadAttention::new(5, 2, dev),
        "divisible",
    );
    expect_err("no heads", MultiheadAttention::new(4, 0, dev), "positive");
    let mha = MultiheadAttention::new(4, 2, dev)?;
    let (q, k) = (rnd(&[3, 2, 4], 1, dev), rnd(&[5, 2, 4], 2, dev));
    expect_err(
        "query embed dim",
        mha.forward(&rnd(&[3, 2, 5], 1, dev), &k, &k, None, None, false),
        "embed_dim 4",
    );
    expect_err(
        "value length differs",
        mha.forward(&q, &k, &rnd(&[4, 2, 4], 3, dev), None, None, false),
        "key and value",
    );
    expect_err(
        "batch differs",
        mha.forward(
            &q,
            &rnd(&[5, 3, 4], 3, dev),
            &rnd(&[5, 3, 4], 3, dev),
            None,
            None,
            false,
        ),
        "batch size 2",
    );
    expect_err(
        "unbatched key with batched query",
        mha.forward(&q, &k.get(0)?, &k.get(0)?, None, None, false),
        "rank",
    );
    expect_err(
        "rank 4",
        Module::forward(&mha, &rnd(&[1, 3, 2, 4], 1, dev)),
        "rank",
    );
    let bad_mask = rnd(&[3, 4], 4, dev);
    expect_err(
        "attn_mask shape",
        mha.forward(&q, &k, &k, None, Some(AttnMask::Bool(&bad_mask)), false),
        "attn_mask of shape [3, 5]",
    );
    let bad_padding = rnd(&[2, 4], 5, dev);
    expect_err(
        "key_padding_mask shape",
        mha.forward(&q, &k, &k, Some(AttnMask::Bool(&bad_padding)), None, false),
        "key_padding_mask of shape [2, 5]",
    );

    expect_err(
        "nhead does not divide d_model",
        TransformerEncoderLayer::new(6, 4, dev),
        "divisible",
    );
    expect_err(
        "dim_feedforward 0",
        TransformerEncoderLayer::with_config(
            4,
            2,
            TransformerEncoderLayerConfig {
                dim_feedforward: 0,
                ..Default::default()
            },
            dev,
        ),
        "dim_feedforward",
    );
    let enc = TransformerEncoderLayer::with_config(
        4,
        2,
        TransformerEncoderLayerConfig {
            dim_feedforward: 4,
            ..Default::default()
        },
        dev,
    )?;
    expect_err(
        "encoder wrong d_model",
        Module::forward(&enc, &rnd(&[3, 2, 3], 1, dev)),
        "embed_dim 4",
    );
    Ok(())
});
