//! PyTorch's element types as they are stored, in a .pth file's storages
//! and as safetensors dtypes, and their conversion to lam's dtypes, one set
//! of rules for both formats: floats load as `F32` (or `F16` for a tensor
//! that holds it), integers and booleans as `I32`.
//!
//! `float64` rounds to `F32` (a finite value beyond `F32`'s range is an
//! error, not an infinity); `float16` and `bfloat16` widen exactly;
//! integers load into an `I32` tensor if they fit and into an `F32` tensor
//! if they are exact there (|v| ≤ 2^24); booleans are 0 and 1; float data
//! for an `I32` tensor is an error.

use safetensors::Dtype;

use crate::DType;

use super::super::file::Host;

/// A stored element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Element {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl Element {
    /// The type of a typed storage class (`FloatStorage`, ...).
    pub(crate) fn of_storage_class(class: &str) -> Option<Element> {
        Some(match class {
            "DoubleStorage" => Element::F64,
            "FloatStorage" => Element::F32,
            "HalfStorage" => Element::F16,
            "BFloat16Storage" => Element::BF16,
            "LongStorage" => Element::I64,
            "IntStorage" => Element::I32,
            "ShortStorage" => Element::I16,
            "CharStorage" => Element::I8,
            "ByteStorage" => Element::U8,
            "BoolStorage" => Element::Bool,
            _ => return None,
        })
    }

    /// The type a `torch.<name>` dtype names (`float32`, ...).
    pub(crate) fn of_dtype(name: &str) -> Option<Element> {
        Some(match name {
            "float64" => Element::F64,
            "float32" => Element::F32,
            "float16" => Element::F16,
            "bfloat16" => Element::BF16,
            "int64" => Element::I64,
            "int32" => Element::I32,
            "int16" => Element::I16,
            "int8" => Element::I8,
            "uint8" => Element::U8,
            "uint16" => Element::U16,
            "uint32" => Element::U32,
            "uint64" => Element::U64,
            "bool" => Element::Bool,
            _ => return None,
        })
    }

    /// The element type of a safetensors dtype; `None` for those lam does
    /// not read (the 8-, 6- and 4-bit floats).
    pub(crate) fn of_safetensors(dtype: Dtype) -> Option<Element> {
        Some(match dtype {
            Dtype::F64 => Element::F64,
            Dtype::F32 => Element::F32,
            Dtype::F16 => Element::F16,
            Dtype::BF16 => Element::BF16,
            Dtype::I64 => Element::I64,
            Dtype::I32 => Element::I32,
            Dtype::I16 => Element::I16,
            Dtype::I8 => Element::I8,
            Dtype::U8 => Element::U8,
            Dtype::U16 => Element::U16,
            Dtype::U32 => Element::U32,
            Dtype::U64 => Element::U64,
            Dtype::BOOL => Element::Bool,
            _ => return None,
        })
    }

    /// The storage class lam writes for its own dtypes.
    pub(crate) fn storage_class(self) -> &'static str {
        match self {
            Element::F64 => "DoubleStorage",
            Element::F32 => "FloatStorage",
            Element::F16 => "HalfStorage",
            Element::BF16 => "BFloat16Storage",
            Element::I64 => "LongStorage",
            Element::I32 => "IntStorage",
            Element::I16 => "ShortStorage",
            Element::I8 => "CharStorage",
            Element::U8 => "ByteStorage",
            Element::Bool => "BoolStorage",
            // No typed storage class: PyTorch saves these as untyped bytes
            // with the dtype beside them (`_rebuild_tensor_v3`).
            Element::U16 | Element::U32 | Element::U64 => "UntypedStorage",
        }
    }

    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Element::F64 | Element::I64 | Element::U64 => 8,
            Element::F32 | Element::I32 | Element::U32 => 4,
            Element::F16 | Element::BF16 | Element::I16 | Element::U16 => 2,
            Element::I8 | Element::U8 | Element::Bool => 1,
        }
    }

    /// The PyTorch dtype name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Element::F64 => "float64",
            Element::F32 => "float32",
            Element::F16 => "float16",
            Element::BF16 => "bfloat16",
            Element::I64 => "int64",
            Element::I32 => "int32",
            Element::I16 => "int16",
            Element::I8 => "int8",
            Element::U8 => "uint8",
            Element::U16 => "uint16",
            Element::U32 => "uint32",
            Element::U64 => "uint64",
            Element::Bool => "bool",
        }
    }

    /// lam's dtype for these values when nothing asks for another: halves
    /// stay `F16`, other floats become `F32`, integers `I32`.
    pub(crate) fn natural(self) -> DType {
        if self == Element::F16 {
            DType::F16
        } else if self.is_float() {
            DType::F32
        } else {
            DType::I32
        }
    }

    fn is_float(self) -> bool {
        matches!(
            self,
            Element::F64 | Element::F32 | Element::F16 | Element::BF16
        )
    }

    /// The elements of `data` at `offsets` (in elements), converted to
    /// `want`, or why they cannot be. Every offset must be in range (the
    /// caller checked the view against the storage).
    pub(crate) fn convert(
        self,
        data: &[u8],
        big_endian: bool,
        offsets: impl Iterator<Item = usize>,
        want: DType,
    ) -> Result<Host, String> {
        let size = self.size();
        let element = |o: usize| -> [u8; 8] {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(&data[o * size..(o + 1) * size]);
            if big_endian {
                b[..size].reverse();
            }
            b
        };
        match want {
            DType::F32 if self.is_float() => offsets
                .map(|o| self.float(element(o)))
                .collect::<Result<_, _>>()
                .map(Host::F32),
            DType::F32 => offsets
                .map(|o| {
                    let v = self.int(element(o));
                    if v.unsigned_abs() <= 1 << 24 {
                        Ok(v as f32)
                    } else {
                        Err(format!(
                            "value {v} ({}) is not exact as float32",
                            self.name()
                        ))
                    }
                })
                .collect::<Result<_, _>>()
                .map(Host::F32),
            DType::F16 if self.is_float() => offsets
                .map(|o| self.float(element(o)).map(half::f16::from_f32))
                .collect::<Result<_, _>>()
                .map(Host::F16),
            DType::F16 => Err(format!(
                "stored as {} but the model holds float16",
                self.name()
            )),
            DType::I32 if self.is_float() => Err(format!(
                "stored as {} but the model holds int32",
                self.name()
            )),
            DType::I32 => offsets
                .map(|o| {
                    let v = self.int(element(o));
                    i32::try_from(v)
                        .map_err(|_| format!("value {v} ({}) overflows int32", self.name()))
                })
                .collect::<Result<_, _>>()
                .map(Host::I32),
        }
    }

    /// A float element (little-endian bytes) as `f32`.
    fn float(self, b: [u8; 8]) -> Result<f32, String> {
        Ok(match self {
            Element::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Element::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            Element::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            _ => {
                let v = f64::from_le_bytes(b);
                if v.is_finite() && v.abs() > f32::MAX as f64 {
                    return Err(format!("value {v} (float64) overflows float32"));
                }
                v as f32
            }
        })
    }

    /// An integer or boolean element (little-endian bytes), widened.
    fn int(self, b: [u8; 8]) -> i128 {
        match self {
            Element::I64 => i64::from_le_bytes(b) as i128,
            Element::U64 => u64::from_le_bytes(b) as i128,
            Element::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i128,
            Element::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i128,
            Element::I16 => i16::from_le_bytes([b[0], b[1]]) as i128,
            Element::U16 => u16::from_le_bytes([b[0], b[1]]) as i128,
            Element::I8 => b[0] as i8 as i128,
            // A bool byte other than 0 is true, as PyTorch reads it.
            Element::Bool => (b[0] != 0) as i128,
            _ => b[0] as i128, // U8 (floats never reach here)
        }
    }
}

