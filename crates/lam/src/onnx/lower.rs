//! Lowering: each op of a captured [`Graph`] as ONNX nodes (opset 17).
//!
//! Values keep their names: parameters and buffers by their `state_dict`
//! names (initializers written only when a node reads them), the input as
//! `input`, the output as `output`. A value's batch axis becomes the free
//! dim `batch`; shapes written into the graph (reshape targets, expand
//! shapes) put `-1` or `1` there so that any batch size runs.

use std::collections::HashSet;

use lam_core::backend::{BinaryOp, LinearActivation, ReduceOp, UnaryOp};
use lam_core::capture::{Graph, Node, Op, ValueId, ValueKind};
use lam_core::{DType, Error, Result};

use super::proto::{self, dtype, Attr, Dim, Message};
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

pub(crate) struct Builder<'g> {
    pub(crate) graph: &'g Graph,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    written: HashSet<String>,
    /// ONNX names of values, once given.
    names: Vec<Option<String>>,
    fresh: usize,
}

impl<'g> Builder<'g> {
    fn new(graph: &'g Graph) -> Builder<'g> {
        Builder {
            graph,
            nodes: Vec::new(),
            initializers: Vec::new(),
            written: HashSet::new(),
            names: vec![None; graph.values.len()],
            fresh: 0,
        }
    }

    /// The ONNX name of value `id`; a parameter or constant is written as
    /// an initializer the first time it is named.
    pub(crate) fn name(&mut self, id: ValueId) -> Result<String> {
        if let Some(n) = &self.names[id] {
            return Ok(n.clone());
        }
        let v = self.graph.value(id);
        let name = v.name.clone();
        if let Some(data) = v.kind.data() {
            match v.dtype {
                DType::F32 => self.init_f32(&name, &v.shape, &data.to_vec()?),
                DType::I32 => {
                    let raw: Vec<u8> = data
                        .to_vec_i32()?
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect();
                    self.init_raw(&name, &v.shape, dtype::INT32, &raw);
                }
                DType::F16 => {
                    let raw: Vec<u8> = data
                        .to_vec_f16()?
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect();
                    self.init_raw(&name, &v.shape, dtype::FLOAT16, &raw);
                }
            }
        }
        self.names[id] = Some(name.clone());
        Ok(name)
    }

    /// A new value name starting with `hint`.
    pub(crate) fn fresh(&mut self, hint: &str) -> String {
        self.fresh += 1;
        format!("{hint}_{}", self.fresh)
    }

    pub(crate) fn add(
        &mut self,
        op_type: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attrs: Vec<(&str, Attr)>,
    ) {
        let name = format!("{op_type}_{}", self.nodes.len());
        self.nodes
            .push(proto::node(&name, op_type, &inputs, &outputs, &attrs));
    }

    /// One node with one new output, returned.
    pub(crate) fn op(
        &mut self,
        op_type: &str,
        inputs: Vec<String>,
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.fresh(op_type);
        self.add(op_type, inputs, vec![out.clone()], attrs);
        out
    }

    fn init_raw(&mut self, name: &str, shape: &[usize], data_type: i64, raw: &[u8]) {
        if self.written.insert(name.to_string()) {
            self.initializers
                .push(proto::tensor(name, shape, data_type, raw));
        }
    }

    pub(crate) fn init_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) {
        let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init_raw(name, shape, dtype::FLOAT, &raw);
    }

    /// A new `int64` vector constant.
    pub(crate) fn const_i64(&mut self, data: &[i64]) -> String {
        let name = self.fresh("const");
        let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init_raw(&name, &[data.len()], dtype::INT64, &raw);
        name
    }

    /// A new `float` constant of `shape`.
    pub(crate) fn const_f32(&mut self, shape: &[usize], data: &[f32]) -> String {
        let name = self.fresh("const");
        self.init_f32(&name, shape, data);
        name
    }

