//! Lowering: each op of a captured [`Graph`] as ONNX nodes (opset 17).
//!
//! Values keep their names: parameters and buffers by their `state_dict`
//! names (initializers written only when a node reads them), the input as
//! `input`, the output as `output`. A value's batch axis becomes the free
//! dim `batch`; shapes written into the graph (reshape targets, expand
//! shapes) put `-1` or `1` there so that any batch size runs.
//!
//! This file holds the entry point and the [`Builder`]'s dispatch over the
//! IR's ops, with the layers' lowerings (convolution, pooling, norms,
//! `linear`, reductions) inline; `values.rs` holds the builder's naming,
//! initializers and constants, `elementwise.rs` the unary and binary ops,
//! and `../recurrent.rs` RNN, LSTM and GRU.

mod elementwise;
mod values;

use std::collections::HashSet;

use lam_core::backend::{LinearActivation, ReduceOp};
use lam_core::capture::{Graph, Node, Op, ValueKind};
use lam_core::{DType, Error, Result};

use super::proto::{self, dtype, Attr, Message};
use super::recurrent;

/// The ONNX opset exported graphs use.
pub const OPSET: i64 = 17;

/// The ONNX model of `graph`, as bytes.
pub(crate) fn lower(graph: &Graph) -> Result<Vec<u8>> {
    let mut b = Builder::new(graph);
    for node in &graph.nodes {
        b.lower(node)?;
    }
    let input = b.graph.value(graph.input);
    if !matches!(input.kind, ValueKind::Input) {
        return Err(unsupported("a graph whose input is not the example input"));
    }
    let out_name = b.name(graph.output)?;
    // The output gets its own name (an Identity when it is another value).
    b.add("Identity", vec![out_name], vec!["output".into()], vec![]);
    let inputs = [proto::value_info(
        "input",
        elem_type(input.dtype),
        &b.dims(graph.input),
    )];
    let out = graph.value(graph.output);
    let outputs = [proto::value_info(
        "output",
        elem_type(out.dtype),
        &b.dims(graph.output),
    )];
    Ok(proto::model(&proto::ModelParts {
        graph_name: "lam",
        nodes: &b.nodes,
        initializers: &b.initializers,
        inputs: &inputs,
        outputs: &outputs,
        opset: OPSET,
    }))
}

pub(crate) fn unsupported(what: &str) -> Error {
    Error::invalid(
        "onnx export",
        format!("{what} has no ONNX form in lam's exporter"),
    )
}

fn elem_type(d: DType) -> i64 {
    match d {
        DType::F32 => dtype::FLOAT,
        DType::I32 => dtype::INT32,
        DType::F16 => dtype::FLOAT16,
    }
}

/// The ONNX graph being written: its nodes and initializers so far, and
/// the ONNX name given to each captured value.
pub(crate) struct Builder<'g> {
    pub(crate) graph: &'g Graph,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    written: HashSet<String>,
    /// ONNX names of values, once given.
    names: Vec<Option<String>>,
    fresh: usize,
}

