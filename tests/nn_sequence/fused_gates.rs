//! The fused LSTM and GRU gates (`lstm_gates`, `gru_gates`: Backend
//! `fused_lstm_cell`, `fused_gru_cell` and their gradients, composed from
//! elementwise ops on the unfused devices) against the formulas in f64 on
//! the host — batch 1, odd hidden sizes, saturating values, a transposed
//! projection — and by finite differences; and the layers that run a whole
//! sequence as one tape op against the step-by-step cell functions, values
//! and every parameter's gradient.

use lam::nn::functional::{gru_cell, gru_gates, lstm_cell, lstm_gates};
use lam::nn::*;
use lam::prelude::*;

use crate::common::close;
use crate::conformance;

use super::{check, fill_params, param, param_check, rnd, t, vals};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `(h', c')` of one LSTM step in f64 from the summed projections.
fn lstm_host(pre: &[f32], c: &[f32], b: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut hs, mut cs) = (Vec::new(), Vec::new());
    for r in 0..b {
        for j in 0..h {
            let g = |k: usize| pre[r * 4 * h + k * h + j] as f64;
            let (i, f, gg, o) = (sigmoid(g(0)), sigmoid(g(1)), g(2).tanh(), sigmoid(g(3)));
            let cn = f * c[r * h + j] as f64 + i * gg;
            cs.push(cn as f32);
            hs.push((o * cn.tanh()) as f32);
        }
    }
    (hs, cs)
}

/// `h'` of one GRU step in f64.
fn gru_host(x: &[f32], y: &[f32], hp: &[f32], b: usize, h: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for r in 0..b {
        for j in 0..h {
            let at = |k: usize| r * 3 * h + k * h + j;
            let rg = sigmoid((x[at(0)] + y[at(0)]) as f64);
            let z = sigmoid((x[at(1)] + y[at(1)]) as f64);
            let n = (x[at(2)] as f64 + rg * y[at(2)] as f64).tanh();
            out.push((n + z * (hp[r * h + j] as f64 - n)) as f32);
        }
    }
    out
}

conformance!(fused_gates_match_the_formulas_in_f64, |dev| {
    // (batch, hidden, scale): one row, odd sizes, and values large enough to
    // saturate every sigmoid and tanh.
    for (b, h, scale) in [(1, 1, 1.0), (3, 5, 1.0), (2, 7, 30.0), (4, 3, 1e4)] {
        let what = format!("batch {b}, hidden {h}, scale {scale}");
        let scaled = |n: usize, salt: u32| -> Vec<f32> {
            vals(n, salt).into_iter().map(|v| v * scale).collect()
        };
        let (xv, yv, cv) = (scaled(b * 4 * h, 1), scaled(b * 4 * h, 2), vals(b * h, 3));
        // The hidden projection as a transposed view.
        let y = t(&yv, &[b, 4 * h], dev).t()?.contiguous()?.t()?;
        let (h1, c1) = lstm_gates(&t(&xv, &[b, 4 * h], dev), &y, &t(&cv, &[b, h], dev))?;
        let pre: Vec<f32> = xv.iter().zip(&yv).map(|(a, b)| a + b).collect();
        let (hs, cs) = lstm_host(&pre, &cv, b, h);
        assert_eq!(h1.dims(), [b, h], "{what}");
        close(&h1.to_vec()?, &hs, 1e-5);
        close(&c1.to_vec()?, &cs, 1e-5);

        let (xv, yv) = (scaled(b * 3 * h, 4), scaled(b * 3 * h, 5));
        let hv = vals(b * h, 6);
        let y = t(&yv, &[b, 3 * h], dev).t()?.contiguous()?.t()?;
        let h1 = gru_gates(&t(&xv, &[b, 3 * h], dev), &y, &t(&hv, &[b, h], dev))?;
        close(&h1.to_vec()?, &gru_host(&xv, &yv, &hv, b, h), 1e-5);
    }
    Ok(())
});

conformance!(fused_gates_gradients_match_finite_differences, |dev| {
    let (b, h) = (2, 3);
    check(
        |a| {
            let (h1, c1) = lstm_gates(&a[0], &a[1], &a[2])?;
            Tensor::cat(&[h1, c1], 0)
        },
        &[
            rnd(&[b, 4 * h], 11, dev),
            rnd(&[b, 4 * h], 12, dev),
            rnd(&[b, h], 13, dev),
        ],
    )?;
    check(
        |a| gru_gates(&a[0], &a[1], &a[2]),
        &[
            rnd(&[b, 3 * h], 14, dev),
            rnd(&[b, 3 * h], 15, dev),
            rnd(&[b, h], 16, dev),
        ],
    )?;
    // Only h' or only c' used: the other's gradient is zero, not missing.
    let x = rnd(&[1, 4], 17, dev).requires_grad_()?;
    let c = rnd(&[1, 1], 18, dev).requires_grad_()?;
    let (_, c1) = lstm_gates(&x, &x.detach(), &c)?;
    c1.sum_all()?.backward()?;
    assert!(x.grad().is_some() && c.grad().is_some());
    Ok(())
});

