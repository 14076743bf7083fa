//! One LSTM or GRU layer in one direction as one tape op, as cuDNN runs
//! it: the forward loop over time does one `h Wₕₕᵀ` matmul and one fused
//! gate step (`rnn/fused`) per step with nothing recorded, and the layer's
//! single node runs the loop backwards — one gate gradient and one
//! `δ Wₕₕ` matmul per step — then the weight's gradient for all steps at
//! once, one `[G·H, T·B] × [T·B, H]` matmul.
//!
//! Per-step tape nodes would cost more than the arithmetic: each step's
//! slice of the input projection would get its gradient padded to the whole
//! sequence, and `Wₕₕ`'s gradient would be summed `T` times.
//!
//! A backend may run the LSTM's whole loop itself (Backend
//! `fused_lstm_sequence` and its `_grad`, each offered first): the CPU
//! packs `Wₕₕ` once per sequence for its per-step products that way, and
//! the GPU writes each step's states and gates straight into the
//! sequence's buffers (two dispatches a step, no copies or adds between
//! them). Where the backend declines, the loops here run step by step.
//!
//! The layer's output is one tensor `packed` (`[T, B, H]` of outputs in
//! time order, and for the LSTM a last row with the final `c`), viewed as
//! the output sequence and the final states.

use super::cell::Cell;
use super::fused::{gru_backward, gru_forward, lstm_backward, lstm_forward};
use crate::{no_grad, Layout, Result, Tensor};

/// Runs an LSTM or GRU layer over the input projection `xp` (`[T, B, G·H]`:
/// `x W_ihᵀ + b_ih`, plus `b_hh` for the LSTM) with the recurrent weight
/// `w_hh` (`[G·H, H]`), the GRU's `b_hh`, and the initial `state` (`h`, and
/// `c` for the LSTM, `[B, H]` each): the outputs `[T, B, H]` in time order
/// and the final state.
pub(super) fn run(
    cell: Cell,
    xp: &Tensor,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
    state: &[Tensor],
    reverse: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    let (steps, batch, hidden) = (xp.dims()[0], xp.dims()[1], w_hh.dims()[1]);
    let lstm = cell == Cell::Lstm;
    let name = if lstm { "lstm_layer" } else { "gru_layer" };
    // An `F16` projection (a bias-free product under autocast) is read as
    // `F32`, as the gates read everything; the states stay `F32`.
    let xp = &xp.float32(name)?;
    let order: Vec<usize> = if reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    let fwd = no_grad(|| forward(cell, xp, w_hh, b_hh, state, &order, reverse))?;
    let packed_rows = steps + usize::from(lstm);
    let packed = no_grad(|| match &fwd.whole {
        // The backend's `hs` after the initial state are the outputs in
        // time order: one copy of them, not one per step.
        Some(whole) if !reverse => Tensor::cat(
            &[whole.hs.narrow(0, 1, steps)?, whole.cs.narrow(0, steps, 1)?],
            0,
        ),
        _ => {
            let mut rows = fwd.outputs_in_time_order(&order);
            if lstm {
                rows.push(fwd.cs[steps].clone());
            }
            Tensor::stack(&rows, 0)
        }
    })?;
    let (w, b) = (w_hh.detach(), b_hh.map(Tensor::detach));
    let needs_w = w_hh.requires_grad();
    let mut inputs: Vec<&Tensor> = vec![xp, w_hh];
    inputs.extend(state.iter());
    if let Some(b) = b_hh {
        inputs.push(b);
    }
    let last = order[steps - 1];
    // The outputs in time order, from which the backward builds the states
    // before each step (two pieces, not a copy per step).
    let outputs = packed.narrow(0, 0, steps)?.detach();
    let out = Tensor::from_op(
        name,
        packed.storage(),
        Layout::contiguous(&[packed_rows, batch, hidden]),
        &inputs,
        move |g| fwd.backward(g, &w, b.as_ref(), &order, needs_w, &outputs),
    );
    let mut finals = vec![out.get(last)?];
    if lstm {
        finals.push(out.get(steps)?);
    }
    Ok((out.narrow(0, 0, steps)?, finals))
}

