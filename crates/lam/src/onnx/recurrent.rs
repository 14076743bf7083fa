//! `RNN`, `LSTM` and `GRU` as ONNX's own recurrent ops, one node per layer.
//!
//! ONNX stacks each layer's weights over directions (`W [D, G·H, in]`,
//! `R [D, G·H, H]`, `B [D, 2·G·H]`, input and recurrent biases joined) and
//! orders the gates its own way: LSTM `i, o, f, c` where PyTorch (and lam)
//! have `i, f, g, o`; GRU `z, r, h` where they have `r, z, n` (with
//! `linear_before_reset = 1`, PyTorch's GRU). The weights are rewritten in
//! that order as initializers named after the layer (`lstm.onnx_W_l0`).
//! ONNX's `Y` is `[T, D, B, H]`; lam's output `[T, B, D·H]` is a transpose
//! and a reshape of it.

use lam_core::capture::{Node, Recurrent, RecurrentCell, ValueId};
use lam_core::Result;

use super::lower::{ints, unsupported, Builder};
use super::proto::Attr;

/// PyTorch's gate blocks in ONNX's order.
fn gate_order(cell: RecurrentCell) -> &'static [usize] {
    match cell {
        RecurrentCell::Lstm => &[0, 3, 1, 2],
        RecurrentCell::Gru => &[1, 0, 2],
        RecurrentCell::Tanh | RecurrentCell::Relu => &[0],
    }
}

/// Lowers `node` (a [`Recurrent`] op); returns the ONNX names of its
/// outputs: the sequence output, then each final state.
pub(crate) fn lower(b: &mut Builder<'_>, node: &Node, r: &Recurrent) -> Result<Vec<String>> {
    let (dirs, states, h) = (r.dirs(), r.states(), r.hidden_size);
    let mut x = b.name(input_id(node, 0)?)?;
    if !r.batched {
        let axes = b.const_i64(&[1]);
        x = b.op("Unsqueeze", vec![x, axes], vec![]);
    } else if r.batch_first {
        x = b.op("Transpose", vec![x], vec![("perm", ints(&[1, 0, 2]))]);
    }
    let initial: Vec<Option<String>> = (0..states)
        .map(|k| {
            node.inputs[1 + k]
                .map(|id| -> Result<String> {
                    let s = b.name(id)?;
                    Ok(if r.batched {
                        s
                    } else {
                        let axes = b.const_i64(&[1]);
                        b.op("Unsqueeze", vec![s, axes], vec![])
                    })
                })
                .transpose()
        })
        .collect::<Result<_>>()?;

    let (op_type, mut attrs) = match r.cell {
        RecurrentCell::Lstm => ("LSTM", vec![]),
        RecurrentCell::Gru => ("GRU", vec![("linear_before_reset", Attr::Int(1))]),
        RecurrentCell::Tanh => ("RNN", vec![("activations", activations("Tanh", dirs))]),
        RecurrentCell::Relu => ("RNN", vec![("activations", activations("Relu", dirs))]),
    };
    attrs.push(("hidden_size", Attr::Int(h as i64)));
    let direction = if r.bidirectional {
        "bidirectional"
    } else {
        "forward"
    };
    attrs.push(("direction", Attr::Str(direction.into())));

    let mut finals: Vec<Vec<String>> = vec![Vec::new(); states];
    for layer in 0..r.num_layers {
        let (w, rw, bias) = layer_weights(b, node, r, layer)?;
        let mut inputs = vec![x, w, rw, bias, String::new()];
        for s in &initial {
            inputs.push(match s {
                Some(s) => {
                    let starts = b.const_i64(&[(layer * dirs) as i64]);
                    let ends = b.const_i64(&[((layer + 1) * dirs) as i64]);
                    let axes = b.const_i64(&[0]);
                    b.op("Slice", vec![s.clone(), starts, ends, axes], vec![])
                }
                None => String::new(),
            });
        }
        while inputs.last().is_some_and(String::is_empty) {
            inputs.pop();
        }
        let y = b.fresh("Y");
        let outs: Vec<String> = std::iter::once(y.clone())
            .chain((0..states).map(|_| b.fresh("Y_state")))
            .collect();
        b.add(op_type, inputs, outs.clone(), attrs.clone());
        for (k, s) in outs[1..].iter().enumerate() {
            finals[k].push(s.clone());
        }
        // [T, D, B, H] → [T, B, D, H] → [T, B, D·H].
        let t = b.op("Transpose", vec![y], vec![("perm", ints(&[0, 2, 1, 3]))]);
        let shape = b.const_i64(&[0, 0, (dirs * h) as i64]);
        x = b.op("Reshape", vec![t, shape], vec![]);
    }
    let out = if !r.batched {
        let axes = b.const_i64(&[1]);
        b.op("Squeeze", vec![x, axes], vec![])
    } else if r.batch_first {
        b.op("Transpose", vec![x], vec![("perm", ints(&[1, 0, 2]))])
    } else {
        x
    };
    let mut names = vec![out];
    for per_layer in finals {
        let mut s = if per_layer.len() == 1 {
            per_layer[0].clone()
        } else {
            b.op("Concat", per_layer, vec![("axis", Attr::Int(0))])
        };
        if !r.batched {
            let axes = b.const_i64(&[1]);
            s = b.op("Squeeze", vec![s, axes], vec![]);
        }
        names.push(s);
    }
    Ok(names)
}