conformance!(fused_gates_reject_bad_shapes, |dev| {
    let x = rnd(&[2, 8], 1, dev);
    let bad = [
        lstm_gates(&x, &x, &rnd(&[2, 3], 2, dev)).err(),
        lstm_gates(&x, &rnd(&[2, 4], 3, dev), &rnd(&[2, 2], 4, dev)).err(),
        lstm_gates(&x, &x, &rnd(&[2], 5, dev)).err(),
        gru_gates(&x, &x, &rnd(&[2, 2], 6, dev)).err(),
        lstm_gates(&x, &x, &Tensor::from_vec_i32(vec![0; 4], &[2, 2], dev)?).err(),
    ];
    for (k, e) in bad.iter().enumerate() {
        let e = e
            .as_ref()
            .unwrap_or_else(|| panic!("case {k} was accepted"));
        assert!(e.to_string().contains("gates"), "case {k}: {e}");
    }
    Ok(())
});

/// The output and final states of a one-layer LSTM or GRU run step by
/// step through the cell functions with the layer's parameters (suffix
/// `l0` or `l0_reverse`), over `x: [T, B, in]` from `h0` (and `c0`).
fn step_by_step(
    m: &dyn Module,
    suffix: &str,
    x: &Tensor,
    h0: &Tensor,
    c0: Option<&Tensor>,
    reverse: bool,
) -> lam::Result<(Tensor, Tensor, Option<Tensor>)> {
    let p = |n: &str| param(m, &format!("{n}_{suffix}"));
    let (w_ih, w_hh, b_ih, b_hh) = (p("weight_ih"), p("weight_hh"), p("bias_ih"), p("bias_hh"));
    let steps = x.dims()[0];
    let (mut h, mut c) = (h0.clone(), c0.cloned());
    let mut outs = vec![None; steps];
    for i in 0..steps {
        let s = if reverse { steps - 1 - i } else { i };
        let xt = x.get(s)?;
        if let Some(cc) = &c {
            let (h1, c1) = lstm_cell(&xt, (&h, cc), &w_ih, &w_hh, Some(&b_ih), Some(&b_hh))?;
            (h, c) = (h1, Some(c1));
        } else {
            h = gru_cell(&xt, &h, &w_ih, &w_hh, Some(&b_ih), Some(&b_hh))?;
        }
        outs[s] = Some(h.clone());
    }
    let outs: Vec<Tensor> = outs.into_iter().flatten().collect();
    Ok((Tensor::stack(&outs, 0)?, h, c))
}

/// Every parameter gradient of `m` after `loss.backward()`, then zeroed.
fn grads_of(m: &dyn Module, loss: &Tensor) -> lam::Result<Vec<Vec<f32>>> {
    m.zero_grad();
    loss.backward()?;
    let g = m
        .parameters()
        .iter()
        .map(|p| p.grad().expect("a gradient").to_vec())
        .collect::<lam::Result<_>>()?;
    m.zero_grad();
    Ok(g)
}