/// What the forward loop keeps for the backward one, per step in the order
/// run (`hs[k]` and `cs[k]` are the states before step `k`).
struct Forward {
    cell: Cell,
    /// `h` before each step, and after the last: `T + 1` of `[B, H]`.
    hs: Vec<Tensor>,
    /// The LSTM's `c` likewise (empty for the GRU).
    cs: Vec<Tensor>,
    /// The activated gates of each step.
    gates: Vec<Tensor>,
    /// The GRU's hidden projection of each step (empty for the LSTM).
    hidden_gates: Vec<Tensor>,
    /// Where the backend ran the whole loop, its outputs, of which `hs`,
    /// `cs` and `gates` above are views.
    whole: Option<Whole>,
}

/// The outputs of Backend `fused_lstm_sequence`, in the order run.
struct Whole {
    /// `[T + 1, B, H]`.
    hs: Tensor,
    /// `[T + 1, B, H]`.
    cs: Tensor,
    /// `[T, B, 4H]`.
    gates: Tensor,
}

/// The forward loop, untaped.
fn forward(
    cell: Cell,
    xp: &Tensor,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
    state: &[Tensor],
    order: &[usize],
    reverse: bool,
) -> Result<Forward> {
    if cell == Cell::Lstm && b_hh.is_none() {
        if let Some(f) = lstm_whole(xp, w_hh, state, reverse)? {
            return Ok(f);
        }
    }
    // `h Wₕₕᵀ` every step: Wₕₕᵀ is copied row-major once (and viewed back
    // as `[G·H, H]` for `linear`, which transposes it again), since the CPU
    // gemm multiplies by a row-major operand several times faster than by
    // the column-major view of Wₕₕ (51 µs against 240–270 µs for
    // `[32, 256] × [256, 1024]` on 2 cores), and one copy serves all steps.
    let w = w_hh.detach().t()?.contiguous()?.t()?;
    let mut f = Forward {
        cell,
        hs: vec![state[0].detach()],
        cs: state.get(1).map(Tensor::detach).into_iter().collect(),
        gates: Vec::with_capacity(order.len()),
        hidden_gates: Vec::new(),
        whole: None,
    };
    let xp = xp.detach();
    for &t in order {
        let x_t = xp.get(t)?;
        let h = f.hs.last().cloned().unwrap_or_else(|| state[0].detach());
        // `F16` under autocast (the recurrent product), read as `F32`.
        let hg = crate::nn::functional::linear(&h, &w, b_hh)?.float32("recurrent step")?;
        if cell == Cell::Lstm {
            let c = f.cs.last().cloned().unwrap_or_else(|| state[1].detach());
            let (hc, gates) = lstm_forward(&x_t, &hg, &c)?;
            f.hs.push(hc.get(0)?);
            f.cs.push(hc.get(1)?);
            f.gates.push(gates);
        } else {
            let (h_new, gates) = gru_forward(&x_t, &hg, &h)?;
            f.hs.push(h_new);
            f.gates.push(gates);
            f.hidden_gates.push(hg);
        }
    }
    Ok(f)
}

/// The LSTM's forward loop by the backend's `fused_lstm_sequence`, or
/// `None` where it has none.
fn lstm_whole(
    xp: &Tensor,
    w_hh: &Tensor,
    state: &[Tensor],
    reverse: bool,
) -> Result<Option<Forward>> {
    let (steps, batch, hidden) = (xp.dims()[0], xp.dims()[1], w_hh.dims()[1]);
    let (xs, ws) = (xp.storage(), w_hh.storage());
    let (h0, c0) = (state[0].storage(), state[1].storage());
    let Some((hs, cs, gates)) = xp.backend().fused_lstm_sequence(
        (&xs, xp.layout()),
        (&ws, w_hh.layout()),
        (&h0, state[0].layout()),
        (&c0, state[1].layout()),
        reverse,
    )?
    else {
        return Ok(None);
    };
    let dev = xp.device();
    let states = Layout::contiguous(&[steps + 1, batch, hidden]);
    let hs = Tensor::from_storage(hs, states.clone(), &dev);
    let cs = Tensor::from_storage(cs, states, &dev);
    let gates = Tensor::from_storage(gates, Layout::contiguous(&[steps, batch, 4 * hidden]), &dev);
    let rows = |t: &Tensor, n: usize| (0..n).map(|k| t.get(k)).collect::<Result<Vec<_>>>();
    Ok(Some(Forward {
        cell: Cell::Lstm,
        hs: rows(&hs, steps + 1)?,
        cs: rows(&cs, steps + 1)?,
        gates: rows(&gates, steps)?,
        hidden_gates: Vec::new(),
        whole: Some(Whole { hs, cs, gates }),
    }))
}

