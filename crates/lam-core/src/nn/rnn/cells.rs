//! The single-step recurrent modules [`RNNCell`], [`LSTMCell`] and
//! [`GRUCell`] (PyTorch's `nn.RNNCell`, `nn.LSTMCell`, `nn.GRUCell`): one
//! time step from an input `[B, in]` (unbatched `[in]`) and a state `[B, H]`
//! (`[H]`), for loops that need to act between steps (decoders, attention
//! over the previous state).
//!
//! Each holds PyTorch's parameters under PyTorch's names — `weight_ih`
//! `[G·H, in]`, `weight_hh` `[G·H, H]`, `bias_ih` and `bias_hh` `[G·H]` —
//! initialised `U(-1/√H, 1/√H)`, and runs the step through the `*_cell`
//! functions of `cell`, whose gate arithmetic the multi-step layers share.

use super::cell::Cell;
use super::{gru_cell, lstm_cell, rnn_relu_cell, rnn_tanh_cell, RnnNonlinearity};
use crate::nn::summary::{note, record};
use crate::nn::{init, py_bool, Module};
use crate::{Device, Error, Result, Tensor};

/// One step of an Elman RNN: `h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
#[derive(Module)]
pub struct RNNCell {
    /// `[H, in]`.
    #[module(param)]
    pub weight_ih: Tensor,
    /// `[H, H]`.
    #[module(param)]
    pub weight_hh: Tensor,
    /// `[H]`, absent without bias.
    #[module(param)]
    pub bias_ih: Option<Tensor>,
    /// `[H]`, absent without bias.
    #[module(param)]
    pub bias_hh: Option<Tensor>,
    #[module(skip)]
    nonlinearity: RnnNonlinearity,
}

/// One LSTM step, gates `i, f, g, o`.
#[derive(Module)]
pub struct LSTMCell {
    /// `[4H, in]`.
    #[module(param)]
    pub weight_ih: Tensor,
    /// `[4H, H]`.
    #[module(param)]
    pub weight_hh: Tensor,
    /// `[4H]`, absent without bias.
    #[module(param)]
    pub bias_ih: Option<Tensor>,
    /// `[4H]`, absent without bias.
    #[module(param)]
    pub bias_hh: Option<Tensor>,
}

/// One GRU step, gates `r, z, n`.
#[derive(Module)]
pub struct GRUCell {
    /// `[3H, in]`.
    #[module(param)]
    pub weight_ih: Tensor,
    /// `[3H, H]`.
    #[module(param)]
    pub weight_hh: Tensor,
    /// `[3H]`, absent without bias.
    #[module(param)]
    pub bias_ih: Option<Tensor>,
    /// `[3H]`, absent without bias.
    #[module(param)]
    pub bias_hh: Option<Tensor>,
}

impl RNNCell {
    /// `nn.RNNCell(input_size, hidden_size)` (tanh, with bias).
    pub fn new(input_size: usize, hidden_size: usize, device: &Device) -> Result<RNNCell> {
        RNNCell::with_config(input_size, hidden_size, RnnNonlinearity::Tanh, true, device)
    }

    /// `nn.RNNCell(input_size, hidden_size, bias, nonlinearity)`.
    pub fn with_config(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: RnnNonlinearity,
        bias: bool,
        device: &Device,
    ) -> Result<RNNCell> {
        let (weight_ih, weight_hh, bias_ih, bias_hh) =
            new_weights("RNNCell", Cell::Tanh, input_size, hidden_size, bias, device)?;
        Ok(RNNCell {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            nonlinearity,
        })
    }

    /// The next hidden state from `input` and `hx` (zeros when `None`).
    pub fn forward(&self, input: &Tensor, hx: Option<&Tensor>) -> Result<Tensor> {
        let hx = state_or_zeros(input, hx, self.hidden_size())?;
        let step = match self.nonlinearity {
            RnnNonlinearity::Tanh => rnn_tanh_cell,
            RnnNonlinearity::Relu => rnn_relu_cell,
        };
        let (b_ih, b_hh) = (self.bias_ih.as_ref(), self.bias_hh.as_ref());
        let h = step(input, &hx, &self.weight_ih, &self.weight_hh, b_ih, b_hh)?;
        note(self, &h);
        Ok(h)
    }

    /// The nonlinearity.
    pub fn nonlinearity(&self) -> RnnNonlinearity {
        self.nonlinearity
    }
}

impl LSTMCell {
    /// `nn.LSTMCell(input_size, hidden_size)`.
    pub fn new(input_size: usize, hidden_size: usize, device: &Device) -> Result<LSTMCell> {
        LSTMCell::with_bias(input_size, hidden_size, true, device)
    }

    /// `nn.LSTMCell(input_size, hidden_size, bias)`.
    pub fn with_bias(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        device: &Device,
    ) -> Result<LSTMCell> {
        let (weight_ih, weight_hh, bias_ih, bias_hh) = new_weights(
            "LSTMCell",
            Cell::Lstm,
            input_size,
            hidden_size,
            bias,
            device,
        )?;
        Ok(LSTMCell {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        })
    }

