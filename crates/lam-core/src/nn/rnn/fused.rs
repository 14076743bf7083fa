//! The gate arithmetic of one LSTM or GRU step, from the two projections
//! to the next state, as one tape op: [`lstm_gates`] and [`gru_gates`]
//! (PyTorch's `_thnn_fused_lstm_cell` and `_thnn_fused_gru_cell`, the biases
//! already added to the projections).
//!
//! Each records one tape node. Its forward is the backend's fused kernel
//! (Backend `fused_lstm_cell`, `fused_gru_cell`) where it has one, and its
//! gradient the matching `_grad` kernel; a backend that declines either gets
//! the same formulas from elementwise ops, untaped. The unfused test
//! devices run those compositions on every backend, so both halves of each
//! path are checked against PyTorch and finite differences. During a graph
//! capture the step is the plain ops, each with its own node.
//!
//! The untaped halves ([`lstm_forward`], [`lstm_backward`] and the GRU's)
//! also serve the sequence engine of `rnn/sequence`, which runs a whole
//! layer as one tape op.

use crate::tensor::check_operands;
use crate::{no_grad, DType, Error, Layout, Result, Tensor};

/// One LSTM step from the input and hidden projections `input_gates` and
/// `hidden_gates` (`[B, 4H]` each, biases included, gates `i, f, g, o`) and
/// the cell state `c` (`[B, H]`): `(h', c')` with `c' = f ⊙ c + i ⊙ g` and
/// `h' = o ⊙ tanh(c')`.
pub fn lstm_gates(
    input_gates: &Tensor,
    hidden_gates: &Tensor,
    c: &Tensor,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "lstm_gates";
    let (b, h) = check(OP, 4, input_gates, hidden_gates, c)?;
    if crate::capture::hooked() || b * h == 0 {
        return lstm_composite(input_gates, hidden_gates, c, h);
    }
    let (hc, gates) = lstm_forward(input_gates, hidden_gates, c)?;
    let (hc_saved, c_saved) = (hc.clone(), c.detach());
    let out = Tensor::from_op(
        "lstm_gates",
        hc.storage(),
        hc.layout().clone(),
        &[input_gates, hidden_gates, c],
        move |g| {
            let (d_gates, d_c) =
                lstm_backward(&g.get(0)?, &g.get(1)?, &gates, &c_saved, &hc_saved.get(1)?)?;
            Ok(vec![Some(d_gates.clone()), Some(d_gates), Some(d_c)])
        },
    );
    Ok((out.get(0)?, out.get(1)?))
}

/// One GRU step from the input and hidden projections `input_gates` and
/// `hidden_gates` (`[B, 3H]` each, each with its own bias, gates `r, z, n`)
/// and the hidden state `h` (`[B, H]`): `h' = (1 − z) ⊙ n + z ⊙ h` with
/// `n = tanh(x_n + r ⊙ h_n)`.
pub fn gru_gates(input_gates: &Tensor, hidden_gates: &Tensor, h: &Tensor) -> Result<Tensor> {
    const OP: &str = "gru_gates";
    let (b, hidden) = check(OP, 3, input_gates, hidden_gates, h)?;
    if crate::capture::hooked() || b * hidden == 0 {
        return gru_composite(input_gates, hidden_gates, h, hidden);
    }
    let (out, gates) = gru_forward(input_gates, hidden_gates, h)?;
    let (hg_saved, h_saved) = (hidden_gates.detach(), h.detach());
    Ok(Tensor::from_op(
        "gru_gates",
        out.storage(),
        out.layout().clone(),
        &[input_gates, hidden_gates, h],
        move |g| {
            let (dx, dy, dh) = gru_backward(g, &gates, &hg_saved, &h_saved)?;
            Ok(vec![Some(dx), Some(dy), Some(dh)])
        },
    ))
}

/// An LSTM step, untaped: `hc` (`[2, B, H]`, `h'` then `c'`) and the
/// activated gates `[B, 4H]` — the backend's kernel, or the same formulas
/// from elementwise ops.
pub(super) fn lstm_forward(
    input_gates: &Tensor,
    hidden_gates: &Tensor,
    c: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (b, h) = (c.dims()[0], c.dims()[1]);
    let (xs, ys, cs) = (input_gates.storage(), hidden_gates.storage(), c.storage());
    let fused = c.backend().fused_lstm_cell(
        (&xs, input_gates.layout()),
        (&ys, hidden_gates.layout()),
        (&cs, c.layout()),
    )?;
    let dev = c.device();
    if let Some((hc, gates)) = fused {
        return Ok((
            Tensor::from_storage(hc, Layout::contiguous(&[2, b, h]), &dev),
            Tensor::from_storage(gates, Layout::contiguous(&[b, 4 * h]), &dev),
        ));
    }
    no_grad(|| {
        let pre = input_gates.add(hidden_gates)?;
        let gate = |k: usize| pre.narrow(-1, k * h, h);
        let (i, f, o) = (
            gate(0)?.sigmoid()?,
            gate(1)?.sigmoid()?,
            gate(3)?.sigmoid()?,
        );
        let g = gate(2)?.tanh()?;
        let c_new = f.mul(c)?.add(&i.mul(&g)?)?;
        let h_new = o.mul(&c_new.tanh()?)?;
        Ok((
            Tensor::stack(&[h_new, c_new], 0)?,
            Tensor::cat(&[i, f, g, o], -1)?,
        ))
    })
}

