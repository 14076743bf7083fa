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
//! An LSTM layer's op may also take its input rows and `W_ih` and compute
//! the input projection itself ([`Input::Rows`]): both weights' gradients
//! then come from one product, `[x | h]ᵀ δ` (`[in + H, T·B] × [T·B, 4H]`),
//! which reads the 8 MiB `δ` of a `[64, 32, 256]` layer once instead of
//! twice and packs it for the CPU gemm once; and the backend may project
//! inside its loop (Backend `fused_lstm_layer`, offered first), which the
//! CPU does where `[W_ihᵀ; W_hhᵀ]` is small: no `[T, B, 4H]` projection is
//! written to memory and read back. The GRU (whose two projections have
//! different gradients) and autocast's `F16` projection take
//! [`Input::Projected`].
//!
//! The layer's output is one tensor `packed` (`[T, B, H]` of outputs in
//! time order, and for the LSTM a last row with the final `c`), viewed as
//! the output sequence and the final states.

use super::cell::Cell;
use super::fused::{gru_backward, gru_forward, lstm_backward, lstm_forward};
use crate::{no_grad, Device, Layout, Result, Storage, Tensor};

/// What a layer's op starts from.
#[derive(Clone, Copy)]
pub(super) enum Input<'a> {
    /// The input projection `xp` `[T, B, G·H]` (`x W_ihᵀ + b_ih`, plus
    /// `b_hh` for the LSTM), computed by the caller.
    Projected(&'a Tensor),
    /// The LSTM's input rows `x` `[T·B, in]` of `steps` steps, projected
    /// by `w_ih` `[4H, in]` and `bias` (`b_ih + b_hh`) inside the op.
    Rows {
        x: &'a Tensor,
        w_ih: &'a Tensor,
        bias: Option<&'a Tensor>,
        steps: usize,
    },
}

/// The input projection of an [`Input::Rows`] layer, kept for the
/// gradient.
struct Projection {
    x: Tensor,
    w_ih: Tensor,
    /// Whether `x`, `w_ih` and the bias need their gradients.
    needs: [bool; 3],
    has_bias: bool,
}

