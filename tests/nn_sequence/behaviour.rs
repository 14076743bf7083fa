//! Structure and behaviour: PyTorch's parameter names, shapes and
//! initialisation; output and state shapes; `batch_first` and unbatched
//! inputs agreeing with the default layout; dropout between layers in
//! training mode only; masks; `Module::forward`; and a GRU that learns.

use lam::nn::*;
use lam::optim::{Adam, Optimizer};
use lam::prelude::*;

use crate::common;
use crate::conformance;

use super::{copy_state, fill_params, rnd, t};

fn names_and_shapes(m: &dyn Module) -> Vec<(String, Vec<usize>)> {
    m.state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.shape()))
        .collect()
}

fn owned(v: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    v.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
}

#[test]
fn parameter_names_shapes_and_init() -> lam::Result<()> {
    let dev = Device::cpu();
    let config = RnnConfig::default().num_layers(2).bidirectional(true);
    let lstm = LSTM::with_config(5, 3, config, &dev)?;
    let layer = |k: &str, input: usize| {
        vec![
            (format!("weight_ih_{k}"), vec![12, input]),
            (format!("weight_hh_{k}"), vec![12, 3]),
            (format!("bias_ih_{k}"), vec![12]),
            (format!("bias_hh_{k}"), vec![12]),
        ]
    };
    let expected: Vec<_> = [
        layer("l0", 5),
        layer("l0_reverse", 5),
        layer("l1", 6),
        layer("l1_reverse", 6),
    ]
    .concat();
    assert_eq!(names_and_shapes(&lstm), expected);
    // Every parameter U(-1/√H, 1/√H), and not constant.
    let bound = 1.0 / 3f32.sqrt();
    for (name, p) in lstm.named_parameters() {
        let v = p.to_vec()?;
        assert!(v.iter().all(|x| x.abs() <= bound), "{name} out of bounds");
        assert!(v.iter().any(|&x| x != v[0]), "{name} is constant");
        assert!(p.requires_grad());
    }

    let gru = GRU::with_config(2, 4, RnnConfig::default().bias(false), &dev)?;
    assert_eq!(
        names_and_shapes(&gru),
        owned(&[("weight_ih_l0", &[12, 2]), ("weight_hh_l0", &[12, 4])])
    );
    let rnn = RNN::new(2, 4, &dev)?;
    assert_eq!(rnn.num_parameters(), 4 * 2 + 4 * 4 + 4 + 4);
    assert_eq!(rnn.nonlinearity(), RnnNonlinearity::Tanh);

    let mha = MultiheadAttention::new(6, 3, &dev)?;
    assert_eq!(
        names_and_shapes(&mha),
        owned(&[
            ("in_proj_weight", &[18, 6]),
            ("in_proj_bias", &[18]),
            ("out_proj.weight", &[6, 6]),
            ("out_proj.bias", &[6]),
        ])
    );
    // PyTorch: Xavier-uniform in_proj_weight, zero biases.
    let xavier = (6.0f32 / (6.0 + 18.0)).sqrt();
    assert!(mha
        .in_proj_weight
        .as_ref()
        .expect("packed projections")
        .to_vec()?
        .iter()
        .all(|x| x.abs() <= xavier));
    assert!(mha
        .in_proj_bias
        .as_ref()
        .expect("bias")
        .to_vec()?
        .iter()
        .all(|&x| x == 0.0));
    assert!(mha
        .out_proj
        .bias
        .as_ref()
        .expect("bias")
        .to_vec()?
        .iter()
        .all(|&x| x == 0.0));
    let no_bias = MultiheadAttention::with_config(
        4,
        2,
        MultiheadAttentionConfig {
            bias: false,
            ..Default::default()
        },
        &dev,
    )?;
    assert_eq!(
        names_and_shapes(&no_bias),
        owned(&[("in_proj_weight", &[12, 4]), ("out_proj.weight", &[4, 4])])
    );

    let enc = TransformerEncoderLayer::with_config(
        4,
        2,
        TransformerEncoderLayerConfig {
            dim_feedforward: 7,
            ..Default::default()
        },
        &dev,
    )?;
    assert_eq!(
        names_and_shapes(&enc),
        owned(&[
            ("self_attn.in_proj_weight", &[12, 4]),
            ("self_attn.in_proj_bias", &[12]),
            ("self_attn.out_proj.weight", &[4, 4]),
            ("self_attn.out_proj.bias", &[4]),
            ("linear1.weight", &[7, 4]),
            ("linear1.bias", &[7]),
            ("linear2.weight", &[4, 7]),
            ("linear2.bias", &[4]),
            ("norm1.weight", &[4]),
            ("norm1.bias", &[4]),
            ("norm2.weight", &[4]),
            ("norm2.bias", &[4]),
        ])
    );
    // Train/eval reaches every dropout, including the attention's.
    enc.eval();
    assert!(!enc.self_attn.is_training());
    enc.train();
    assert!(enc.self_attn.is_training());
    Ok(())
}