impl Builder<'_> {
    fn lower(&mut self, node: &Node) -> Result<()> {
        let out = match &node.op {
            Op::Unary(op) => {
                let x = self.float_input(node, 0)?;
                self.unary(*op, x)?
            }
            Op::Binary(op) => {
                let a = self.float_input(node, 0)?;
                let b = self.float_input(node, 1)?;
                self.binary(*op, a, b)?
            }
            Op::Where => {
                let c = self.input(node, 0)?;
                let c = self.op("Cast", vec![c], vec![("to", Attr::Int(dtype::BOOL))]);
                let a = self.input(node, 1)?;
                let b = self.input(node, 2)?;
                self.op("Where", vec![c, a, b], vec![])
            }
            Op::Reduce { op, axes, keepdim } => self.reduce(node, *op, axes, *keepdim)?,
            Op::Mean { axes, keepdim } => {
                let x = self.input(node, 0)?;
                let mut attrs = vec![("keepdims", Attr::Int(*keepdim as i64))];
                if !axes.is_empty() {
                    attrs.push(("axes", Attr::Ints(axes.iter().map(|&a| a as i64).collect())));
                }
                self.op("ReduceMean", vec![x], attrs)
            }
            Op::MatMul => {
                let a = self.input(node, 0)?;
                let b = self.input(node, 1)?;
                self.op("MatMul", vec![a, b], vec![])
            }
            Op::Linear { act } => self.linear(node, *act)?,
            Op::Conv2d { window, groups } => {
                self.expect_rank(node, 4, "conv2d of an unbatched input")?;
                let inputs = vec![
                    self.input(node, 0)?,
                    self.input(node, 1)?,
                    self.input(node, 2)?,
                ];
                let inputs = trim_optional(inputs);
                let (k, s, p, d) = (
                    window.kernel,
                    window.stride,
                    window.padding,
                    window.dilation,
                );
                self.op(
                    "Conv",
                    inputs,
                    vec![
                        ("kernel_shape", ints(&[k.h, k.w])),
                        ("strides", ints(&[s.h, s.w])),
                        ("pads", ints(&[p.h, p.w, p.h, p.w])),
                        ("dilations", ints(&[d.h, d.w])),
                        ("group", Attr::Int(*groups as i64)),
                    ],
                )
            }
            Op::MaxPool2d { window, ceil_mode } => {
                self.expect_rank(node, 4, "max_pool2d of an unbatched input")?;
                let x = self.input(node, 0)?;
                let (k, s, p, d) = (
                    window.kernel,
                    window.stride,
                    window.padding,
                    window.dilation,
                );
                self.op(
                    "MaxPool",
                    vec![x],
                    vec![
                        ("kernel_shape", ints(&[k.h, k.w])),
                        ("strides", ints(&[s.h, s.w])),
                        ("pads", ints(&[p.h, p.w, p.h, p.w])),
                        ("dilations", ints(&[d.h, d.w])),
                        ("ceil_mode", Attr::Int(*ceil_mode as i64)),
                    ],
                )
            }
            Op::AvgPool2d {
                window,
                count_include_pad,
                ceil_mode,
                divisor_override,
            } => {
                self.expect_rank(node, 4, "avg_pool2d of an unbatched input")?;
                if divisor_override.is_some() {
                    return Err(unsupported("avg_pool2d with divisor_override"));
                }
                let x = self.input(node, 0)?;
                let (k, s, p) = (window.kernel, window.stride, window.padding);
                self.op(
                    "AveragePool",
                    vec![x],
                    vec![
                        ("kernel_shape", ints(&[k.h, k.w])),
                        ("strides", ints(&[s.h, s.w])),
                        ("pads", ints(&[p.h, p.w, p.h, p.w])),
                        ("count_include_pad", Attr::Int(*count_include_pad as i64)),
                        ("ceil_mode", Attr::Int(*ceil_mode as i64)),
                    ],
                )
            }
            Op::AdaptiveAvgPool2d { output } => {
                self.expect_rank(node, 4, "adaptive_avg_pool2d of an unbatched input")?;
                let shape = self.in_shape(node, 0);
                let (h, w) = (shape[2], shape[3]);
                let x = self.input(node, 0)?;
                if output.h == 1 && output.w == 1 {
                    self.op("GlobalAveragePool", vec![x], vec![])
                } else if h % output.h == 0 && w % output.w == 0 {
                    let k = [h / output.h, w / output.w];
                    self.op(
                        "AveragePool",
                        vec![x],
                        vec![("kernel_shape", ints(&k)), ("strides", ints(&k))],
                    )
                } else {
                    return Err(unsupported(&format!(
                        "adaptive_avg_pool2d from ({h}, {w}) to ({}, {}) (windows of unequal sizes)",
                        output.h, output.w
                    )));
                }
            }
            Op::BatchNorm { eps } => {
                let c = self.in_shape(node, 0)[1];
                let x = self.input(node, 0)?;
                let mean = self.input(node, 1)?;
                let var = self.input(node, 2)?;
                let scale = self.param_or(node, 3, &[c], 1.0)?;
                let bias = self.param_or(node, 4, &[c], 0.0)?;
                self.op(
                    "BatchNormalization",
                    vec![x, scale, bias, mean, var],
                    vec![("epsilon", Attr::Float(*eps))],
                )
            }
            Op::LayerNorm { dims, eps } => {
                let shape = self.in_shape(node, 0);
                let normalized = shape[shape.len() - dims..].to_vec();
                let x = self.input(node, 0)?;
                let scale = self.param_or(node, 1, &normalized, 1.0)?;
                let bias = self.param_or(node, 2, &normalized, 0.0)?;
                self.op(
                    "LayerNormalization",
                    vec![x, scale, bias],
                    vec![
                        ("axis", Attr::Int(-(*dims as i64))),
                        ("epsilon", Attr::Float(*eps)),
                    ],
                )
            }
            Op::Softmax { axis, log } => {
                let x = self.input(node, 0)?;
                let rank = self.in_shape(node, 0).len();
                if rank == 0 {
                    return Err(unsupported("softmax of a 0-d tensor"));
                }
                let kind = if *log { "LogSoftmax" } else { "Softmax" };
                self.op(kind, vec![x], vec![("axis", Attr::Int(*axis as i64))])
            }
            Op::Reshape => {
                let x = self.input(node, 0)?;
                let shape = self.shape_const(node.outputs[0], -1);
                self.op("Reshape", vec![x, shape], vec![])
            }
            Op::Permute(perm) => {
                let x = self.input(node, 0)?;
                self.op("Transpose", vec![x], vec![("perm", ints(perm))])
            }
            Op::Expand => {
                let x = self.input(node, 0)?;
                let shape = self.shape_const(node.outputs[0], 1);
                self.op("Expand", vec![x, shape], vec![])
            }
            Op::Narrow { axis, start, len } => {
                let x = self.input(node, 0)?;
                let starts = self.const_i64(&[*start as i64]);
                let ends = self.const_i64(&[(*start + *len) as i64]);
                let axes = self.const_i64(&[*axis as i64]);
                self.op("Slice", vec![x, starts, ends, axes], vec![])
            }
            Op::Concat { axis } => {
                let xs = (0..node.inputs.len())
                    .map(|k| self.input(node, k))
                    .collect::<Result<Vec<_>>>()?;
                self.op("Concat", xs, vec![("axis", Attr::Int(*axis as i64))])
            }
            Op::Cast { to } => {
                let x = self.input(node, 0)?;
                self.op("Cast", vec![x], vec![("to", Attr::Int(elem_type(*to)))])
            }
            Op::Identity => self.input(node, 0)?,
            Op::IndexSelect { axis } => {
                let x = self.input(node, 0)?;
                let i = self.input(node, 1)?;
                self.op(
                    "Gather",
                    vec![x, i],
                    vec![("axis", Attr::Int(*axis as i64))],
                )
            }
            Op::Gather { axis } => {
                let x = self.input(node, 0)?;
                let i = self.input(node, 1)?;
                self.op(
                    "GatherElements",
                    vec![x, i],
                    vec![("axis", Attr::Int(*axis as i64))],
                )
            }
            Op::Embedding => {
                let i = self.input(node, 0)?;
                let w = self.input(node, 1)?;
                self.op("Gather", vec![w, i], vec![("axis", Attr::Int(0))])
            }
            Op::Recurrent(r) => {
                let outs = recurrent::lower(self, node, r)?;
                for (k, o) in outs.into_iter().enumerate() {
                    self.bind(node, k, o);
                }
                return Ok(());
            }
        };
        self.bind(node, 0, out);
        Ok(())
    }

    fn expect_rank(&self, node: &Node, rank: usize, what: &str) -> Result<()> {
        if self.in_shape(node, 0).len() == rank {
            Ok(())
        } else {
            Err(unsupported(what))
        }
    }

    fn reduce(
        &mut self,
        node: &Node,
        op: ReduceOp,
        axes: &[usize],
        keepdim: bool,
    ) -> Result<String> {
        let x = self.input(node, 0)?;
        let keep = ("keepdims", Attr::Int(keepdim as i64));
        let axes_i: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
        Ok(match op {
            ReduceOp::Sum => {
                let mut inputs = vec![x];
                if !axes.is_empty() {
                    inputs.push(self.const_i64(&axes_i));
                }
                self.op("ReduceSum", inputs, vec![keep])
            }
            ReduceOp::Max | ReduceOp::Min => {
                let name = if op == ReduceOp::Max {
                    "ReduceMax"
                } else {
                    "ReduceMin"
                };
                let mut attrs = vec![keep];
                if !axes.is_empty() {
                    attrs.push(("axes", Attr::Ints(axes_i)));
                }
                self.op(name, vec![x], attrs)
            }
            ReduceOp::ArgMax | ReduceOp::ArgMin => {
                let name = if op == ReduceOp::ArgMax {
                    "ArgMax"
                } else {
                    "ArgMin"
                };
                let axis = axes.first().copied().unwrap_or(0) as i64;
                let idx = self.op(name, vec![x], vec![("axis", Attr::Int(axis)), keep]);
                self.op("Cast", vec![idx], vec![("to", Attr::Int(dtype::INT32))])
            }
        })
    }

    fn linear(&mut self, node: &Node, act: LinearActivation) -> Result<String> {
        let x = self.input(node, 0)?;
        let w = self.input(node, 1)?;
        let bias = self.input(node, 2)?;
        let y = if self.in_shape(node, 0).len() == 2 {
            let inputs = trim_optional(vec![x, w, bias]);
            self.op("Gemm", inputs, vec![("transB", Attr::Int(1))])
        } else {
            let wt = self.op("Transpose", vec![w], vec![("perm", ints(&[1, 0]))]);
            let y = self.op("MatMul", vec![x, wt], vec![]);
            if bias.is_empty() {
                y
            } else {
                self.op("Add", vec![y, bias], vec![])
            }
        };
        Ok(match act {
            LinearActivation::Identity => y,
            LinearActivation::Relu => self.op("Relu", vec![y], vec![]),
        })
    }
}

pub(crate) fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// Drops trailing absent optional inputs (ONNX lets them be left off).
fn trim_optional(mut inputs: Vec<String>) -> Vec<String> {
    while inputs.last().is_some_and(String::is_empty) {
        inputs.pop();
    }
    inputs
}
