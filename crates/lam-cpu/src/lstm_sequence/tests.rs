//! Tests of an LSTM layer's time loop: `fused_lstm_sequence` against the
//! textbook formulas in f64, its gradient (`fused_lstm_sequence_grad`)
//! against central differences, `fused_lstm_layer` against the loop over
//! its projection, NaN and infinity, and shape errors. They sit apart from
//! `lstm_sequence.rs` so that the loop reads without them.

use lam_core::{Backend, Layout};

use crate::test_util::*;

/// The layer by the textbook formulas in f64 from contiguous `xp`
/// `[T, B, 4H]`, `w` `[4H, H]`, `h0`, `c0`: the outputs `[T, B, H]` in
/// time order and the final `c`.
fn reference(
    xp: &[f64],
    w: &[f64],
    h0: &[f64],
    c0: &[f64],
    (t, b, h): (usize, usize, usize),
    reverse: bool,
) -> (Vec<f64>, Vec<f64>) {
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (mut hs, mut c) = (h0.to_vec(), c0.to_vec());
    let mut out = vec![0.0; t * b * h];
    for k in 0..t {
        let step = if reverse { t - 1 - k } else { k };
        let (mut h_new, mut c_new) = (vec![0.0; b * h], vec![0.0; b * h]);
        for r in 0..b {
            let pre = |gate: usize, j: usize| {
                let n = gate * h + j;
                xp[(step * b + r) * 4 * h + n]
                    + (0..h).map(|q| hs[r * h + q] * w[n * h + q]).sum::<f64>()
            };
            for j in 0..h {
                let (i, f) = (sig(pre(0, j)), sig(pre(1, j)));
                let (g, o) = (pre(2, j).tanh(), sig(pre(3, j)));
                c_new[r * h + j] = f * c[r * h + j] + i * g;
                h_new[r * h + j] = o * c_new[r * h + j].tanh();
            }
        }
        out[step * b * h..(step + 1) * b * h].copy_from_slice(&h_new);
        (hs, c) = (h_new, c_new);
    }
    (out, c)
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Runs both ops on `(t, b, h)` with the inputs given through views:
/// `xp` stored batch-first, `w_hh` stored transposed, `h0` at an offset,
/// `c0` broadcast from one row; checks the outputs against
/// [`reference`] and the gradients against its directional derivative.
fn check(t: usize, b: usize, h: usize, reverse: bool) {
    let be = backend();
    let dims = (t, b, h);
    let xv = values(t * b * 4 * h, 1);
    let wv: Vec<f32> = values(4 * h * h, 2).iter().map(|v| v * 0.5).collect();
    let h0v = values(b * h + 3, 3);
    let c0v = values(h, 4);
    // xp[t][r] stored at [r][t].
    let mut x_bf = vec![0.0; xv.len()];
    for s in 0..t {
        for r in 0..b {
            let (from, to) = ((s * b + r) * 4 * h, (r * t + s) * 4 * h);
            x_bf[to..to + 4 * h].copy_from_slice(&xv[from..from + 4 * h]);
        }
    }
    let (x, xl) = f32s(&x_bf, &[b, t, 4 * h]);
    let xl = xl.permute(&[1, 0, 2]).unwrap();
    let mut w_t = vec![0.0; wv.len()];
    for n in 0..4 * h {
        for q in 0..h {
            w_t[q * 4 * h + n] = wv[n * h + q];
        }
    }
    let (w, wl) = f32s(&w_t, &[h, 4 * h]);
    let wl = wl.permute(&[1, 0]).unwrap();
    let (h0, _) = f32s(&h0v, &[b * h + 3]);
    let h0l = Layout {
        offset: 3,
        ..Layout::contiguous(&[b, h])
    };
    let (c0, c0l) = f32s(&c0v, &[1, h]);
    let c0l = c0l.broadcast_to(&[b, h]).unwrap();
    let (hs, cs, gates) = be
        .fused_lstm_sequence((&x, &xl), (&w, &wl), (&h0, &h0l), (&c0, &c0l), reverse)
        .unwrap()
        .unwrap();
    let c0_rows: Vec<f64> = (0..b).flat_map(|_| wide(&c0v)).collect();
    let (xs, ws, h0s) = (wide(&xv), wide(&wv), wide(&h0v[3..]));
    let (want_h, want_c) = reference(&xs, &ws, &h0s, &c0_rows, dims, reverse);
    let (bh, steps) = (b * h, t + 1);
    let (got_h, got_c) = (read(&hs, &[steps * bh]), read(&cs, &[steps * bh]));
    for k in 0..t {
        let step = if reverse { t - 1 - k } else { k };
        let want: Vec<f32> = want_h[step * bh..(step + 1) * bh]
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_close(&got_h[(k + 1) * bh..(k + 2) * bh], &want, 1e-5);
    }
    let want: Vec<f32> = want_c.iter().map(|&v| v as f32).collect();
    assert_close(&got_c[t * bh..], &want, 1e-5);

    // loss = Σ gh ⊙ outputs + gc ⊙ c_T, along a random direction.
    let (ghv, gcv) = (values(t * bh, 5), values(bh, 6));
    let loss = |xp: &[f64], h0: &[f64], c0: &[f64]| -> f64 {
        let (out, c) = reference(xp, &ws, h0, c0, dims, reverse);
        let dot =
            |a: &[f64], g: &[f32]| -> f64 { a.iter().zip(g).map(|(a, &g)| a * f64::from(g)).sum() };
        dot(&out, &ghv) + dot(&c, &gcv)
    };
    let (gh, ghl) = f32s(&ghv, &[t, b, h]);
    let (gc, gcl) = f32s(&gcv, &[b, h]);
    let states = Layout::contiguous(&[steps, b, h]);
    let (d_xp, d_h0, d_c0, d_bias) = be
        .fused_lstm_sequence_grad(
            (&gh, &ghl),
            (&gc, &gcl),
            (&gates, &Layout::contiguous(&[t, b, 4 * h])),
            (&cs, &states),
            (&w, &wl),
            reverse,
        )
        .unwrap()
        .unwrap();
    // The bias's gradient: `d_xp` summed over steps and rows.
    let d_xp_v = read(&d_xp, &[t * b * 4 * h]);
    let mut sums = vec![0.0f64; 4 * h];
    for row in d_xp_v.chunks(4 * h) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let sums: Vec<f32> = sums.iter().map(|&v| v as f32).collect();
    assert_close(&read(&d_bias.expect("the CPU sums"), &[4 * h]), &sums, 1e-5);
    let grads = [
        read(&d_xp, &[t * b * 4 * h]),
        read(&d_h0, &[bh]),
        read(&d_c0, &[bh]),
    ];
    let dirs = [values(xs.len(), 7), values(bh, 8), values(bh, 9)];
    let eps = 1e-4;
    for (which, (grad, dir)) in grads.iter().zip(&dirs).enumerate() {
        let mut args = [xs.clone(), h0s.clone(), c0_rows.clone()];
        let step = |args: &mut [Vec<f64>; 3], sign: f64| {
            for (a, &d) in args[which].iter_mut().zip(dir) {
                *a += sign * eps * f64::from(d);
            }
        };
        step(&mut args, 1.0);
        let plus = loss(&args[0], &args[1], &args[2]);
        step(&mut args, -2.0);
        let minus = loss(&args[0], &args[1], &args[2]);
        let numeric = (plus - minus) / (2.0 * eps);
        let analytic: f64 = grad.iter().zip(dir).map(|(&g, &d)| f64::from(g * d)).sum();
        assert!(
            (analytic - numeric).abs() <= 1e-4 * (1.0 + numeric.abs()),
            "{dims:?} reverse {reverse}, input {which}: {analytic} vs {numeric}"
        );
    }
}

#[test]
fn the_loop_matches_the_formulas_and_its_gradient_the_derivative() {
    for reverse in [false, true] {
        check(3, 2, 3, reverse);
        check(1, 7, 5, reverse);
        // Big enough for two threads, hidden size not a multiple of 16.
        check(3, 13, 81, reverse);
        check(2, 1, 1, reverse);
    }
}

/// `fused_lstm_layer` on `(t, b, h)` with `inputs` features, from
/// views (`x` batch-first, `w_ih` stored transposed, the bias at an
/// offset), against `fused_lstm_sequence` of the projection computed
/// here in f64.
fn check_layer(t: usize, b: usize, h: usize, inputs: usize, bias: bool, reverse: bool) {
    let be = backend();
    let xv = values(t * b * inputs, 11);
    let wv: Vec<f32> = values(4 * h * inputs, 12).iter().map(|v| v * 0.5).collect();
    let whv: Vec<f32> = values(4 * h * h, 13).iter().map(|v| v * 0.5).collect();
    let bv = values(4 * h + 1, 14);
    let sv = values(b * h, 15);
    // The projection `[T, B, 4H]` by the definition.
    let mut xp = vec![0.0f32; t * b * 4 * h];
    for (r, out) in xp.chunks_mut(4 * h).enumerate() {
        for (n, o) in out.iter_mut().enumerate() {
            let dot: f64 = (0..inputs)
                .map(|q| f64::from(xv[r * inputs + q]) * f64::from(wv[n * inputs + q]))
                .sum();
            *o = (dot + if bias { f64::from(bv[1 + n]) } else { 0.0 }) as f32;
        }
    }
    let (p, pl) = f32s(&xp, &[t, b, 4 * h]);
    let (wh, whl) = f32s(&whv, &[4 * h, h]);
    let (s, sl) = f32s(&sv, &[b, h]);
    let want = be
        .fused_lstm_sequence((&p, &pl), (&wh, &whl), (&s, &sl), (&s, &sl), reverse)
        .unwrap()
        .unwrap();
    // x[t][r] stored at [r][t]; w_ih stored as [in, 4H].
    let mut x_bf = vec![0.0; xv.len()];
    for s in 0..t {
        for r in 0..b {
            let (from, to) = ((s * b + r) * inputs, (r * t + s) * inputs);
            x_bf[to..to + inputs].copy_from_slice(&xv[from..from + inputs]);
        }
    }
    let (x, xl) = f32s(&x_bf, &[b, t, inputs]);
    let xl = xl.permute(&[1, 0, 2]).unwrap();
    let mut w_t = vec![0.0; wv.len()];
    for n in 0..4 * h {
        for q in 0..inputs {
            w_t[q * 4 * h + n] = wv[n * inputs + q];
        }
    }
    let (w, wl) = f32s(&w_t, &[inputs, 4 * h]);
    let wl = wl.permute(&[1, 0]).unwrap();
    let (bs, _) = f32s(&bv, &[4 * h + 1]);
    let bl = Layout {
        offset: 1,
        ..Layout::contiguous(&[4 * h])
    };
    let got = be
        .fused_lstm_layer(
            (&x, &xl),
            (&w, &wl),
            bias.then_some((&bs, &bl)),
            (&wh, &whl),
            ((&s, &sl), (&s, &sl)),
            reverse,
        )
        .unwrap()
        .expect("a narrow input is projected inside the loop");
    let states = (t + 1) * b * h;
    for (g, w, n) in [(&got.0, &want.0, states), (&got.1, &want.1, states)] {
        assert_close(&read(g, &[n]), &read(w, &[n]), 1e-5);
    }
    let n = t * b * 4 * h;
    assert_close(&read(&got.2, &[n]), &read(&want.2, &[n]), 1e-5);
}

#[test]
fn a_layer_projecting_its_input_matches_the_loop_over_its_projection() {
    for reverse in [false, true] {
        check_layer(3, 2, 4, 1, true, reverse);
        check_layer(4, 13, 81, 20, false, reverse);
        // Input as wide as the state (a second layer's), both threads.
        check_layer(3, 13, 33, 33, true, reverse);
        check_layer(1, 1, 1, 1, true, reverse);
    }
}

#[test]
fn a_wide_input_is_declined_and_bad_shapes_are_errors() {
    let be = backend();
    let (h, inputs) = (256, 1024);
    let (x, xl) = f32s(&vec![0.0; 2 * inputs], &[1, 2, inputs]);
    let (w, wl) = f32s(&vec![0.0; 4 * h * inputs], &[4 * h, inputs]);
    let (wh, whl) = f32s(&vec![0.0; 4 * h * h], &[4 * h, h]);
    let (s, sl) = f32s(&vec![0.0; 2 * h], &[2, h]);
    let run = |xl: &Layout, wl: &Layout, b: Option<(&lam_core::Storage, &Layout)>| {
        be.fused_lstm_layer(
            (&x, xl),
            (&w, wl),
            b,
            (&wh, &whl),
            ((&s, &sl), (&s, &sl)),
            false,
        )
    };
    assert!(run(&xl, &wl, None).unwrap().is_none());
    // Narrow enough: the shapes are checked.
    let narrow = Layout::contiguous(&[1, 2, 8]);
    assert!(run(&narrow, &Layout::contiguous(&[4 * h, 8]), None)
        .unwrap()
        .is_some());
    assert!(run(&narrow, &Layout::contiguous(&[4 * h, 7]), None).is_err());
    assert!(run(&narrow, &Layout::contiguous(&[h, 8]), None).is_err());
    let bias = Layout::contiguous(&[h]);
    assert!(run(&narrow, &Layout::contiguous(&[4 * h, 8]), Some((&x, &bias))).is_err());
}

#[test]
fn nan_and_infinity_go_where_the_formulas_take_them() {
    let be = backend();
    let (t, b, h) = (2, 2, 3);
    let mut xv = values(t * b * 4 * h, 1);
    // Step 0, row 0: i, f, o saturated open by +inf, g by -inf, and one
    // NaN pre-activation in row 1's cell input.
    for gate in [0, 1, 3] {
        xv[gate * h] = f32::INFINITY;
    }
    xv[2 * h] = f32::NEG_INFINITY;
    xv[4 * h + 2 * h + 1] = f32::NAN;
    let (x, xl) = f32s(&xv, &[t, b, 4 * h]);
    let (w, wl) = f32s(&vec![0.0; 4 * h * h], &[4 * h, h]);
    let (s, sl) = f32s(&vec![0.5; b * h], &[b, h]);
    let (hs, cs, _) = be
        .fused_lstm_sequence((&x, &xl), (&w, &wl), (&s, &sl), (&s, &sl), false)
        .unwrap()
        .unwrap();
    let (hs, cs) = (read(&hs, &[3 * b * h]), read(&cs, &[3 * b * h]));
    // c' = 1 · 0.5 + 1 · (−1), h' = 1 · tanh(c').
    assert_eq!(cs[b * h], -0.5);
    assert!((hs[b * h] - (-0.5f32).tanh()).abs() < 1e-6);
    assert!(cs[b * h + h + 1].is_nan() && hs[b * h + h + 1].is_nan());
    // The other units of that row stay finite.
    assert!(cs[b * h + h].is_finite() && cs[b * h + h + 2].is_finite());
}

#[test]
fn bad_shapes_are_errors_and_empty_batches_are_empty() {
    let be = backend();
    let (x, xl) = f32s(&values(2 * 3 * 8, 1), &[2, 3, 8]);
    let (w, wl) = f32s(&values(8 * 2, 2), &[8, 2]);
    let (s, sl) = f32s(&values(3 * 2, 3), &[3, 2]);
    let (s2, sl2) = f32s(&values(2 * 2, 4), &[2, 2]);
    let (w3, wl3) = f32s(&values(9 * 2, 5), &[9, 2]);
    assert!(be
        .fused_lstm_sequence((&x, &xl), (&w, &wl), (&s, &sl), (&s, &sl), false)
        .is_ok());
    assert!(be
        .fused_lstm_sequence((&x, &xl), (&w, &wl), (&s2, &sl2), (&s, &sl), false)
        .is_err());
    assert!(be
        .fused_lstm_sequence((&x, &xl), (&w3, &wl3), (&s, &sl), (&s, &sl), false)
        .is_err());
    let (e, el) = f32s(&[], &[2, 0, 8]);
    let (es, esl) = f32s(&[], &[0, 2]);
    let (hs, _, _) = be
        .fused_lstm_sequence((&e, &el), (&w, &wl), (&es, &esl), (&es, &esl), true)
        .unwrap()
        .unwrap();
    assert!(read(&hs, &[0]).is_empty());
}