impl Forward {
    /// The `h` after each step, in time order.
    fn outputs_in_time_order(&self, order: &[usize]) -> Vec<Tensor> {
        let mut rows = vec![None; order.len()];
        for (k, &t) in order.iter().enumerate() {
            rows[t] = Some(self.hs[k + 1].clone());
        }
        rows.into_iter().flatten().collect()
    }

    /// The `h` before each step, in time order (`[T, B, H]`): the initial
    /// state and every output but the last one run, from the `outputs`
    /// (`[T, B, H]`, time order).
    fn states_before_steps(&self, order: &[usize], outputs: &Tensor) -> Result<Tensor> {
        let steps = order.len();
        let h0 = self.hs[0].unsqueeze(0)?;
        if steps == 1 {
            return Ok(h0);
        }
        let earlier = if order[0] == 0 {
            vec![h0, outputs.narrow(0, 0, steps - 1)?]
        } else {
            // Run backwards: step t follows step t + 1.
            vec![outputs.narrow(0, 1, steps - 1)?, h0]
        };
        Tensor::cat(&earlier, 0)
    }

    /// The gradients of the layer's inputs (`xp`, `w_hh`, the initial
    /// states, the GRU's `b_hh`) from the gradient `g` of `packed`, whose
    /// first `T` rows are `outputs`.
    fn backward(
        &self,
        g: &Tensor,
        w: &Tensor,
        b_hh: Option<&Tensor>,
        order: &[usize],
        needs_w: bool,
        outputs: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        if self.cell == Cell::Lstm && b_hh.is_none() {
            if let Some(grads) = self.lstm_whole_backward(g, w, order, needs_w)? {
                return Ok(grads);
            }
        }
        let steps = order.len();
        let lstm = self.cell == Cell::Lstm;
        // The gradient reaching `h` (and `c`) after the step being undone.
        let mut d_h: Option<Tensor> = None;
        let mut d_c = if lstm { Some(g.get(steps)?) } else { None };
        // Per time step: the gradient of the input projection, and of the
        // hidden projection with the `h` it was computed from.
        let mut d_x: Vec<Option<Tensor>> = vec![None; steps];
        let mut d_y: Vec<Option<Tensor>> = vec![None; steps];
        for (k, &t) in order.iter().enumerate().rev() {
            let mut dh = g.get(t)?;
            if let Some(more) = &d_h {
                dh = dh.add(more)?;
            }
            if lstm {
                let dc = match &d_c {
                    Some(dc) => dc.clone(),
                    None => Tensor::zeros_like(&dh)?,
                };
                let (dg, dc_prev) =
                    lstm_backward(&dh, &dc, &self.gates[k], &self.cs[k], &self.cs[k + 1])?;
                d_c = Some(dc_prev);
                d_h = Some(dg.matmul(w)?);
                // Both projections have this gradient: `d_y` stays empty.
                d_x[t] = Some(dg);
            } else {
                let (dx, dy, dh_prev) =
                    gru_backward(&dh, &self.gates[k], &self.hidden_gates[k], &self.hs[k])?;
                d_h = Some(dh_prev.add(&dy.matmul(w)?)?);
                d_x[t] = Some(dx);
                d_y[t] = Some(dy);
            }
        }
        let d_xp = Tensor::stack(&d_x.into_iter().flatten().collect::<Vec<_>>(), 0)?;
        let d_ys = if lstm {
            d_xp.clone()
        } else {
            Tensor::stack(&d_y.into_iter().flatten().collect::<Vec<_>>(), 0)?
        };
        let (batch, gh) = (d_ys.dims()[1], d_ys.dims()[2]);
        let d_ys = d_ys.reshape_exact(&[steps * batch, gh])?;
        let d_w = if needs_w {
            let hs = self.states_before_steps(order, outputs)?;
            let hidden = hs.dims()[2];
            Some(weight_grad(
                &d_ys,
                &hs.reshape_exact(&[steps * batch, hidden])?,
            )?)
        } else {
            None
        };
        let mut grads = vec![Some(d_xp), d_w, d_h];
        if lstm {
            grads.push(d_c);
        }
        if b_hh.is_some() {
            grads.push(Some(d_ys.sum(&[0], false)?));
        }
        Ok(grads)
    }