fn activations(name: &str, dirs: usize) -> Attr {
    Attr::Strings(vec![name.to_string(); dirs])
}

fn input_id(node: &Node, k: usize) -> Result<ValueId> {
    node.inputs
        .get(k)
        .copied()
        .flatten()
        .ok_or_else(|| unsupported("a recurrent layer without its input"))
}

/// `W`, `R` and `B` (`""` without bias) of `layer`, written as initializers.
fn layer_weights(
    b: &mut Builder<'_>,
    node: &Node,
    r: &Recurrent,
    layer: usize,
) -> Result<(String, String, String)> {
    let (dirs, h) = (r.dirs(), r.hidden_size);
    let gates = gate_order(r.cell);
    let rows = gates.len() * h;
    let first = 1 + r.states() + layer * dirs * 4;
    let base = {
        let id = input_id(node, first)?;
        let name = &b.graph.value(id).name;
        name.strip_suffix(&format!("weight_ih_l{layer}"))
            .unwrap_or(name)
            .to_string()
    };
    let (mut w, mut rw, mut bias) = (Vec::new(), Vec::new(), Vec::new());
    let mut in_size = 0;
    for dir in 0..dirs {
        let at = first + dir * 4;
        let data = |k: usize| -> Result<Option<(Vec<f32>, usize)>> {
            let Some(id) = node.inputs[at + k] else {
                return Ok(None);
            };
            let v = b.graph.value(id);
            let Some(t) = v.kind.data() else {
                return Err(unsupported("a recurrent layer whose weights are computed"));
            };
            let cols = if v.shape.len() == 2 { v.shape[1] } else { 1 };
            Ok(Some((t.to_vec()?, cols)))
        };
        let reorder = |(values, cols): (Vec<f32>, usize)| -> Vec<f32> {
            gates
                .iter()
                .flat_map(|&g| values[g * h * cols..(g + 1) * h * cols].to_vec())
                .collect()
        };
        if let Some(wi) = data(0)? {
            in_size = wi.1;
            w.extend(reorder(wi));
        }
        if let Some(wh) = data(1)? {
            rw.extend(reorder(wh));
        }
        if r.bias {
            let zeros = || (vec![0.0; rows], 1);
            bias.extend(reorder(data(2)?.unwrap_or_else(zeros)));
            bias.extend(reorder(data(3)?.unwrap_or_else(zeros)));
        }
    }
    let w_name = format!("{base}onnx_W_l{layer}");
    b.init_f32(&w_name, &[dirs, rows, in_size], &w);
    let r_name = format!("{base}onnx_R_l{layer}");
    b.init_f32(&r_name, &[dirs, rows, h], &rw);
    let b_name = if r.bias {
        let name = format!("{base}onnx_B_l{layer}");
        b.init_f32(&name, &[dirs, 2 * rows], &bias);
        name
    } else {
        String::new()
    };
    Ok((w_name, r_name, b_name))
}