    /// The ONNX dims of value `id`: its batch axis free.
    fn dims(&self, id: ValueId) -> Vec<Dim> {
        let v = self.graph.value(id);
        v.shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if v.batch_axis == Some(i) {
                    Dim::Named("batch".into())
                } else {
                    Dim::Fixed(d)
                }
            })
            .collect()
    }

    /// Value `id`'s shape as a shape input, `batch` at its batch axis.
    fn shape_const(&mut self, id: ValueId, batch: i64) -> String {
        let v = self.graph.value(id);
        let dims: Vec<i64> = v
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if v.batch_axis == Some(i) {
                    batch
                } else {
                    d as i64
                }
            })
            .collect();
        self.const_i64(&dims)
    }

    /// Input `k` of `node` by ONNX name, `""` when absent.
    fn input(&mut self, node: &Node, k: usize) -> Result<String> {
        match node.inputs.get(k).copied().flatten() {
            Some(id) => self.name(id),
            None => Ok(String::new()),
        }
    }

    /// Input `k` as a float tensor (an `I32` value is cast).
    fn float_input(&mut self, node: &Node, k: usize) -> Result<String> {
        let name = self.input(node, k)?;
        let is_int = node.inputs[k].is_some_and(|id| self.graph.value(id).dtype == DType::I32);
        Ok(if is_int {
            self.op("Cast", vec![name], vec![("to", Attr::Int(dtype::FLOAT))])
        } else {
            name
        })
    }

    /// Binds `node`'s output `k` to the ONNX value `name`.
    fn bind(&mut self, node: &Node, k: usize, name: String) {
        self.names[node.outputs[k]] = Some(name);
    }

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

    pub(crate) fn in_shape(&self, node: &Node, k: usize) -> Vec<usize> {
        node.inputs[k]
            .map(|id| self.graph.value(id).shape.clone())
            .unwrap_or_default()
    }

    fn expect_rank(&self, node: &Node, rank: usize, what: &str) -> Result<()> {
        if self.in_shape(node, 0).len() == rank {
            Ok(())
        } else {
            Err(unsupported(what))
        }
    }

    /// Input `k`, or a constant of `shape` filled with `fill` when absent.
    fn param_or(&mut self, node: &Node, k: usize, shape: &[usize], fill: f32) -> Result<String> {
        match node.inputs.get(k).copied().flatten() {
            Some(id) => self.name(id),
            None => {
                let n: usize = shape.iter().product();
                Ok(self.const_f32(shape, &vec![fill; n]))
            }
        }
    }

    fn scalar(&mut self, v: f32) -> String {
        self.const_f32(&[], &[v])
    }

    fn unary(&mut self, op: UnaryOp, x: String) -> Result<String> {
        Ok(match op {
            UnaryOp::Neg => self.op("Neg", vec![x], vec![]),
            UnaryOp::Abs => self.op("Abs", vec![x], vec![]),
            UnaryOp::Exp => self.op("Exp", vec![x], vec![]),
            UnaryOp::Log => self.op("Log", vec![x], vec![]),
            UnaryOp::Sqrt => self.op("Sqrt", vec![x], vec![]),
            UnaryOp::Square => self.op("Mul", vec![x.clone(), x], vec![]),
            UnaryOp::Recip => self.op("Reciprocal", vec![x], vec![]),
            UnaryOp::Sin => self.op("Sin", vec![x], vec![]),
            UnaryOp::Cos => self.op("Cos", vec![x], vec![]),
            UnaryOp::Tanh => self.op("Tanh", vec![x], vec![]),
            UnaryOp::Sigmoid => self.op("Sigmoid", vec![x], vec![]),
            UnaryOp::Relu => self.op("Relu", vec![x], vec![]),
            UnaryOp::Sign => self.op("Sign", vec![x], vec![]),
            UnaryOp::Softplus => self.op("Softplus", vec![x], vec![]),
            UnaryOp::LeakyRelu(a) => self.op("LeakyRelu", vec![x], vec![("alpha", Attr::Float(a))]),
            UnaryOp::Elu(a) => self.op("Elu", vec![x], vec![("alpha", Attr::Float(a))]),
            UnaryOp::Gelu => {
                // Opset 17 has no Gelu: x · ½ (1 + erf(x / √2)).
                let root2 = self.scalar(std::f32::consts::SQRT_2);
                let scaled = self.op("Div", vec![x.clone(), root2], vec![]);
                let erf = self.op("Erf", vec![scaled], vec![]);
                let one = self.scalar(1.0);
                let shifted = self.op("Add", vec![erf, one], vec![]);
                let half = self.scalar(0.5);
                let gate = self.op("Mul", vec![shifted, half], vec![]);
                self.op("Mul", vec![x, gate], vec![])
            }
            UnaryOp::Silu => {
                let s = self.op("Sigmoid", vec![x.clone()], vec![]);
                self.op("Mul", vec![x, s], vec![])
            }
            UnaryOp::Clamp(lo, hi) => {
                let (lo, hi) = (self.scalar(lo), self.scalar(hi));
                self.op("Clip", vec![x, lo, hi], vec![])
            }
            UnaryOp::AddScalar(c) => self.with_scalar("Add", x, c),
            UnaryOp::MulScalar(c) => self.with_scalar("Mul", x, c),
            UnaryOp::DivScalar(c) => self.with_scalar("Div", x, c),
            UnaryOp::PowScalar(c) => self.with_scalar("Pow", x, c),
            UnaryOp::GtScalar(c) => {
                let m = self.with_scalar("Greater", x, c);
                self.cast_float(m)
            }
            UnaryOp::LtScalar(c) => {
                let m = self.with_scalar("Less", x, c);
                self.cast_float(m)
            }
            UnaryOp::Step | UnaryOp::GeluGrad | UnaryOp::InRange(..) => {
                return Err(unsupported(&format!("the gradient op {op:?}")))
            }
        })
    }

    fn with_scalar(&mut self, op_type: &str, x: String, c: f32) -> String {
        let c = self.scalar(c);
        self.op(op_type, vec![x, c], vec![])
    }

    fn cast_float(&mut self, x: String) -> String {
        self.op("Cast", vec![x], vec![("to", Attr::Int(dtype::FLOAT))])
    }

    fn binary(&mut self, op: BinaryOp, a: String, b: String) -> Result<String> {
        let simple = |name: &str| Some(name.to_string());
        let plain = match op {
            BinaryOp::Add => simple("Add"),
            BinaryOp::Sub => simple("Sub"),
            BinaryOp::Mul => simple("Mul"),
            BinaryOp::Div => simple("Div"),
            BinaryOp::Pow => simple("Pow"),
            BinaryOp::Maximum => simple("Max"),
            BinaryOp::Minimum => simple("Min"),
            _ => None,
        };
        if let Some(name) = plain {
            return Ok(self.op(&name, vec![a, b], vec![]));
        }
        let mask = match op {
            BinaryOp::Eq => self.op("Equal", vec![a, b], vec![]),
            BinaryOp::Ne => {
                let eq = self.op("Equal", vec![a, b], vec![]);
                self.op("Not", vec![eq], vec![])
            }
            BinaryOp::Lt => self.op("Less", vec![a, b], vec![]),
            BinaryOp::Le => self.op("LessOrEqual", vec![a, b], vec![]),
            BinaryOp::Gt => self.op("Greater", vec![a, b], vec![]),
            BinaryOp::Ge => self.op("GreaterOrEqual", vec![a, b], vec![]),
            _ => return Err(unsupported(&format!("the gradient op {op:?}"))),
        };
        Ok(self.cast_float(mask))
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