    /// [`Forward::backward`] of the LSTM by the backend's
    /// `fused_lstm_sequence_grad`, or `None` where it has none or the
    /// forward ran step by step.
    fn lstm_whole_backward(
        &self,
        g: &Tensor,
        w: &Tensor,
        order: &[usize],
        needs_w: bool,
    ) -> Result<Option<Vec<Option<Tensor>>>> {
        let steps = order.len();
        let reverse = steps > 1 && order[0] > order[1];
        // A backend that declined the whole forward declines its gradient
        // too (the unfused twins): stacking every step's gates and states
        // only to be declined would cost two copies per step.
        let Some(whole) = &self.whole else {
            return Ok(None);
        };
        let (gates, cs) = (whole.gates.clone(), whole.cs.clone());
        let (grad_hs, grad_c) = (g.narrow(0, 0, steps)?, g.get(steps)?);
        let (gs, gc) = (grad_hs.storage(), grad_c.storage());
        let (a, c, ws) = (gates.storage(), cs.storage(), w.storage());
        let Some((d_xp, d_h, d_c)) = w.backend().fused_lstm_sequence_grad(
            (&gs, grad_hs.layout()),
            (&gc, grad_c.layout()),
            (&a, gates.layout()),
            (&c, cs.layout()),
            (&ws, w.layout()),
            reverse,
        )?
        else {
            return Ok(None);
        };
        let dev = w.device();
        let (batch, hidden) = (grad_c.dims()[0], grad_c.dims()[1]);
        let d_xp =
            Tensor::from_storage(d_xp, Layout::contiguous(&[steps, batch, 4 * hidden]), &dev);
        let state = Layout::contiguous(&[batch, hidden]);
        let d_h = Tensor::from_storage(d_h, state.clone(), &dev);
        let d_c = Tensor::from_storage(d_c, state, &dev);
        let d_w = if needs_w {
            // The `h` each step started from, in time order: a view of the
            // backend's `hs` when the steps ran in time order.
            let h_prev = match &self.whole {
                Some(whole) if !reverse => whole.hs.narrow(0, 0, steps)?,
                _ => {
                    let mut rows = vec![None; steps];
                    for (k, &t) in order.iter().enumerate() {
                        rows[t] = Some(self.hs[k].clone());
                    }
                    Tensor::stack(&rows.into_iter().flatten().collect::<Vec<_>>(), 0)?
                }
            };
            let d_ys = d_xp.reshape_exact(&[steps * batch, 4 * hidden])?;
            let h_prev = h_prev.reshape_exact(&[steps * batch, hidden])?;
            Some(weight_grad(&d_ys, &h_prev)?)
        } else {
            None
        };
        Ok(Some(vec![Some(d_xp), d_w, Some(d_h), Some(d_c)]))
    }
}

/// The recurrent weight's gradient `d_ysᵀ h` for all steps at once, from
/// the gradient of the gate projections `d_ys` `[T·B, G·H]` and the states
/// they were computed from, `h` `[T·B, H]`. Computed as `(hᵀ d_ys)ᵀ`: the
/// CPU gemm runs the `[H, T·B] × [T·B, G·H]` product faster than
/// `[G·H, T·B] × [T·B, H]` (4.7 against 6.1 ms on one AVX-512 core for an
/// LSTM of hidden size 256 over 64 steps of 32 rows), and the transposing
/// copy of the `[H, G·H]` result costs 45 µs.
fn weight_grad(d_ys: &Tensor, h: &Tensor) -> Result<Tensor> {
    h.t()?.matmul(d_ys)?.t()?.contiguous()
}
