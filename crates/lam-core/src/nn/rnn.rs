//! Recurrent layers with PyTorch's names, shapes, gate order and
//! initialisation: [`RNN`] (tanh or ReLU), [`LSTM`] and [`GRU`].
//!
//! All three share one engine (`rnn/engine`): per layer and direction, one
//! matmul projects the whole input sequence (`[T, B, in] → [T, B,
//! gates·H]`), then a loop over time does one `h Wₕₕᵀ` matmul and the gate
//! arithmetic per step.
//! An LSTM (without projection) or GRU layer runs that loop as one tape op
//! (`rnn/sequence`) with the gates as one fused op per step (`rnn/fused`),
//! so its backward pass is one loop too, with `Wₕₕ`'s gradient as one
//! matmul over all steps; the plain RNN and an LSTM with `proj_size` record
//! each step's ops on the tape and collect the steps with [`Tensor::stack`].
//! Either way everything is tensor ops and runs on every backend.
//!
//! Shapes (as PyTorch): input `[T, B, in]`, or `[B, T, in]` with
//! `batch_first`, or unbatched `[T, in]`; output `[T, B, D·H]` (`D = 2` when
//! bidirectional); states `[num_layers·D, B, H]` (unbatched: `[num_layers·D,
//! H]`). `batch_first` never applies to the states.
//!
//! Parameters per layer `k` (and `_reverse` for the backward direction):
//! `weight_ih_l{k}` `[G·H, in]`, `weight_hh_l{k}` `[G·H, H]`, `bias_ih_l{k}`
//! and `bias_hh_l{k}` `[G·H]`, with `G` gates stacked in PyTorch's order —
//! LSTM `i, f, g, o`; GRU `r, z, n` — all initialised `U(-1/√H, 1/√H)`.
//!
//! An LSTM with `proj_size = P > 0` (PyTorch's LSTMP) also has
//! `weight_hr_l{k}` `[P, H]`: each step's `h` is projected to `P` features,
//! so `weight_hh_l{k}` is `[4H, P]`, the output `[T, B, D·P]` and `h_n`
//! `[layers·D, B, P]`, while `c_n` keeps `H`.
//!
//! Each layer's `forward(x, state)` is an inherent method returning the
//! output and the final state; [`Module::forward`] runs it from zero state and
//! returns the output only (so the layers fit a [`super::Sequential`]). The
//! inherent method wins in `rnn.forward(..)`; through a `Box` or `dyn Module`
//! only the trait's one-argument form is visible.
//!
//! One step of each cell is also a plain function ([`rnn_tanh_cell`],
//! [`rnn_relu_cell`], [`lstm_cell`], [`gru_cell`]; `torch.*_cell`), sharing
//! the gate arithmetic with the layers, and a module ([`RNNCell`],
//! [`LSTMCell`], [`GRUCell`]; `nn.*Cell`) in `rnn/cells`.

mod cell;
mod cells;
mod engine;
mod fused;
mod sequence;

use cell::Cell;
pub use cell::{gru_cell, lstm_cell, rnn_relu_cell, rnn_tanh_cell};
pub use cells::{GRUCell, LSTMCell, RNNCell};
use engine::Recurrent;
pub use fused::{gru_gates, lstm_gates};

use super::summary::{note, record};
use super::{Entry, Module, Visit};
use crate::{Device, Result, Tensor};

/// The nonlinearity of a plain [`RNN`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// Options shared by [`RNN`], [`LSTM`] and [`GRU`] (PyTorch's keyword
/// arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnConfig {
    /// Stacked recurrent layers (default 1).
    pub num_layers: usize,
    /// Learn `bias_ih` and `bias_hh` (default true).
    pub bias: bool,
    /// Input and output are `[B, T, feature]` instead of `[T, B, feature]`
    /// (default false; states keep `[layers, B, H]` either way).
    pub batch_first: bool,
    /// Dropout on each layer's output except the last, in training mode
    /// only (default 0).
    pub dropout: f32,
    /// Also run each layer backwards in time and concatenate (default false).
    pub bidirectional: bool,
    /// LSTM only: project each hidden state to this many features (default
    /// 0, none; must be below `hidden_size`).
    pub proj_size: usize,
}

impl Default for RnnConfig {
    fn default() -> Self {
        RnnConfig {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            proj_size: 0,
        }
    }
}

impl RnnConfig {
    /// Sets `num_layers`.
    pub fn num_layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }
    /// Sets `bias`.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Sets `batch_first`.
    pub fn batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }
    /// Sets the between-layer `dropout`.
    pub fn dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }
    /// Sets `bidirectional`.
    pub fn bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        self
    }
    /// Sets `proj_size` (LSTM only).
    pub fn proj_size(mut self, proj_size: usize) -> Self {
        self.proj_size = proj_size;
        self
    }
}

/// An Elman RNN: `h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)` (`nn.RNN`).
pub struct RNN {
    core: Recurrent,
}

/// Long short-term memory (`nn.LSTM`), gates `i, f, g, o`.
pub struct LSTM {
    core: Recurrent,
}

/// Gated recurrent unit (`nn.GRU`), gates `r, z, n`.
pub struct GRU {
    core: Recurrent,
}