/// The gradient of an LSTM step, untaped: from `grad_h`, `grad_c`, the
/// activated `gates`, the step's input `c` and output `c_new`, the gradient
/// of the summed projections `[B, 4H]` and of `c` — the backend's kernel,
/// or the same formulas from elementwise ops.
pub(super) fn lstm_backward(
    grad_h: &Tensor,
    grad_c: &Tensor,
    gates: &Tensor,
    c: &Tensor,
    c_new: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (b, h) = (c.dims()[0], c.dims()[1]);
    let s = [grad_h, grad_c, gates, c, c_new].map(Tensor::storage);
    let fused = c.backend().fused_lstm_cell_grad(
        (&s[0], grad_h.layout()),
        (&s[1], grad_c.layout()),
        (&s[2], gates.layout()),
        (&s[3], c.layout()),
        (&s[4], c_new.layout()),
    )?;
    let dev = c.device();
    if let Some((d_gates, d_c)) = fused {
        return Ok((
            Tensor::from_storage(d_gates, Layout::contiguous(&[b, 4 * h]), &dev),
            Tensor::from_storage(d_c, Layout::contiguous(&[b, h]), &dev),
        ));
    }
    no_grad(|| {
        let gate = |k: usize| gates.narrow(-1, k * h, h);
        let (i, f, g, o) = (gate(0)?, gate(1)?, gate(2)?, gate(3)?);
        let tc = c_new.tanh()?;
        let d_cell = grad_c.add(&grad_h.mul(&o)?.mul(&one_minus_square(&tc)?)?)?;
        let d_i = d_cell.mul(&g)?.mul(&sigmoid_slope(&i)?)?;
        let d_f = d_cell.mul(c)?.mul(&sigmoid_slope(&f)?)?;
        let d_g = d_cell.mul(&i)?.mul(&one_minus_square(&g)?)?;
        let d_o = grad_h.mul(&tc)?.mul(&sigmoid_slope(&o)?)?;
        Ok((Tensor::cat(&[d_i, d_f, d_g, d_o], -1)?, d_cell.mul(&f)?))
    })
}

/// A GRU step, untaped: `h'` `[B, H]` and the activated gates `[B, 3H]` —
/// the backend's kernel, or the same formulas from elementwise ops.
pub(super) fn gru_forward(
    input_gates: &Tensor,
    hidden_gates: &Tensor,
    h: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (b, hidden) = (h.dims()[0], h.dims()[1]);
    let (xs, ys, hs) = (input_gates.storage(), hidden_gates.storage(), h.storage());
    let fused = h.backend().fused_gru_cell(
        (&xs, input_gates.layout()),
        (&ys, hidden_gates.layout()),
        (&hs, h.layout()),
    )?;
    let dev = h.device();
    if let Some((out, gates)) = fused {
        return Ok((
            Tensor::from_storage(out, Layout::contiguous(&[b, hidden]), &dev),
            Tensor::from_storage(gates, Layout::contiguous(&[b, 3 * hidden]), &dev),
        ));
    }
    no_grad(|| {
        let xg = |k: usize| input_gates.narrow(-1, k * hidden, hidden);
        let hg = |k: usize| hidden_gates.narrow(-1, k * hidden, hidden);
        let r = xg(0)?.add(&hg(0)?)?.sigmoid()?;
        let z = xg(1)?.add(&hg(1)?)?.sigmoid()?;
        let n = xg(2)?.add(&r.mul(&hg(2)?)?)?.tanh()?;
        let h_new = n.add(&z.mul(&h.sub(&n)?)?)?;
        Ok((h_new, Tensor::cat(&[r, z, n], -1)?))
    })
}

