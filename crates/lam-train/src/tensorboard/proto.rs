//! The few protocol-buffer encodings TensorBoard's messages need, written
//! by hand: varints, 64- and 32-bit fixed values and length-delimited
//! fields. A code generator (prost) would bring a derive macro and either
//! `protoc` or vendored `.proto` files to build six small messages whose
//! field numbers never change; the encoder is 100 lines and the tests
//! compare its bytes with what TensorBoard itself writes.
//!
//! [`Message`] follows proto3's rules as Python's protobuf applies them:
//! fields in the order written (callers write them by field number), and
//! scalar fields equal to their default (0, empty) left out.

use lam_core::{Error, Result};

/// An encoded message under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message(Vec<u8>);

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

impl Message {
    /// An empty message.
    pub fn new() -> Message {
        Message::default()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// An integer field (`int32`, `int64`, `uint64`, `bool`, an enum);
    /// negative values take ten bytes, as protobuf encodes them.
    pub fn int(mut self, field: u32, value: i64) -> Self {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value as u64);
        }
        self
    }

    /// A `double` field.
    pub fn double(mut self, field: u32, value: f64) -> Self {
        if value.to_bits() != 0 {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&value.to_le_bytes());
        }
        self
    }

    /// A `float` field.
    pub fn float(mut self, field: u32, value: f32) -> Self {
        if value.to_bits() != 0 {
            self.key(field, FIXED32);
            self.0.extend_from_slice(&value.to_le_bytes());
        }
        self
    }

    /// A `bytes` field (one element of a `repeated bytes` too, with `always`).
    pub fn bytes(mut self, field: u32, value: &[u8], always: bool) -> Self {
        if always || !value.is_empty() {
            self.key(field, LEN);
            self.varint(value.len() as u64);
            self.0.extend_from_slice(value);
        }
        self
    }

    /// A `string` field.
    pub fn string(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes(), false)
    }

    /// A message field (written even when empty: it is present).
    pub fn message(self, field: u32, value: Message) -> Self {
        self.bytes(field, &value.0, true)
    }

    /// A packed `repeated double` field.
    pub fn packed_doubles(self, field: u32, values: &[f64]) -> Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &bytes, false)
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
}

/// One decoded field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire<'a> {
    /// A varint.
    Varint(u64),
    /// Eight bytes (`double`, `fixed64`).
    Fixed64(u64),
    /// Length-delimited bytes (strings, bytes, messages, packed values).
    Bytes(&'a [u8]),
    /// Four bytes (`float`, `fixed32`).
    Fixed32(u32),
}

/// The fields of an encoded message, in order; an error for bytes that are
/// not a message (a bad wire type, a varint or length past the end).
pub fn fields(mut bytes: &[u8]) -> Result<Vec<(u32, Wire<'_>)>> {
    let bad = |msg: &str| Error::invalid("protobuf", msg.to_string());
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes).ok_or_else(|| bad("truncated field key"))?;
        let field = u32::try_from(key >> 3).map_err(|_| bad("field number out of range"))?;
        let value = match (key & 7) as u8 {
            VARINT => Wire::Varint(varint(&mut bytes).ok_or_else(|| bad("truncated varint"))?),
            FIXED64 => Wire::Fixed64(u64::from_le_bytes(
                take(&mut bytes, 8)?.try_into().unwrap_or_default(),
            )),
            LEN => {
                let n = varint(&mut bytes).ok_or_else(|| bad("truncated length"))?;
                let n = usize::try_from(n).map_err(|_| bad("length out of range"))?;
                Wire::Bytes(take(&mut bytes, n)?)
            }
            FIXED32 => Wire::Fixed32(u32::from_le_bytes(
                take(&mut bytes, 4)?.try_into().unwrap_or_default(),
            )),
            w => return Err(bad(&format!("unsupported wire type {w}"))),
        };
        out.push((field, value));
    }
    Ok(out)
}

/// The packed doubles of a length-delimited field.
pub fn doubles(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect()
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if bytes.len() < n {
        return Err(Error::invalid(
            "protobuf",
            format!("a field claims {n} bytes, {} are left", bytes.len()),
        ));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}