/// IEEE half precision to single, exactly (subnormals, infinities, NaN).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = frac × 2^-24, exact in f32.
            let v = frac as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(e: Element, bytes: &[u8]) -> Vec<f32> {
        let n = bytes.len() / e.size();
        match e.convert(bytes, false, 0..n, DType::F32) {
            Ok(Host::F32(v)) => v,
            Ok(_) => panic!("not F32"),
            Err(why) => panic!("{why}"),
        }
    }

    #[test]
    fn half_precision_widens_exactly() {
        let halves: Vec<u8> = [0x3c00u16, 0xc000, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x8000]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let v = floats(Element::F16, &halves);
        assert_eq!(&v[..4], &[1.0, -2.0, 2f32.powi(-24), 65504.0]);
        assert_eq!(v[4], f32::INFINITY);
        assert_eq!(v[5], f32::NEG_INFINITY);
        assert!(v[6] == 0.0 && v[6].is_sign_negative());
        let nan = floats(Element::F16, &0x7e00u16.to_le_bytes());
        assert!(nan[0].is_nan());
        let b = floats(Element::BF16, &0x3fc0u16.to_le_bytes());
        assert_eq!(b, vec![1.5]);
    }

    #[test]
    fn conversions_check_their_range() {
        let big = 1e39f64.to_le_bytes();
        let e = Element::F64.convert(&big, false, 0..1, DType::F32);
        assert!(e.err().expect("overflow").contains("overflows float32"));
        let inf = f64::INFINITY.to_le_bytes();
        assert_eq!(floats(Element::F64, &inf), vec![f32::INFINITY]);
        let wide = (1i64 << 31).to_le_bytes();
        let e = Element::I64.convert(&wide, false, 0..1, DType::I32);
        assert!(e.err().expect("overflow").contains("overflows int32"));
        let e = Element::U64.convert(&u64::MAX.to_le_bytes(), false, 0..1, DType::F32);
        assert!(e.err().expect("inexact").contains("not exact"));
        let e = Element::F32.convert(&[0; 4], false, 0..1, DType::I32);
        assert!(e.err().expect("float for int").contains("int32"));
        match Element::Bool.convert(&[0, 2, 1], false, 0..3, DType::I32) {
            Ok(Host::I32(v)) => assert_eq!(v, vec![0, 1, 1]),
            _ => panic!("bools load as 0 and 1"),
        }
        match Element::I16.convert(&[0x01, 0x80], true, 0..1, DType::I32) {
            Ok(Host::I32(v)) => assert_eq!(v, vec![0x0180]),
            _ => panic!("big-endian int16"),
        }
    }
}