conformance!(sequence_layers_match_the_cell_functions, |dev| {
    let (steps, b, inp, h) = (4, 3, 2, 5);
    let x = rnd(&[steps, b, inp], 21, dev);
    let weights = |out: &Tensor| -> lam::Result<Tensor> {
        let n = out.numel();
        out.mul(&t(&vals(n, 99), out.dims(), dev))?.sum_all()
    };
    // A bidirectional LSTM: each direction against the cell loop.
    let lstm = LSTM::with_config(inp, h, RnnConfig::default().bidirectional(true), dev)?;
    fill_params(&lstm, 5, 0.5)?;
    let (h0, c0) = (rnd(&[2, b, h], 22, dev), rnd(&[2, b, h], 23, dev));
    let (out, (hn, cn)) = lstm.forward(&x, Some((&h0, &c0)))?;
    let fw = step_by_step(&lstm, "l0", &x, &h0.get(0)?, Some(&c0.get(0)?), false)?;
    let bw = step_by_step(
        &lstm,
        "l0_reverse",
        &x,
        &h0.get(1)?,
        Some(&c0.get(1)?),
        true,
    )?;
    let want = Tensor::cat(&[fw.0.clone(), bw.0.clone()], -1)?;
    close(&out.to_vec()?, &want.to_vec()?, 1e-5);
    close(
        &hn.to_vec()?,
        &Tensor::stack(&[fw.1.clone(), bw.1.clone()], 0)?.to_vec()?,
        1e-5,
    );
    let want_c = Tensor::stack(&[fw.2.clone().expect("c"), bw.2.clone().expect("c")], 0)?;
    close(&cn.to_vec()?, &want_c.to_vec()?, 1e-5);
    let loss = weights(&out)?
        .add(&hn.sum_all()?)?
        .add(&cn.mul_scalar(0.5)?.sum_all()?)?;
    let got = grads_of(&lstm, &loss)?;
    let fw_c = fw.2.expect("c").mul_scalar(0.5)?.sum_all()?;
    let bw_c = bw.2.expect("c").mul_scalar(0.5)?.sum_all()?;
    let ref_loss = weights(&want)?
        .add(&fw.1.sum_all()?)?
        .add(&bw.1.sum_all()?)?
        .add(&fw_c)?
        .add(&bw_c)?;
    for (k, (g, w)) in got.iter().zip(grads_of(&lstm, &ref_loss)?).enumerate() {
        assert_eq!(g.len(), w.len(), "parameter {k}");
        close(g, &w, 1e-4);
    }

    // A GRU (its b_hh stays inside r ⊙ (…)).
    let gru = GRU::new(inp, h, dev)?;
    fill_params(&gru, 6, 0.5)?;
    let h0 = rnd(&[1, b, h], 24, dev);
    let (out, hn) = gru.forward(&x, Some(&h0))?;
    let fw = step_by_step(&gru, "l0", &x, &h0.get(0)?, None, false)?;
    close(&out.to_vec()?, &fw.0.to_vec()?, 1e-5);
    close(&hn.to_vec()?, &fw.1.to_vec()?, 1e-5);
    let got = grads_of(&gru, &weights(&out)?.add(&hn.sum_all()?)?)?;
    let want = grads_of(&gru, &weights(&fw.0)?.add(&fw.1.sum_all()?)?)?;
    for (g, w) in got.iter().zip(&want) {
        close(g, w, 1e-4);
    }
    Ok(())
});

conformance!(gradcheck_recurrent_weights_of_sequence_layers, |dev| {
    // The recurrent weight's gradient is one matmul over all steps.
    let lstm = LSTM::with_config(2, 3, RnnConfig::default().bidirectional(true), dev)?;
    fill_params(&lstm, 7, 0.6)?;
    let x = rnd(&[3, 2, 2], 31, dev);
    param_check(&lstm, "weight_hh_l0_reverse", || {
        lstm.forward(&x, None).map(|r| r.0)
    })?;
    let gru = GRU::new(2, 3, dev)?;
    fill_params(&gru, 8, 0.6)?;
    param_check(&gru, "weight_hh_l0", || gru.forward(&x, None).map(|r| r.0))
});

#[test]
fn layers_take_one_fused_step_per_time_step() {
    use lam::DeviceExt;
    let (dev, recorder) = lam::testing::Recorder::device(&Device::cpu());
    let steps = 5;
    let x = Tensor::randn(&[steps, 2, 3], &dev).expect("input");
    // Without a projection the CPU runs each layer's whole loop as one op
    // each way (forward from the input itself, which is narrow); with one
    // (which runs the steps as separate tape ops), one fused step per time
    // step, forward and backward.
    for (proj, per_layer, per_step) in [(0, 1, 0), (2, 0, steps as u64)] {
        let config = RnnConfig::default().proj_size(proj);
        let lstm = LSTM::with_config(3, 4, config, &dev).expect("lstm");
        let before = recorder.calls();
        let (out, _) = lstm.forward(&x, None).expect("forward");
        out.sum_all().and_then(|s| s.backward()).expect("backward");
        let after = recorder.calls();
        let counts = [
            ("fused_lstm_layer", per_layer),
            ("fused_lstm_sequence", 0),
            ("fused_lstm_sequence_grad", per_layer),
            ("fused_lstm_cell", per_step),
            ("fused_lstm_cell_grad", per_step),
        ];
        for (m, want) in counts {
            let n = after.get(m).copied().unwrap_or(0) - before.get(m).copied().unwrap_or(0);
            assert_eq!(n, want, "{m} with proj_size {proj}");
        }
    }
    let gru = GRU::new(3, 4, &dev).expect("gru");
    let before = recorder.calls();
    let (out, _) = gru.forward(&x, None).expect("forward");
    out.sum_all().and_then(|s| s.backward()).expect("backward");
    let after = recorder.calls();
    for m in ["fused_gru_cell", "fused_gru_cell_grad"] {
        let n = after.get(m).copied().unwrap_or(0) - before.get(m).copied().unwrap_or(0);
        assert_eq!(n, steps as u64, "{m}");
    }
}
