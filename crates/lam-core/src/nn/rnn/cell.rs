//! One step of each recurrent cell: the gate arithmetic shared by the
//! layers of [`super::rnn`], and the public single-step functions
//! [`rnn_tanh_cell`], [`rnn_relu_cell`], [`lstm_cell`] and [`gru_cell`]
//! (PyTorch's `torch.*_cell`, the computations of `nn.RNNCell`,
//! `nn.LSTMCell` and `nn.GRUCell`).
//!
//! Gate order is PyTorch's: LSTM `i, f, g, o`; GRU `r, z, n` with
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`.

use super::fused::{gru_gates, lstm_gates};
use crate::tensor::check_operands;
use crate::{DType, Error, Result, Tensor};

/// The recurrence of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cell {
    Tanh,
    Relu,
    Lstm,
    Gru,
}

impl Cell {
    pub(super) fn gates(self) -> usize {
        match self {
            Cell::Tanh | Cell::Relu => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// Tensors of state: `h`, plus `c` for the LSTM.
    pub(super) fn num_states(self) -> usize {
        if self == Cell::Lstm {
            2
        } else {
            1
        }
    }
}

/// One step of `cell` from the input projection `xp` and the hidden
/// projection `hp` (both `[B, G·H]`; for the GRU `hp` must include `b_hh`,
/// for the others either may carry both biases) and the current `state`
/// (`h`, and `c` for the LSTM, each `[B, H]`): the next state. The LSTM and
/// GRU gates are one fused op each (`rnn/fused`).
///
/// Under autocast the projections are `F16` products; the gates read them
/// as `F32` (an elementwise op on halves alone would return halves), so
/// the state stays `F32`.
pub(super) fn step(cell: Cell, xp: &Tensor, hp: &Tensor, state: &[Tensor]) -> Result<Vec<Tensor>> {
    let (xp, hp) = (
        &xp.float32("recurrent step")?,
        &hp.float32("recurrent step")?,
    );
    Ok(match cell {
        Cell::Tanh => vec![xp.add(hp)?.tanh()?],
        Cell::Relu => vec![xp.add(hp)?.relu()?],
        Cell::Lstm => {
            let (h_new, c) = lstm_gates(xp, hp, &state[1])?;
            vec![h_new, c]
        }
        Cell::Gru => vec![gru_gates(xp, hp, &state[0])?],
    })
}

/// A single cell step as a function (`torch.rnn_tanh_cell` and friends):
/// validates the shapes, projects, and runs [`step`].
fn cell_step(
    op: &'static str,
    cell: Cell,
    input: &Tensor,
    state: &[&Tensor],
    weights: [&Tensor; 2],
    biases: [Option<&Tensor>; 2],
) -> Result<Vec<Tensor>> {
    let [w_ih, w_hh] = weights;
    let operands = [input, w_ih, w_hh].into_iter().chain(state.iter().copied());
    check_operands(op, DType::F32, operands)?;
    let (g, h) = w_hh.dims2(op, "weight_hh [gates·hidden, hidden]")?;
    if g != cell.gates() * h || h == 0 {
        return Err(Error::shape(
            op,
            format!("weight_hh of shape [{}·hidden, hidden]", cell.gates()),
            w_hh.dims(),
        ));
    }
    let (g_ih, in_size) = w_ih.dims2(op, "weight_ih [gates·hidden, input_size]")?;
    if g_ih != g {
        return Err(Error::shape(
            op,
            format!("weight_ih of shape [{g}, input_size]"),
            w_ih.dims(),
        ));
    }
    let batched = input.batched(op, 2, "[batch, input_size]", "[input_size]")?;
    if input.dims()[input.rank() - 1] != in_size {
        return Err(Error::shape(
            op,
            format!("an input of shape [batch, {in_size}] or [{in_size}]"),
            input.dims(),
        ));
    }
    let (x, state_shape) = if batched {
        (input.clone(), vec![input.dims()[0], h])
    } else {
        (input.unsqueeze(0)?, vec![h])
    };
    let state: Vec<Tensor> = state
        .iter()
        .map(|s| {
            s.expect_shape(op, "a state", &state_shape)?;
            if batched {
                Ok((*s).clone())
            } else {
                s.unsqueeze(0)
            }
        })
        .collect::<Result<_>>()?;
    let xp = crate::nn::functional::linear(&x, w_ih, biases[0])?;
    let hp = crate::nn::functional::linear(&state[0], w_hh, biases[1])?;
    let next = step(cell, &xp, &hp, &state)?;
    next.into_iter()
        .map(|s| if batched { Ok(s) } else { s.squeeze(0) })
        .collect()
}

/// One step of a tanh RNN (`nn.RNNCell`'s computation): `input` `[B, in]`
/// (or `[in]`), `hx` `[B, H]`, `w_ih` `[H, in]`, `w_hh` `[H, H]`, biases `[H]`.
pub fn rnn_tanh_cell(
    input: &Tensor,
    hx: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: Option<&Tensor>,
    b_hh: Option<&Tensor>,
) -> Result<Tensor> {
    let mut s = cell_step(
        "rnn_tanh_cell",
        Cell::Tanh,
        input,
        &[hx],
        [w_ih, w_hh],
        [b_ih, b_hh],
    )?;
    Ok(s.remove(0))
}

/// One step of a ReLU RNN, shaped as [`rnn_tanh_cell`].
pub fn rnn_relu_cell(
    input: &Tensor,
    hx: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: Option<&Tensor>,
    b_hh: Option<&Tensor>,
) -> Result<Tensor> {
    let mut s = cell_step(
        "rnn_relu_cell",
        Cell::Relu,
        input,
        &[hx],
        [w_ih, w_hh],
        [b_ih, b_hh],
    )?;
    Ok(s.remove(0))
}

/// One LSTM step (`nn.LSTMCell`'s computation): `(hx, cx)` `[B, H]` each,
/// weights `[4H, in]` and `[4H, H]` with gates `i, f, g, o`; returns `(h', c')`.
pub fn lstm_cell(
    input: &Tensor,
    (hx, cx): (&Tensor, &Tensor),
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: Option<&Tensor>,
    b_hh: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let mut s = cell_step(
        "lstm_cell",
        Cell::Lstm,
        input,
        &[hx, cx],
        [w_ih, w_hh],
        [b_ih, b_hh],
    )?;
    let c = s.remove(1);
    Ok((s.remove(0), c))
}

/// One GRU step (`nn.GRUCell`'s computation): weights `[3H, in]` and
/// `[3H, H]` with gates `r, z, n`, where
/// `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`.
pub fn gru_cell(
    input: &Tensor,
    hx: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: Option<&Tensor>,
    b_hh: Option<&Tensor>,
) -> Result<Tensor> {
    let mut s = cell_step(
        "gru_cell",
        Cell::Gru,
        input,
        &[hx],
        [w_ih, w_hh],
        [b_ih, b_hh],
    )?;
    Ok(s.remove(0))
}
