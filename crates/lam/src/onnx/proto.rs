//! The few ONNX protobuf messages an exported model needs, encoded by hand.
//!
//! lam writes ONNX without a protobuf crate: prost needs `protoc` (or a
//! vendored build of it) to generate code from `onnx.proto`, which would put
//! a C++ compiler step into every build for seven messages. Protobuf's wire
//! format is small — varints, length-delimited fields, fixed 32-bit floats —
//! and a writer is all export needs. Field numbers are `onnx.proto`'s
//! (ONNX 1.14+, IR version 8).

/// A message being written: fields appended in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Message(Vec<u8>);

const VARINT: u32 = 0;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

impl Message {
    pub(crate) fn new() -> Message {
        Message::default()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    /// An `int64` (negative values take ten bytes, as protobuf says).
    pub(crate) fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, VARINT);
        self.varint(v as u64);
        self
    }

    pub(crate) fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub(crate) fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    pub(crate) fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }

    /// A repeated `int64`, packed.
    pub(crate) fn ints(&mut self, field: u32, vs: &[i64]) -> &mut Self {
        let mut packed = Message::new();
        for &v in vs {
            packed.varint(v as u64);
        }
        self.bytes(field, &packed.0)
    }
}

/// `TensorProto.DataType` values.
pub(crate) mod dtype {
    pub(crate) const FLOAT: i64 = 1;
    pub(crate) const INT32: i64 = 6;
    pub(crate) const FLOAT16: i64 = 10;
    pub(crate) const INT64: i64 = 7;
    pub(crate) const BOOL: i64 = 9;
}

/// A `TensorProto` with its data as little-endian `raw_data`.
pub(crate) fn tensor(name: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> Message {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let mut m = Message::new();
    m.ints(1, &dims)
        .int(2, data_type)
        .string(8, name)
        .bytes(9, raw);
    m
}

/// An attribute value of a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attr {
    Float(f32),
    Int(i64),
    Ints(Vec<i64>),
    Strings(Vec<String>),
    Str(String),
}

/// An `AttributeProto`.
fn attribute(name: &str, value: &Attr) -> Message {
    let mut m = Message::new();
    m.string(1, name);
    match value {
        Attr::Float(v) => m.float(2, *v).int(20, 1),
        Attr::Int(v) => m.int(3, *v).int(20, 2),
        Attr::Str(v) => m.string(4, v).int(20, 3),
        Attr::Ints(v) => m.ints(8, v).int(20, 7),
        Attr::Strings(v) => {
            for s in v {
                m.string(9, s);
            }
            m.int(20, 8)
        }
    };
    m
}

/// A `NodeProto`.
pub(crate) fn node(
    name: &str,
    op_type: &str,
    inputs: &[String],
    outputs: &[String],
    attrs: &[(&str, Attr)],
) -> Message {
    let mut m = Message::new();
    for i in inputs {
        m.string(1, i);
    }
    for o in outputs {
        m.string(2, o);
    }
    m.string(3, name).string(4, op_type);
    for (k, v) in attrs {
        m.message(5, &attribute(k, v));
    }
    m
}

/// One dim of a value's type: a size, or a named free size.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dim {
    Fixed(usize),
    Named(String),
}

/// A `ValueInfoProto` for a tensor of `elem_type` and `dims`.
pub(crate) fn value_info(name: &str, elem_type: i64, dims: &[Dim]) -> Message {
    let mut shape = Message::new();
    for d in dims {
        let mut dim = Message::new();
        match d {
            Dim::Fixed(n) => dim.int(1, *n as i64),
            Dim::Named(s) => dim.string(2, s),
        };
        shape.message(1, &dim);
    }
    let mut tensor_type = Message::new();
    tensor_type.int(1, elem_type).message(2, &shape);
    let mut ty = Message::new();
    ty.message(1, &tensor_type);
    let mut m = Message::new();
    m.string(1, name).message(2, &ty);
    m
}

/// A `ModelProto` around a `GraphProto` made of its parts.
pub(crate) struct ModelParts<'a> {
    pub(crate) graph_name: &'a str,
    pub(crate) nodes: &'a [Message],
    pub(crate) initializers: &'a [Message],
    pub(crate) inputs: &'a [Message],
    pub(crate) outputs: &'a [Message],
    pub(crate) opset: i64,
}

/// ONNX IR version 8 goes with opset 17 (ONNX 1.12).
const IR_VERSION: i64 = 8;

pub(crate) fn model(parts: &ModelParts<'_>) -> Vec<u8> {
    let mut graph = Message::new();
    for n in parts.nodes {
        graph.message(1, n);
    }
    graph.string(2, parts.graph_name);
    for t in parts.initializers {
        graph.message(5, t);
    }
    for i in parts.inputs {
        graph.message(11, i);
    }
    for o in parts.outputs {
        graph.message(12, o);
    }
    let mut opset = Message::new();
    opset.string(1, "").int(2, parts.opset);
    let mut m = Message::new();
    m.int(1, IR_VERSION)
        .string(2, "lam")
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, &graph)
        .message(8, &opset);
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_wire_format() {
        let mut m = Message::new();
        m.int(1, 150);
        assert_eq!(m.clone().into_bytes(), vec![0x08, 0x96, 0x01]);
        let mut m = Message::new();
        m.int(3, -1);
        let b = m.into_bytes();
        assert_eq!(b.len(), 11);
        assert_eq!(b[0], 3 << 3);
        let mut m = Message::new();
        m.string(2, "testing");
        assert_eq!(m.into_bytes(), [&[0x12, 0x07][..], b"testing"].concat());
        let mut m = Message::new();
        m.float(2, 1.0);
        assert_eq!(m.into_bytes(), vec![0x15, 0, 0, 0x80, 0x3f]);
    }
}
