//! The engine behind [`super::RNN`], [`super::LSTM`] and [`super::GRU`]:
//! each layer's weights in PyTorch's order and names, the checks of the
//! input and initial states, and the run over layers and directions —
//! each direction one input projection, then the time loop as one tape op
//! (`sequence`) or step by step (`cell::step`).

use super::cell::{step, Cell};
use super::{sequence, RnnConfig};
use crate::nn::{init, join, py_bool, py_float, Entry, Mode};
use crate::tensor::check_operands;
use crate::{DType, Device, Error, Result, Tensor};

/// The weights of one layer in one direction.
pub(super) struct Weights {
    /// `[G·H, in]`.
    w_ih: Tensor,
    /// `[G·H, H]`.
    w_hh: Tensor,
    /// `[G·H]` each, or absent without bias.
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
    /// `[P, H]`: the LSTM's projection, with `proj_size = P > 0`.
    w_hr: Option<Tensor>,
    /// `l{k}` or `l{k}_reverse`.
    suffix: String,
}

/// The engine shared by [`RNN`], [`LSTM`] and [`GRU`].
pub(super) struct Recurrent {
    op: &'static str,
    pub(super) cell: Cell,
    pub(super) input_size: usize,
    pub(super) hidden_size: usize,
    pub(super) config: RnnConfig,
    /// Layer-major, forward direction before reverse: PyTorch's order.
    weights: Vec<Weights>,
    pub(super) mode: Mode,
}

impl Recurrent {
    pub(super) fn new(
        op: &'static str,
        cell: Cell,
        input_size: usize,
        hidden_size: usize,
        config: RnnConfig,
        device: &Device,
    ) -> Result<Recurrent> {
        if input_size == 0 || hidden_size == 0 || config.num_layers == 0 {
            return Err(Error::invalid(
                op,
                format!(
                    "input_size, hidden_size and num_layers must be positive, found {input_size}, {hidden_size}, {}",
                    config.num_layers
                ),
            ));
        }
        if !(0.0..=1.0).contains(&config.dropout) {
            return Err(Error::invalid(
                op,
                format!("dropout must be in [0, 1], found {}", config.dropout),
            ));
        }
        let proj = config.proj_size;
        if proj > 0 && cell != Cell::Lstm {
            return Err(Error::invalid(
                op,
                format!("proj_size is only supported by LSTM, found proj_size {proj}"),
            ));
        }
        if proj >= hidden_size && proj > 0 {
            return Err(Error::invalid(
                op,
                format!("proj_size must be smaller than hidden_size {hidden_size}, found {proj}"),
            ));
        }
        // Features of `h`: the projection's when there is one.
        let h_size = if proj > 0 { proj } else { hidden_size };
        let dirs = if config.bidirectional { 2 } else { 1 };
        let g = cell.gates() * hidden_size;
        let uniform = |shape: &[usize]| -> Result<Tensor> {
            init::default_uniform(shape, hidden_size, device)?.requires_grad_()
        };
        let mut weights = Vec::with_capacity(config.num_layers * dirs);
        for layer in 0..config.num_layers {
            let in_size = if layer == 0 {
                input_size
            } else {
                h_size * dirs
            };
            for dir in 0..dirs {
                let (b_ih, b_hh) = if config.bias {
                    (Some(uniform(&[g])?), Some(uniform(&[g])?))
                } else {
                    (None, None)
                };
                let w_hr = if proj > 0 {
                    Some(uniform(&[proj, hidden_size])?)
                } else {
                    None
                };
                weights.push(Weights {
                    w_ih: uniform(&[g, in_size])?,
                    w_hh: uniform(&[g, h_size])?,
                    b_ih,
                    b_hh,
                    w_hr,
                    suffix: if dir == 0 {
                        format!("l{layer}")
                    } else {
                        format!("l{layer}_reverse")
                    },
                });
            }
        }
        Ok(Recurrent {
            op,
            cell,
            input_size,
            hidden_size,
            config,
            weights,
            mode: Mode::new(),
        })
    }

    fn dirs(&self) -> usize {
        if self.config.bidirectional {
            2
        } else {
            1
        }
    }