impl RNN {
    /// `nn.RNN(input_size, hidden_size)` (tanh, one layer).
    pub fn new(input_size: usize, hidden_size: usize, device: &Device) -> Result<RNN> {
        RNN::with_config(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            RnnConfig::default(),
            device,
        )
    }

    /// `nn.RNN` with a nonlinearity and options.
    pub fn with_config(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: RnnNonlinearity,
        config: RnnConfig,
        device: &Device,
    ) -> Result<RNN> {
        let cell = match nonlinearity {
            RnnNonlinearity::Tanh => Cell::Tanh,
            RnnNonlinearity::Relu => Cell::Relu,
        };
        Ok(RNN {
            core: Recurrent::new("RNN", cell, input_size, hidden_size, config, device)?,
        })
    }

    /// Runs the sequence from `h0` (zeros when `None`); returns the output
    /// (`[T, B, D·H]`) and the final hidden state `h_n` (`[layers·D, B, H]`).
    pub fn forward(&self, input: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (out, mut states) = self.core.run(input, &[h0])?;
        note(self, &out);
        Ok((out, states.remove(0)))
    }

    /// The nonlinearity.
    pub fn nonlinearity(&self) -> RnnNonlinearity {
        match self.core.cell {
            Cell::Relu => RnnNonlinearity::Relu,
            _ => RnnNonlinearity::Tanh,
        }
    }
}

impl LSTM {
    /// `nn.LSTM(input_size, hidden_size)`.
    pub fn new(input_size: usize, hidden_size: usize, device: &Device) -> Result<LSTM> {
        LSTM::with_config(input_size, hidden_size, RnnConfig::default(), device)
    }

    /// `nn.LSTM` with options.
    pub fn with_config(
        input_size: usize,
        hidden_size: usize,
        config: RnnConfig,
        device: &Device,
    ) -> Result<LSTM> {
        Ok(LSTM {
            core: Recurrent::new("LSTM", Cell::Lstm, input_size, hidden_size, config, device)?,
        })
    }

    /// Runs the sequence from `(h0, c0)` (zeros when `None`); returns the
    /// output (`[T, B, D·H]`) and the final `(h_n, c_n)` (`[layers·D, B, H]`).
    /// With `proj_size = P`, `h0`, `h_n` and the output have `P` features
    /// in place of `H`.
    pub fn forward(
        &self,
        input: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let (h0, c0) = match state {
            Some((h, c)) => (Some(h), Some(c)),
            None => (None, None),
        };
        let (out, mut states) = self.core.run(input, &[h0, c0])?;
        note(self, &out);
        let c = states.remove(1);
        let h = states.remove(0);
        Ok((out, (h, c)))
    }

    /// Features of the projected hidden state (0: no projection).
    pub fn proj_size(&self) -> usize {
        self.core.config.proj_size
    }
}

impl GRU {
    /// `nn.GRU(input_size, hidden_size)`.
    pub fn new(input_size: usize, hidden_size: usize, device: &Device) -> Result<GRU> {
        GRU::with_config(input_size, hidden_size, RnnConfig::default(), device)
    }

    /// `nn.GRU` with options.
    pub fn with_config(
        input_size: usize,
        hidden_size: usize,
        config: RnnConfig,
        device: &Device,
    ) -> Result<GRU> {
        Ok(GRU {
            core: Recurrent::new("GRU", Cell::Gru, input_size, hidden_size, config, device)?,
        })
    }

    /// Runs the sequence from `h0` (zeros when `None`); returns the output
    /// (`[T, B, D·H]`) and the final hidden state `h_n` (`[layers·D, B, H]`).
    pub fn forward(&self, input: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (out, mut states) = self.core.run(input, &[h0])?;
        note(self, &out);
        Ok((out, states.remove(0)))
    }
}

/// Accessors and [`Module`] for the three layers, which differ only in
/// their cell.
macro_rules! recurrent_common {
    ($name:ident) => {
        impl $name {
            /// Features of each input step.
            pub fn input_size(&self) -> usize {
                self.core.input_size
            }
            /// Features of the hidden state.
            pub fn hidden_size(&self) -> usize {
                self.core.hidden_size
            }
            /// The options it was built with.
            pub fn config(&self) -> RnnConfig {
                self.core.config
            }
            /// True in training mode (between-layer dropout active).
            pub fn is_training(&self) -> bool {
                self.core.mode.is_training()
            }
        }

        impl Module for $name {
            /// The output sequence from zero initial state.
            fn forward(&self, input: &Tensor) -> Result<Tensor> {
                let none = [None, None];
                let n = self.core.cell.num_states();
                record(self, self.core.run(input, &none[..n]).map(|(out, _)| out))
            }

            fn extra_repr(&self) -> String {
                self.core.extra_repr()
            }
        }

        // Per-layer names (`weight_ih_l0`, `bias_hh_l1_reverse`, ...), so
        // written by hand rather than derived from fields.
        impl Visit for $name {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
                self.core.visit(prefix, f)
            }
        }

        impl std::fmt::Display for $name {
            /// PyTorch's `print(model)`.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                super::fmt_module(self, f)
            }
        }
    };
}

recurrent_common!(RNN);
recurrent_common!(LSTM);
recurrent_common!(GRU);