conformance!(state_shapes_and_layouts, |dev| {
    let (seq, batch, input, hidden) = (3, 2, 2, 3);
    let seq_first = RnnConfig::default().num_layers(2).bidirectional(true);
    let batch_first = seq_first.batch_first(true);
    let x = rnd(&[seq, batch, input], 1, dev);
    let xb = x.transpose(0, 1)?.contiguous()?;

    // LSTM: shapes, and batch_first equals seq-first with the same weights.
    let a = LSTM::with_config(input, hidden, seq_first, dev)?;
    let b = LSTM::with_config(input, hidden, batch_first, dev)?;
    copy_state(&a, &b)?;
    let (out, (h, c)) = a.forward(&x, None)?;
    assert_eq!(out.dims(), [seq, batch, 2 * hidden]);
    assert_eq!(h.dims(), [4, batch, hidden]);
    assert_eq!(c.dims(), [4, batch, hidden]);
    let (out_b, (h_b, c_b)) = b.forward(&xb, None)?;
    assert_eq!(out_b.dims(), [batch, seq, 2 * hidden]);
    common::close(&out_b.transpose(0, 1)?.to_vec()?, &out.to_vec()?, 1e-6);
    common::close(&h_b.to_vec()?, &h.to_vec()?, 1e-6);
    common::close(&c_b.to_vec()?, &c.to_vec()?, 1e-6);
    // The last step of the forward direction is h_n of the top layer.
    let last = out.get(seq - 1)?.narrow(-1, 0, hidden)?;
    common::close(&last.to_vec()?, &h.get(2)?.to_vec()?, 1e-6);
    // Module::forward is the output from zero state.
    common::close(&Module::forward(&a, &x)?.to_vec()?, &out.to_vec()?, 0.0);

    // GRU and RNN: batch_first equivalence; unbatched equals batch of one.
    let g1 = GRU::with_config(input, hidden, seq_first, dev)?;
    let g2 = GRU::with_config(input, hidden, batch_first, dev)?;
    copy_state(&g1, &g2)?;
    let (o1, h1) = g1.forward(&x, None)?;
    let (o2, h2) = g2.forward(&xb, None)?;
    assert_eq!(h1.dims(), [4, batch, hidden]);
    common::close(&o2.transpose(0, 1)?.to_vec()?, &o1.to_vec()?, 1e-6);
    common::close(&h2.to_vec()?, &h1.to_vec()?, 1e-6);
    let rnn = RNN::new(input, hidden, dev)?;
    let x0 = x.narrow(1, 0, 1)?;
    let h0 = rnd(&[1, 1, hidden], 2, dev);
    let (ob, hb) = rnn.forward(&x0, Some(&h0))?;
    let (ou, hu) = rnn.forward(&x0.squeeze(1)?, Some(&h0.squeeze(1)?))?;
    assert_eq!(ou.dims(), [seq, hidden]);
    assert_eq!(hu.dims(), [1, hidden]);
    common::close(&ou.to_vec()?, &ob.to_vec()?, 1e-6);
    common::close(&hu.to_vec()?, &hb.to_vec()?, 1e-6);

    // Attention: batch_first and unbatched agree with the default layout.
    let m1 = MultiheadAttention::new(4, 2, dev)?;
    let m2 = MultiheadAttention::with_config(
        4,
        2,
        MultiheadAttentionConfig {
            batch_first: true,
            ..Default::default()
        },
        dev,
    )?;
    copy_state(&m1, &m2)?;
    let (q, k) = (rnd(&[3, 2, 4], 3, dev), rnd(&[5, 2, 4], 4, dev));
    let (y1, w1) = m1.forward(&q, &k, &k, None, None, true)?;
    let (y2, w2) = m2.forward(
        &q.transpose(0, 1)?,
        &k.transpose(0, 1)?,
        &k.transpose(0, 1)?,
        None,
        None,
        true,
    )?;
    let (w1, w2) = (w1.expect("weights"), w2.expect("weights"));
    assert_eq!(y1.dims(), [3, 2, 4]);
    assert_eq!(w1.dims(), [2, 3, 5]);
    common::close(&y2.transpose(0, 1)?.to_vec()?, &y1.to_vec()?, 1e-5);
    common::close(&w2.to_vec()?, &w1.to_vec()?, 1e-6);
    // Weights are a distribution over the keys.
    common::close(&w1.sum(&[-1], false)?.to_vec()?, &[1.0; 6], 1e-5);
    let (qu, ku) = (q.get(0)?, k.get(0)?);
    let (yu, wu) = m1.forward(&qu, &ku, &ku, None, None, true)?;
    assert_eq!(yu.dims(), [2, 4]);
    assert!(m1.forward(&q, &k, &k, None, None, false)?.1.is_none());
    // Unbatched is a batch of one without its batch dim, weights included.
    let wu = wu.expect("weights");
    assert_eq!(wu.dims(), [2, 2]);
    let (qb, kb) = (qu.unsqueeze(1)?, ku.unsqueeze(1)?);
    let (yb, wb) = m1.forward(&qb, &kb, &kb, None, None, true)?;
    let wb = wb.expect("weights");
    assert_eq!(wb.dims(), [1, 2, 2]);
    common::close(&yu.to_vec()?, &yb.to_vec()?, 1e-6);
    common::close(&wu.to_vec()?, &wb.to_vec()?, 1e-6);
    Ok(())
});