    pub(super) fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for w in &self.weights {
            let s = &w.suffix;
            f(
                &join(prefix, &format!("weight_ih_{s}")),
                Entry::Parameter(&w.w_ih),
            );
            f(
                &join(prefix, &format!("weight_hh_{s}")),
                Entry::Parameter(&w.w_hh),
            );
            if let Some(b) = &w.b_ih {
                f(&join(prefix, &format!("bias_ih_{s}")), Entry::Parameter(b));
            }
            if let Some(b) = &w.b_hh {
                f(&join(prefix, &format!("bias_hh_{s}")), Entry::Parameter(b));
            }
            if let Some(w) = &w.w_hr {
                f(
                    &join(prefix, &format!("weight_hr_{s}")),
                    Entry::Parameter(w),
                );
            }
        }
        self.mode.visit(prefix, f);
    }

    /// PyTorch's `RNNBase.extra_repr`: sizes, then the options that are not
    /// the defaults.
    pub(super) fn extra_repr(&self) -> String {
        let c = &self.config;
        let mut s = format!("{}, {}", self.input_size, self.hidden_size);
        if c.proj_size != 0 {
            s += &format!(", proj_size={}", c.proj_size);
        }
        if c.num_layers != 1 {
            s += &format!(", num_layers={}", c.num_layers);
        }
        if !c.bias {
            s += &format!(", bias={}", py_bool(false));
        }
        if c.batch_first {
            s += &format!(", batch_first={}", py_bool(true));
        }
        if c.dropout != 0.0 {
            s += &format!(", dropout={}", py_float(c.dropout));
        }
        if c.bidirectional {
            s += &format!(", bidirectional={}", py_bool(true));
        }
        s
    }

    /// Runs every layer; `initial` holds one optional tensor per state
    /// (`h`, and `c` for the LSTM). Returns the output in the caller's
    /// layout and the final states in the caller's batching.
    pub(super) fn run(
        &self,
        input: &Tensor,
        initial: &[Option<&Tensor>],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        if crate::capture::hooked() {
            return self.run_captured(input, initial);
        }
        let op = self.op;
        input.check_f32(op)?;
        let batched = input.batched(op, 3, "[seq, batch, feature] or batch_first", "unbatched")?;
        if input.dims()[input.rank() - 1] != self.input_size {
            let expected = match (batched, self.config.batch_first) {
                (true, true) => format!("an input of shape [batch, seq, {}]", self.input_size),
                (true, false) => format!("an input of shape [seq, batch, {}]", self.input_size),
                (false, _) => format!("an input of shape [seq, {}]", self.input_size),
            };
            return Err(Error::shape(op, expected, input.dims()));
        }
        // Time-major `[T, B, in]` from here on.
        let x = if !batched {
            input.unsqueeze(1)?
        } else if self.config.batch_first {
            input.transpose(0, 1)?
        } else {
            input.clone()
        };
        let (steps, batch) = (x.dims()[0], x.dims()[1]);
        if steps == 0 || batch == 0 {
            return Err(Error::invalid(
                op,
                format!(
                    "the sequence and the batch must be non-empty, found input shape {:?}",
                    input.dims()
                ),
            ));
        }
        let initial = self.initial_states(input, initial, batched, batch)?;
        let (layer_input, finals) = self.run_layers(x, &initial)?;

        let output = if !batched {
            layer_input.squeeze(1)?
        } else if self.config.batch_first {
            layer_input.transpose(0, 1)?
        } else {
            layer_input
        };
        let states = finals
            .iter()
            .map(|per_layer| {
                let s = Tensor::stack(per_layer, 0)?;
                if batched {
                    Ok(s)
                } else {
                    s.squeeze(1)
                }
            })
            .collect::<Result<_>>()?;
        Ok((output, states))
    }

    /// [`Recurrent::run`] recorded as one graph op (the layer as a whole).
    fn run_captured(
        &self,
        input: &Tensor,
        initial: &[Option<&Tensor>],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        if self.config.proj_size != 0 {
            return Err(Error::invalid(
                "capture",
                "an LSTM with proj_size cannot be captured (ONNX's LSTM has no projection)",
            ));
        }
        let op = crate::capture::Op::Recurrent(crate::capture::Recurrent {
            cell: match self.cell {
                Cell::Tanh => crate::capture::RecurrentCell::Tanh,
                Cell::Relu => crate::capture::RecurrentCell::Relu,
                Cell::Lstm => crate::capture::RecurrentCell::Lstm,
                Cell::Gru => crate::capture::RecurrentCell::Gru,
            },
            hidden_size: self.hidden_size,
            num_layers: self.config.num_layers,
            bidirectional: self.config.bidirectional,
            batch_first: self.config.batch_first,
            batched: input.rank() == 3,
            bias: self.config.bias,
        });
        let mut inputs = vec![Some(input)];
        inputs.extend(initial.iter().copied());
        for w in &self.weights {
            inputs.extend([
                Some(&w.w_ih),
                Some(&w.w_hh),
                w.b_ih.as_ref(),
                w.b_hh.as_ref(),
            ]);
        }
        let mut outs = crate::capture::traced_many(
            || op,
            &inputs,
            || {
                let (out, states) = self.run(input, initial)?;
                Ok(std::iter::once(out).chain(states).collect())
            },
        )?;
        let out = outs.remove(0);
        Ok((out, outs))
    }

    /// Every layer and direction over `x: [T, B, in]` from `initial` (one
    /// `[layers·D, B, H]` per state kind): the last layer's output
    /// `[T, B, D·H]` and, per state kind, the final `[B, H]` of each layer
    /// and direction.
    fn run_layers(&self, x: Tensor, initial: &[Tensor]) -> Result<(Tensor, Vec<Vec<Tensor>>)> {
        let (layers, dirs) = (self.config.num_layers, self.dirs());
        let mut layer_input = x;
        // Final states per state kind, one `[B, H]` per layer and direction.
        let mut finals: Vec<Vec<Tensor>> = vec![Vec::new(); initial.len()];
        for layer in 0..layers {
            let mut outputs = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let index = layer * dirs + dir;
                let w = &self.weights[index];
                let start: Vec<Tensor> = initial
                    .iter()
                    .map(|s| s.get(index))
                    .collect::<Result<_>>()?;
                let (out, end) = self.run_direction(&layer_input, w, start, dir == 1)?;
                outputs.push(out);
                for (k, s) in end.into_iter().enumerate() {
                    finals[k].push(s);
                }
            }
            layer_input = if dirs == 1 {
                outputs.remove(0)
            } else {
                Tensor::cat(&outputs, -1)?
            };
            let training = self.mode.is_training();
            if layer + 1 < layers && training && self.config.dropout > 0.0 {
                layer_input = crate::nn::dropout::dropout(&layer_input, self.config.dropout, true)?;
            }
        }
        Ok((layer_input, finals))
    }

    /// Features of state kind `k`: `h` has the projection's (when there is
    /// one), `c` the hidden size.
    fn state_size(&self, k: usize) -> usize {
        match (k, self.config.proj_size) {
            (0, p) if p > 0 => p,
            _ => self.hidden_size,
        }
    }

    /// Each initial state as `[layers·D, B, size]`: given ones checked (in
    /// the caller's batching) and given a batch dim, missing ones zero.
    fn initial_states(
        &self,
        input: &Tensor,
        initial: &[Option<&Tensor>],
        batched: bool,
        batch: usize,
    ) -> Result<Vec<Tensor>> {
        let layers = self.config.num_layers * self.dirs();
        initial
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let shape = [layers, batch, self.state_size(k)];
                match s {
                    None => Tensor::zeros(&shape, &input.device()),
                    Some(s) => {
                        check_operands(self.op, DType::F32, [input, s])?;
                        if batched {
                            s.expect_shape(self.op, "an initial state", &shape)?;
                            Ok((*s).clone())
                        } else {
                            s.expect_shape(self.op, "an initial state", &[layers, shape[2]])?;
                            s.unsqueeze(1)
                        }
                    }
                }
            })
            .collect()
    }

    /// One layer in one direction over `x: [T, B, in]` from `state` (one
    /// `[B, H]` per state kind): the outputs `[T, B, H]` in time order, and
    /// the final state.
    fn run_direction(
        &self,
        x: &Tensor,
        w: &Weights,
        state: Vec<Tensor>,
        reverse: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        // Every step's input projection as one `[T·B, in] × [in, G·H]`
        // product with its bias added as it is written. For the GRU `b_hh`
        // must stay inside `r ⊙ (…)`; the others fold it into that bias.
        let fold_hh_bias = self.cell != Cell::Gru;
        let bias = match (&w.b_ih, &w.b_hh) {
            (Some(b_ih), Some(b_hh)) if fold_hh_bias => Some(b_ih.add(b_hh)?),
            (b_ih, _) => b_ih.clone(),
        };
        let (steps, batch, in_f) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let rows = x.reshape_exact(&[steps * batch, in_f])?;
        // The LSTM's op projects its input itself, so that both weights'
        // gradients come from one product (`rnn/sequence`); autocast's
        // `F16` projection stays a product of its own.
        let autocast = crate::amp::autocast_dtype(&x.device()).is_some();
        if self.cell == Cell::Lstm && w.w_hr.is_none() && !autocast {
            let input = sequence::Input::Rows {
                x: &rows,
                w_ih: &w.w_ih,
                bias: bias.as_ref(),
                steps,
            };
            return sequence::run(self.cell, input, &w.w_hh, None, &state, reverse);
        }
        let projected = crate::nn::functional::linear(&rows, &w.w_ih, bias.as_ref())?
            .reshape_exact(&[steps, batch, w.w_ih.dims()[0]])?;
        if w.w_hr.is_none() && matches!(self.cell, Cell::Lstm | Cell::Gru) {
            let b_hh = if fold_hh_bias { None } else { w.b_hh.as_ref() };
            let input = sequence::Input::Projected(&projected);
            return sequence::run(self.cell, input, &w.w_hh, b_hh, &state, reverse);
        }
        let w_hh_t = w.w_hh.t()?;
        let mut outputs: Vec<Tensor> = Vec::with_capacity(steps);
        let mut state = state;
        for i in 0..steps {
            let t = if reverse { steps - 1 - i } else { i };
            let xp = projected.get(t)?; // [B, G·H]
            let mut hp = state[0].matmul(&w_hh_t)?; // [B, G·H]
            if !fold_hh_bias {
                if let Some(b) = &w.b_hh {
                    hp = hp.add(b)?;
                }
            }
            state = step(self.cell, &xp, &hp, &state)?;
            if let Some(w_hr) = &w.w_hr {
                // The projection is an `F16` product under autocast; the
                // state stays `F32`.
                state[0] = state[0].matmul(&w_hr.t()?)?.float32("lstm projection")?;
            }
            outputs.push(state[0].clone());
        }
        if reverse {
            outputs.reverse();
        }
        Ok((Tensor::stack(&outputs, 0)?, state))
    }
}