/// Runs an LSTM or GRU layer over its `input` with the recurrent weight
/// `w_hh` (`[G·H, H]`), the GRU's `b_hh`, and the initial `state` (`h`,
/// and `c` for the LSTM, `[B, H]` each): the outputs `[T, B, H]` in time
/// order and the final state.
pub(super) fn run(
    cell: Cell,
    input: Input<'_>,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
    state: &[Tensor],
    reverse: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    let lstm = cell == Cell::Lstm;
    let name = if lstm { "lstm_layer" } else { "gru_layer" };
    let (steps, hidden) = match input {
        Input::Projected(xp) => (xp.dims()[0], w_hh.dims()[1]),
        Input::Rows { steps, .. } => (steps, w_hh.dims()[1]),
    };
    let order: Vec<usize> = if reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    // The forward loop, and the projection `xp` where it is an input of
    // the op.
    let (fwd, xp, projection) = match input {
        Input::Projected(xp) => {
            // An `F16` projection (a bias-free product under autocast) is
            // read as `F32`, as the gates read everything; the states stay
            // `F32`.
            let xp = xp.float32(name)?;
            let fwd = no_grad(|| forward(cell, &xp, w_hh, b_hh, state, &order, reverse))?;
            (fwd, Some(xp), None)
        }
        Input::Rows {
            x,
            w_ih,
            bias,
            steps,
        } => {
            let projection = Projection {
                x: x.detach(),
                w_ih: w_ih.detach(),
                needs: [
                    x.requires_grad(),
                    w_ih.requires_grad(),
                    bias.is_some_and(Tensor::requires_grad),
                ],
                has_bias: bias.is_some(),
            };
            let batch = x.dims()[0] / steps.max(1);
            let x = x.reshape_exact(&[steps, batch, x.dims()[1]])?;
            let fwd = match no_grad(|| lstm_layer_whole(&x, w_ih, bias, w_hh, state, reverse))? {
                Some(fwd) => fwd,
                None => {
                    let xp = no_grad(|| crate::nn::functional::linear(&x, w_ih, bias))?;
                    no_grad(|| forward(cell, &xp, w_hh, None, state, &order, reverse))?
                }
            };
            (fwd, None, Some(projection))
        }
    };
    let batch = state[0].dims()[0];
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
    let (w, has_b_hh) = (w_hh.detach(), b_hh.is_some());
    let needs_w = w_hh.requires_grad();
    // The op's inputs, in the order of its gradients (`Forward::backward`).
    let mut inputs: Vec<&Tensor> = match (input, &xp) {
        (Input::Rows { x, w_ih, .. }, _) => vec![x, w_ih, w_hh],
        (_, xp) => xp.iter().chain([w_hh]).collect(),
    };
    inputs.extend(state.iter());
    match input {
        Input::Projected(_) => inputs.extend(b_hh),
        Input::Rows { bias, .. } => inputs.extend(bias),
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
        move |g| {
            let flags = (has_b_hh, needs_w);
            fwd.backward(g, &w, &order, &outputs, flags, projection.as_ref())
        },
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
    Forward::of_whole((hs, cs, gates), (steps, batch, hidden), &xp.device()).map(Some)
}

/// The LSTM's forward loop by the backend's `fused_lstm_layer`, from the
/// layer's input `x` `[T, B, in]`, or `None` where it declines.
fn lstm_layer_whole(
    x: &Tensor,
    w_ih: &Tensor,
    bias: Option<&Tensor>,
    w_hh: &Tensor,
    state: &[Tensor],
    reverse: bool,
) -> Result<Option<Forward>> {
    let (xs, wi, ws) = (x.storage(), w_ih.storage(), w_hh.storage());
    let (h0, c0) = (state[0].storage(), state[1].storage());
    let bs = bias.map(Tensor::storage);
    let Some(outputs) = x.backend().fused_lstm_layer(
        (&xs, x.layout()),
        (&wi, w_ih.layout()),
        bs.as_ref().zip(bias).map(|(s, b)| (s, b.layout())),
        (&ws, w_hh.layout()),
        ((&h0, state[0].layout()), (&c0, state[1].layout())),
        reverse,
    )?
    else {
        return Ok(None);
    };
    let (steps, batch, hidden) = (x.dims()[0], x.dims()[1], w_hh.dims()[1]);
    Forward::of_whole(outputs, (steps, batch, hidden), &x.device()).map(Some)
}

impl Forward {
    /// The forward of a backend's whole loop from its `hs`, `cs` and
    /// `gates` (`T` steps of `B` rows of hidden size `H`).
    fn of_whole(
        (hs, cs, gates): (Storage, Storage, Storage),
        (steps, batch, hidden): (usize, usize, usize),
        dev: &Device,
    ) -> Result<Forward> {
        let states = Layout::contiguous(&[steps + 1, batch, hidden]);
        let hs = Tensor::from_storage(hs, states.clone(), dev);
        let cs = Tensor::from_storage(cs, states, dev);
        let gate_rows = Layout::contiguous(&[steps, batch, 4 * hidden]);
        let gates = Tensor::from_storage(gates, gate_rows, dev);
        let rows = |t: &Tensor, n: usize| (0..n).map(|k| t.get(k)).collect::<Result<Vec<_>>>();
        Ok(Forward {
            cell: Cell::Lstm,
            hs: rows(&hs, steps + 1)?,
            cs: rows(&cs, steps + 1)?,
            gates: rows(&gates, steps)?,
            hidden_gates: Vec::new(),
            whole: Some(Whole { hs, cs, gates }),
        })
    }

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

    /// The `h` before each step, in time order (`[T, B, H]`): a view of
    /// the backend's `hs` when the whole loop ran in time order, else
    /// [`Forward::states_before_steps`].
    fn h_before_steps(&self, order: &[usize], outputs: &Tensor) -> Result<Tensor> {
        let steps = order.len();
        match &self.whole {
            Some(whole) if steps == 1 || order[0] < order[1] => whole.hs.narrow(0, 0, steps),
            _ => self.states_before_steps(order, outputs),
        }
    }

    /// The gradients of the layer's inputs from the gradient `g` of
    /// `packed`, whose first `T` rows are `outputs`, in the order of the
    /// op's inputs: for [`Input::Projected`] (`projection` `None`) those of
    /// `xp`, `w_hh`, the initial states and the GRU's `b_hh`; for
    /// [`Input::Rows`] those of `x`, `w_ih`, `w_hh`, the initial states and
    /// the bias.
    fn backward(
        &self,
        g: &Tensor,
        w: &Tensor,
        order: &[usize],
        outputs: &Tensor,
        (has_b_hh, needs_w): (bool, bool),
        projection: Option<&Projection>,
    ) -> Result<Vec<Option<Tensor>>> {
        let lstm = self.cell == Cell::Lstm;
        let steps = order.len();
        let fused = if lstm && !has_b_hh {
            self.lstm_whole_backward(g, w, order)?
        } else {
            None
        };
        let Loop {
            d_xp,
            d_ys,
            d_h,
            d_c,
            d_bias,
        } = match fused {
            Some(grads) => grads,
            None => self.loop_backward(g, w, order)?,
        };
        let (batch, gh) = (d_ys.dims()[1], d_ys.dims()[2]);
        let d_ys = d_ys.reshape_exact(&[steps * batch, gh])?;
        let h_prev = |f: &Forward| -> Result<Tensor> {
            let hs = f.h_before_steps(order, outputs)?;
            let hidden = hs.dims()[2];
            hs.reshape_exact(&[steps * batch, hidden])
        };
        let Some(p) = projection else {
            let d_w = if needs_w {
                Some(weight_grad(&d_ys, &h_prev(self)?)?)
            } else {
                None
            };
            let mut grads = vec![Some(d_xp), d_w, Some(d_h)];
            if lstm {
                grads.push(d_c);
            }
            if has_b_hh {
                grads.push(Some(d_ys.sum(&[0], false)?));
            }
            return Ok(grads);
        };
        let [needs_x, needs_w_ih, needs_bias] = p.needs;
        let d_x = if needs_x {
            Some(d_ys.matmul(&p.w_ih)?)
        } else {
            None
        };
        let (d_w_ih, d_w_hh) = match (needs_w_ih, needs_w) {
            (true, true) => {
                let (d_w_ih, d_w_hh) = weight_grads(&d_ys, &p.x, &h_prev(self)?)?;
                (Some(d_w_ih), Some(d_w_hh))
            }
            (true, false) => (Some(weight_grad(&d_ys, &p.x)?), None),
            (false, true) => (None, Some(weight_grad(&d_ys, &h_prev(self)?)?)),
            (false, false) => (None, None),
        };
        let mut grads = vec![d_x, d_w_ih, d_w_hh, Some(d_h), d_c];
        if p.has_bias {
            grads.push(match (needs_bias, d_bias) {
                (false, _) => None,
                (true, Some(d_bias)) => Some(d_bias),
                (true, None) => Some(d_ys.sum(&[0], false)?),
            });
        }
        Ok(grads)
    }

    /// The backward loop step by step: [`Loop`] from the gradient `g` of
    /// `packed`.
    fn loop_backward(&self, g: &Tensor, w: &Tensor, order: &[usize]) -> Result<Loop> {
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
        let d_h = d_h.ok_or_else(|| crate::Error::invalid("rnn", "a layer of no steps"))?;
        Ok(Loop {
            d_xp,
            d_ys,
            d_h,
            d_c,
            d_bias: None,
        })
    }

    /// The LSTM's backward loop by the backend's
    /// `fused_lstm_sequence_grad`, or `None` where it has none or the
    /// forward ran step by step.
    fn lstm_whole_backward(&self, g: &Tensor, w: &Tensor, order: &[usize]) -> Result<Option<Loop>> {
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
        let Some((d_xp, d_h, d_c, d_bias)) = w.backend().fused_lstm_sequence_grad(
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
        let bias = Layout::contiguous(&[4 * hidden]);
        let d_bias = d_bias.map(|s| Tensor::from_storage(s, bias, &dev));
        Ok(Some(Loop {
            d_ys: d_xp.clone(),
            d_xp,
            d_h: Tensor::from_storage(d_h, state.clone(), &dev),
            d_c: Some(Tensor::from_storage(d_c, state, &dev)),
            d_bias,
        }))
    }
}

/// What a backward loop returns, in time order: the gradients of the input
/// projection `d_xp` and of the hidden projection `d_ys` (`[T, B, G·H]`,
/// the same tensor for the LSTM), those of the initial `h` and (LSTM)
/// `c`, and `d_ys` summed over steps and rows where the backend summed it.
struct Loop {
    d_xp: Tensor,
    d_ys: Tensor,
    d_h: Tensor,
    d_c: Option<Tensor>,
    d_bias: Option<Tensor>,
}

/// The recurrent weight's gradient `d_ysᵀ h` for all steps at once, from
/// the gradient of the gate projections `d_ys` `[T·B, G·H]` and the states
/// they were computed from, `h` `[T·B, H]` (or, for `W_ih`, the input
/// rows). Computed as `(hᵀ d_ys)ᵀ`: the CPU gemm runs the
/// `[H, T·B] × [T·B, G·H]` product faster than `[G·H, T·B] × [T·B, H]`
/// (4.7 against 6.1 ms on one AVX-512 core for an LSTM of hidden size 256
/// over 64 steps of 32 rows), and the transposing copy of the `[H, G·H]`
/// result costs 45 µs.
fn weight_grad(d_ys: &Tensor, h: &Tensor) -> Result<Tensor> {
    h.t()?.matmul(d_ys)?.t()?.contiguous()
}

/// The gradients of `W_ih` and `W_hh` at once, `[x | h]ᵀ d_ys` split in
/// two: one pass over `d_ys` for both (see [`weight_grad`] for the
/// orientation).
fn weight_grads(d_ys: &Tensor, x: &Tensor, h: &Tensor) -> Result<(Tensor, Tensor)> {
    let inputs = x.dims()[1];
    let both = Tensor::cat(&[x.clone(), h.clone()], 1)?.t()?.matmul(d_ys)?;
    let part = |from: usize, len: usize| both.narrow(0, from, len)?.t()?.contiguous();
    Ok((part(0, inputs)?, part(inputs, h.dims()[1])?))
}