    /// The next `(h, c)` from `input` and `(hx, cx)` (zeros when `None`).
    pub fn forward(
        &self,
        input: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let hidden = self.hidden_size();
        let (hx, cx) = match state {
            Some((h, c)) => (h.clone(), c.clone()),
            None => (
                state_or_zeros(input, None, hidden)?,
                state_or_zeros(input, None, hidden)?,
            ),
        };
        let (b_ih, b_hh) = (self.bias_ih.as_ref(), self.bias_hh.as_ref());
        let (h, c) = lstm_cell(
            input,
            (&hx, &cx),
            &self.weight_ih,
            &self.weight_hh,
            b_ih,
            b_hh,
        )?;
        note(self, &h);
        Ok((h, c))
    }
}

impl GRUCell {
    /// `nn.GRUCell(input_size, hidden_size)`.
    pub fn new(input_size: usize, hidden_size: usize, device: &Device) -> Result<GRUCell> {
        GRUCell::with_bias(input_size, hidden_size, true, device)
    }

    /// `nn.GRUCell(input_size, hidden_size, bias)`.
    pub fn with_bias(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        device: &Device,
    ) -> Result<GRUCell> {
        let (weight_ih, weight_hh, bias_ih, bias_hh) =
            new_weights("GRUCell", Cell::Gru, input_size, hidden_size, bias, device)?;
        Ok(GRUCell {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        })
    }

    /// The next hidden state from `input` and `hx` (zeros when `None`).
    pub fn forward(&self, input: &Tensor, hx: Option<&Tensor>) -> Result<Tensor> {
        let hx = state_or_zeros(input, hx, self.hidden_size())?;
        let (b_ih, b_hh) = (self.bias_ih.as_ref(), self.bias_hh.as_ref());
        let h = gru_cell(input, &hx, &self.weight_ih, &self.weight_hh, b_ih, b_hh)?;
        note(self, &h);
        Ok(h)
    }
}

/// Sizes and [`Module`] for the three cells.
macro_rules! cell_common {
    ($name:ident, $hidden:expr, |$cell:ident| $repr_extra:expr) => {
        impl $name {
            /// Features of the input.
            pub fn input_size(&self) -> usize {
                self.weight_ih.dims()[1]
            }

            /// Features of the hidden state.
            pub fn hidden_size(&self) -> usize {
                self.weight_hh.dims()[1]
            }

            /// Whether it has `bias_ih` and `bias_hh`.
            pub fn bias(&self) -> bool {
                self.bias_ih.is_some()
            }
        }

        impl Module for $name {
            /// One step from zero state; the next hidden state `h`.
            fn forward(&self, input: &Tensor) -> Result<Tensor> {
                record(self, $name::forward(self, input, None).map($hidden))
            }

            /// PyTorch's `RNNCellBase.extra_repr`.
            fn extra_repr(&self) -> String {
                let $cell = self;
                let mut s = format!("{}, {}", self.input_size(), self.hidden_size());
                if !self.bias() {
                    s += &format!(", bias={}", py_bool(false));
                }
                s + $repr_extra
            }
        }
    };
}

cell_common!(RNNCell, |h| h, |cell| match cell.nonlinearity {
    RnnNonlinearity::Tanh => "",
    RnnNonlinearity::Relu => ", nonlinearity=relu",
});
cell_common!(LSTMCell, |(h, _c)| h, |_cell| "");
cell_common!(GRUCell, |h| h, |_cell| "");

/// `weight_ih`, `weight_hh`, `bias_ih` and `bias_hh`.
type CellWeights = (Tensor, Tensor, Option<Tensor>, Option<Tensor>);

/// `weight_ih`, `weight_hh` and (with `bias`) the two biases of a `cell`,
/// checked sizes, PyTorch's initialisation.
fn new_weights(
    op: &'static str,
    cell: Cell,
    input_size: usize,
    hidden_size: usize,
    bias: bool,
    device: &Device,
) -> Result<CellWeights> {
    if input_size == 0 || hidden_size == 0 {
        return Err(Error::invalid(
            op,
            format!(
                "input_size and hidden_size must be positive, found {input_size} and {hidden_size}"
            ),
        ));
    }
    let g = cell.gates() * hidden_size;
    let uniform =
        |shape: &[usize]| init::default_uniform(shape, hidden_size, device)?.requires_grad_();
    let (b_ih, b_hh) = if bias {
        (Some(uniform(&[g])?), Some(uniform(&[g])?))
    } else {
        (None, None)
    };
    Ok((
        uniform(&[g, input_size])?,
        uniform(&[g, hidden_size])?,
        b_ih,
        b_hh,
    ))
}

/// `hx`, or a zero state `[B, H]` for a batched `input` (`[H]` otherwise;
/// a wrong input rank is reported by the step itself).
fn state_or_zeros(input: &Tensor, hx: Option<&Tensor>, hidden: usize) -> Result<Tensor> {
    match hx {
        Some(h) => Ok(h.clone()),
        None if input.rank() == 2 => Tensor::zeros(&[input.dims()[0], hidden], &input.device()),
        None => Tensor::zeros(&[hidden], &input.device()),
    }
}