conformance!(masks_block_attention, |dev| {
    let mha = MultiheadAttention::new(4, 2, dev)?;
    let x = rnd(&[3, 1, 4], 5, dev);
    // Causal: row i attends to keys ≤ i only.
    let causal = causal_mask(3, dev)?;
    assert_eq!(
        causal.to_vec()?,
        [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    let (_, w) = mha.forward(&x, &x, &x, None, Some(AttnMask::Bool(&causal)), true)?;
    let w = w.expect("weights").to_vec()?;
    for (i, row) in w.chunks(3).enumerate() {
        for (j, &p) in row.iter().enumerate() {
            assert!(j <= i || p == 0.0, "row {i} attends to future key {j}: {p}");
        }
    }
    // The same mask as an additive one gives the same result.
    let additive = causal.mul_scalar(-1e9)?;
    let (y1, _) = mha.forward(&x, &x, &x, None, Some(AttnMask::Bool(&causal)), false)?;
    let (y2, _) = mha.forward(&x, &x, &x, None, Some(AttnMask::Additive(&additive)), false)?;
    common::close(&y2.to_vec()?, &y1.to_vec()?, 1e-6);
    // Padding the last key: no weight on it, and the output does not depend on its value.
    let padding = t(&[0.0, 0.0, 1.0], &[1, 3], dev);
    let (ya, wa) = mha.forward(&x, &x, &x, Some(AttnMask::Bool(&padding)), None, true)?;
    for row in wa.expect("weights").to_vec()?.chunks(3) {
        assert_eq!(row[2], 0.0);
    }
    let changed = Tensor::cat(
        &[x.narrow(0, 0, 2)?, x.narrow(0, 2, 1)?.add_scalar(5.0)?],
        0,
    )?;
    let (yb, _) = mha.forward(
        &x,
        &changed,
        &changed,
        Some(AttnMask::Bool(&padding)),
        None,
        false,
    )?;
    common::close(&yb.to_vec()?, &ya.to_vec()?, 1e-5);
    Ok(())
});

#[test]
fn dropout_between_layers_only_in_training() -> lam::Result<()> {
    let dev = Device::cpu();
    let x = rnd(&[4, 3, 2], 6, &dev);
    let dropped = GRU::with_config(2, 8, RnnConfig::default().num_layers(2).dropout(0.5), &dev)?;
    let plain = GRU::with_config(2, 8, RnnConfig::default().num_layers(2), &dev)?;
    copy_state(&dropped, &plain)?;
    let reference = plain.forward(&x, None)?.0.to_vec()?;
    // Training mode: between-layer dropout changes the output and differs per call.
    let a = dropped.forward(&x, None)?.0.to_vec()?;
    let b = dropped.forward(&x, None)?.0.to_vec()?;
    assert_ne!(a, reference);
    assert_ne!(a, b);
    // Eval mode: identical to the model without dropout.
    dropped.eval();
    assert!(!dropped.is_training());
    common::close(&dropped.forward(&x, None)?.0.to_vec()?, &reference, 0.0);
    // A single layer never drops (dropout applies between layers only).
    let single = LSTM::with_config(2, 3, RnnConfig::default().dropout(0.9), &dev)?;
    let single_ref = LSTM::new(2, 3, &dev)?;
    copy_state(&single, &single_ref)?;
    common::close(
        &Module::forward(&single, &x)?.to_vec()?,
        &Module::forward(&single_ref, &x)?.to_vec()?,
        0.0,
    );
    // Attention dropout: training differs, eval is deterministic.
    let mha = MultiheadAttention::with_config(
        4,
        2,
        MultiheadAttentionConfig {
            dropout: 0.5,
            ..Default::default()
        },
        &dev,
    )?;
    let q = rnd(&[3, 2, 4], 7, &dev);
    let train_out = Module::forward(&mha, &q)?.to_vec()?;
    mha.eval();
    let eval_out = Module::forward(&mha, &q)?.to_vec()?;
    assert_ne!(train_out, eval_out);
    common::close(&Module::forward(&mha, &q)?.to_vec()?, &eval_out, 0.0);
    Ok(())
}

/// A recurrent layer inside `Sequential`, trained to recall the first
/// element of a sequence after distractors: the loss must fall tenfold.
#[test]
fn gru_learns_to_remember_the_first_step() -> lam::Result<()> {
    let dev = Device::cpu();
    let model = Sequential::new()
        .add(GRU::with_config(
            1,
            8,
            RnnConfig::default().batch_first(true),
            &dev,
        )?)
        .add(Linear::new(8, 1, &dev)?);
    fill_params(&model, 6, 0.35)?;
    let (batch, seq) = (16, 4);
    let x = rnd(&[batch, seq, 1], 8, &dev);
    let target = x.narrow(1, 0, 1)?.squeeze(1)?; // [B, 1]
    let mut opt = Adam::new(model.parameters(), 0.03)?;
    let loss_of = || -> lam::Result<Tensor> {
        let out = model.forward(&x)?; // [B, T, 1]
        out.narrow(1, seq - 1, 1)?
            .squeeze(1)?
            .sub(&target)?
            .square()?
            .mean_all()
    };
    let first = loss_of()?.item()?;
    for _ in 0..150 {
        opt.zero_grad();
        loss_of()?.backward()?;
        opt.step()?;
    }
    let last = loss_of()?.item()?;
    assert!(last < first / 10.0, "loss {first} -> {last}");
    Ok(())
}