/// The gradient of a GRU step, untaped: from `grad_h`, the activated
/// `gates`, the hidden projection and the step's input `h`, the gradients
/// of the input projection, the hidden projection and `h` — the backend's
/// kernel, or the same formulas from elementwise ops.
pub(super) fn gru_backward(
    grad_h: &Tensor,
    gates: &Tensor,
    hidden_gates: &Tensor,
    h: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, hidden) = (h.dims()[0], h.dims()[1]);
    let s = [grad_h, gates, hidden_gates, h].map(Tensor::storage);
    let fused = h.backend().fused_gru_cell_grad(
        (&s[0], grad_h.layout()),
        (&s[1], gates.layout()),
        (&s[2], hidden_gates.layout()),
        (&s[3], h.layout()),
    )?;
    let dev = h.device();
    if let Some((dx, dy, dh)) = fused {
        let wide = Layout::contiguous(&[b, 3 * hidden]);
        return Ok((
            Tensor::from_storage(dx, wide.clone(), &dev),
            Tensor::from_storage(dy, wide, &dev),
            Tensor::from_storage(dh, Layout::contiguous(&[b, hidden]), &dev),
        ));
    }
    no_grad(|| {
        let gate = |k: usize| gates.narrow(-1, k * hidden, hidden);
        let (r, z, n) = (gate(0)?, gate(1)?, gate(2)?);
        let h_n = hidden_gates.narrow(-1, 2 * hidden, hidden)?;
        let one_minus_z = z.neg()?.add_scalar(1.0)?;
        let d_n = grad_h.mul(&one_minus_z)?.mul(&one_minus_square(&n)?)?;
        let d_z = grad_h.mul(&h.sub(&n)?)?.mul(&sigmoid_slope(&z)?)?;
        let d_r = d_n.mul(&h_n)?.mul(&sigmoid_slope(&r)?)?;
        let dx = Tensor::cat(&[d_r.clone(), d_z.clone(), d_n.clone()], -1)?;
        let dy = Tensor::cat(&[d_r, d_z, d_n.mul(&r)?], -1)?;
        Ok((dx, dy, grad_h.mul(&z)?))
    })
}

/// `1 − t²`: the slope of tanh at the point where it gave `t`.
fn one_minus_square(t: &Tensor) -> Result<Tensor> {
    t.square()?.neg()?.add_scalar(1.0)
}

/// `s (1 − s)`: the slope of the sigmoid at the point where it gave `s`.
fn sigmoid_slope(s: &Tensor) -> Result<Tensor> {
    s.mul(&s.neg()?.add_scalar(1.0)?)
}

/// The LSTM step from separate ops, each with its own gradient (what a
/// graph capture records).
fn lstm_composite(
    input_gates: &Tensor,
    hidden_gates: &Tensor,
    c: &Tensor,
    h: usize,
) -> Result<(Tensor, Tensor)> {
    let gates = input_gates.add(hidden_gates)?;
    let gate = |k: usize| gates.narrow(-1, k * h, h);
    let i_g = gate(0)?.sigmoid()?;
    let f_g = gate(1)?.sigmoid()?;
    let g_g = gate(2)?.tanh()?;
    let o_g = gate(3)?.sigmoid()?;
    let c_new = f_g.mul(c)?.add(&i_g.mul(&g_g)?)?;
    Ok((o_g.mul(&c_new.tanh()?)?, c_new))
}

/// The GRU step from separate ops, each with its own gradient (what a
/// graph capture records).
fn gru_composite(
    input_gates: &Tensor,
    hidden_gates: &Tensor,
    h: &Tensor,
    hidden: usize,
) -> Result<Tensor> {
    let xg = |k: usize| input_gates.narrow(-1, k * hidden, hidden);
    let hg = |k: usize| hidden_gates.narrow(-1, k * hidden, hidden);
    let r = xg(0)?.add(&hg(0)?)?.sigmoid()?;
    let z = xg(1)?.add(&hg(1)?)?.sigmoid()?;
    let n = xg(2)?.add(&r.mul(&hg(2)?)?)?.tanh()?;
    // h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
    n.add(&z.mul(&h.sub(&n)?)?)
}

/// Checks the operands of a step with `gates` gates: the two projections
/// `[B, gates·H]` and a state `[B, H]`, all `F32` on one device. Returns
/// `(B, H)`.
fn check(
    op: &'static str,
    gates: usize,
    input_gates: &Tensor,
    hidden_gates: &Tensor,
    state: &Tensor,
) -> Result<(usize, usize)> {
    check_operands(op, DType::F32, [input_gates, hidden_gates, state])?;
    let (b, h) = state.dims2(op, "a state [batch, hidden]")?;
    let want = [b, gates * h];
    for t in [input_gates, hidden_gates] {
        if t.dims() != want {
            return Err(Error::shape(
                op,
                format!(
                    "projections of shape {want:?} ({gates} gates of the state's {h} features)"
                ),
                t.dims(),
            ));
        }
    }
    Ok((b, h))
}
