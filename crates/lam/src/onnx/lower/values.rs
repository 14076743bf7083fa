//! The [`Builder`]'s bookkeeping: ONNX names for captured values,
//! initializers (each parameter or constant written once, when a node first
//! reads it), fresh names and constants, and a node's inputs by name. The
//! per-op lowering in `lower.rs` and `recurrent.rs` is written in these
//! terms, so it never touches the message lists directly.

use std::collections::HashSet;

use lam_core::capture::{Graph, Node, ValueId};
use lam_core::{DType, Result};

use super::super::proto::{self, dtype, Attr, Dim};
use super::Builder;

impl<'g> Builder<'g> {
    pub(super) fn new(graph: &'g Graph) -> Builder<'g> {
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
    pub(super) fn dims(&self, id: ValueId) -> Vec<Dim> {
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
    pub(super) fn shape_const(&mut self, id: ValueId, batch: i64) -> String {
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
    pub(super) fn input(&mut self, node: &Node, k: usize) -> Result<String> {
        match node.inputs.get(k).copied().flatten() {
            Some(id) => self.name(id),
            None => Ok(String::new()),
        }
    }

    /// Input `k` as a float tensor (an `I32` value is cast).
    pub(super) fn float_input(&mut self, node: &Node, k: usize) -> Result<String> {
        let name = self.input(node, k)?;
        let is_int = node.inputs[k].is_some_and(|id| self.graph.value(id).dtype == DType::I32);
        Ok(if is_int {
            self.op("Cast", vec![name], vec![("to", Attr::Int(dtype::FLOAT))])
        } else {
            name
        })
    }

    /// Binds `node`'s output `k` to the ONNX value `name`.
    pub(super) fn bind(&mut self, node: &Node, k: usize, name: String) {
        self.names[node.outputs[k]] = Some(name);
    }

    pub(crate) fn in_shape(&self, node: &Node, k: usize) -> Vec<usize> {
        node.inputs[k]
            .map(|id| self.graph.value(id).shape.clone())
            .unwrap_or_default()
    }

    /// Input `k`, or a constant of `shape` filled with `fill` when absent.
    pub(super) fn param_or(
        &mut self,
        node: &Node,
        k: usize,
        shape: &[usize],
        fill: f32,
    ) -> Result<String> {
        match node.inputs.get(k).copied().flatten() {
            Some(id) => self.name(id),
            None => {
                let n: usize = shape.iter().product();
                Ok(self.const_f32(shape, &vec![fill; n]))
            }
        }
    }

    pub(super) fn scalar(&mut self, v: f32) -> String {
        self.const_f32(&[], &[v])
    }
}
