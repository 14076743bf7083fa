//! The classes and functions a state-dict pickle may name, and what
//! calling them means — the allowlist of `torch.load(weights_only=True)`,
//! evaluated by lam without running any code.
//!
//! A `GLOBAL` outside PyTorch's allowlist is an error naming it, as it is
//! for PyTorch. Inside it, lam evaluates what state dicts use (tensors
//! rebuilt over storages, parameters, `OrderedDict`, `torch.Size`, dtypes,
//! `torch.device`, bytes, sets) and names the rest it cannot hold
//! (quantized, sparse and complex tensors, legacy tensor types).

use std::rc::Rc;

use super::element::Element;
use super::rebuild::{self, Rebuild};
use super::value::{kind, Container, Dict, Heap, Key, Value};

/// An allowed global, resolved.
#[derive(Debug)]
pub(crate) enum Global {
    OrderedDict,
    Counter,
    Set,
    ByteArray,
    Complex,
    Encode,
    Size,
    Device,
    Parameter,
    Tensor,
    /// `torch.<dtype>`; `None` for dtypes lam cannot hold (complex, float8, ...).
    Dtype(Option<Element>, String),
    /// A storage class; `None` is `torch.storage.UntypedStorage` (bytes).
    Storage(Option<Element>),
    Rebuild(Rebuild),
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`.
    RebuildFromType,
}

/// Resolves `module.name`, or says why it is refused.
pub(crate) fn resolve(module: &str, name: &str) -> Result<Global, String> {
    // Python 2 module names, as PyTorch maps them.
    let module = match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        m => m,
    };
    let full = format!("{module}.{name}");
    let unsupported = |what: &str| {
        Err(format!(
            "`{full}` ({what}) is allowed by torch.load(weights_only=True), but lam does not load it"
        ))
    };
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("collections", "Counter") => Global::Counter,
        ("builtins", "set") => Global::Set,
        ("builtins", "bytearray") => Global::ByteArray,
        ("builtins", "complex") => Global::Complex,
        ("_codecs", "encode") => Global::Encode,
        ("torch", "Size") => Global::Size,
        ("torch", "device") => Global::Device,
        ("torch", "Tensor") => Global::Tensor,
        ("torch.nn.parameter", "Parameter") => Global::Parameter,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromType,
        ("torch.storage", "UntypedStorage") => Global::Storage(None),
        ("torch._utils", f) => match f {
            "_rebuild_tensor" => Global::Rebuild(Rebuild::V1),
            "_rebuild_tensor_v2" => Global::Rebuild(Rebuild::V2),
            "_rebuild_tensor_v3" => Global::Rebuild(Rebuild::V3),
            "_rebuild_parameter" => Global::Rebuild(Rebuild::Parameter),
            "_rebuild_parameter_with_state" => Global::Rebuild(Rebuild::ParameterWithState),
            "_rebuild_qtensor" => return unsupported("a quantized tensor"),
            "_rebuild_sparse_tensor" => return unsupported("a sparse tensor"),
            "_rebuild_meta_tensor_no_storage" => return unsupported("a tensor without data"),
            "_rebuild_wrapper_subclass" => return unsupported("a tensor subclass"),
            "_rebuild_device_tensor_from_numpy" | "_rebuild_device_tensor_from_cpu_tensor" => {
                return unsupported("a device tensor saved through NumPy")
            }
            _ => return Err(not_allowed(&full)),
        },
        ("torch.serialization", "_get_layout") => return unsupported("a sparse layout"),
        ("torch.storage", "TypedStorage") => return unsupported("a bare typed storage"),
        ("torch" | "torch.cuda", class) if STORAGE_CLASSES.contains(&class) => {
            match Element::of_storage_class(class) {
                Some(e) => Global::Storage(Some(e)),
                None => return unsupported("complex or quantized storage"),
            }
        }
        ("torch" | "torch.cuda" | "torch.sparse" | "torch.cuda.sparse", class)
            if TENSOR_CLASSES.contains(&class)
                && !(module.ends_with("sparse") && class == "BoolTensor") =>
        {
            return unsupported("a legacy tensor type")
        }
        ("torch", dtype) if DTYPES.contains(&dtype) => {
            Global::Dtype(Element::of_dtype(dtype), full)
        }
        ("torch", scheme) if QSCHEMES.contains(&scheme) => {
            return unsupported("a quantization scheme")
        }
        _ => return Err(not_allowed(&full)),
    })
}

/// The message for a global outside PyTorch's allowlist.
fn not_allowed(full: &str) -> String {
    let mut msg = format!(
        "the pickle names `{full}`, which torch.load(weights_only=True) refuses too: \
         lam loads state dicts and never runs code from a file"
    );
    let module = full.rsplit_once('.').map_or("", |(m, _)| m);
    if module == "__main__" || module.starts_with("torch.nn.modules") {
        msg += ". The file holds a pickled model object (`torch.save(model, path)`); \
                in Python, `torch.save(model.state_dict(), path)` writes what lam reads";
    }
    msg
}

/// Calls `global` with `args` (REDUCE, or NEWOBJ for a class).
pub(crate) fn call(global: &Global, args: &[Value], heap: &mut Heap) -> Result<Value, String> {
    match global {
        Global::OrderedDict | Global::Counter => new_dict(args, heap),
        Global::Set => {
            let items = match args {
                [] => Vec::new(),
                [v] => copy_items(v, heap)?,
                _ => return Err(arity("set", args)),
            };
            Ok(Value::List(heap.alloc(Container::List(items))))
        }
        Global::ByteArray => match args {
            [] => Ok(Value::Bytes(Rc::from(&[][..]))),
            [Value::Bytes(b)] => Ok(Value::Bytes(b.clone())),
            _ => Ok(Value::Opaque("bytearray".into())),
        },
        Global::Complex => Ok(Value::Opaque("complex".into())),
        Global::Encode => encode(args),
        Global::Size => match args {
            [v] => Value::tuple(copy_items(v, heap)?),
            _ => Err(arity("torch.Size", args)),
        },
        Global::Device => match args {
            [Value::Str(s)] => Ok(Value::Opaque(format!("device({s})").into())),
            [Value::Str(s), Value::Int(i)] => Ok(Value::Opaque(format!("device({s}:{i})").into())),
            _ => Err(arity("torch.device", args)),
        },
        Global::Parameter => match args {
            [t @ Value::Tensor(_)] | [t @ Value::Tensor(_), Value::Bool(_)] => Ok(t.clone()),
            _ => Err(arity("torch.nn.Parameter", args)),
        },
        Global::Rebuild(r) => rebuild::rebuild(*r, args),
        Global::RebuildFromType => match args {
            [Value::Global(func), Value::Global(ty), Value::Tuple(inner), _state]
                if matches!(**ty, Global::Tensor | Global::Parameter) =>
            {
                call(func, inner, heap)
            }
            _ => Err(arity("torch._tensor._rebuild_from_type_v2", args)),
        },
        Global::Tensor | Global::Dtype(..) | Global::Storage(_) => Err(format!(
            "lam does not call {global:?} (a class, not a tensor rebuild)"
        )),
    }
}

const STORAGE_CLASSES: &[&str] = &[
    "BFloat16Storage",
    "BoolStorage",
    "ByteStorage",
    "CharStorage",
    "ComplexDoubleStorage",
    "ComplexFloatStorage",
    "DoubleStorage",
    "FloatStorage",
    "HalfStorage",
    "IntStorage",
    "LongStorage",
    "ShortStorage",
    "QInt32Storage",
    "QInt8Storage",
    "QUInt2x4Storage",
    "QUInt4x2Storage",
    "QUInt8Storage",
];

const TENSOR_CLASSES: &[&str] = &[
    "BFloat16Tensor",
    "BoolTensor",
    "ByteTensor",
    "CharTensor",
    "DoubleTensor",
    "FloatTensor",
    "HalfTensor",
    "IntTensor",
    "LongTensor",
    "ShortTensor",
];

const DTYPES: &[&str] = &[
    "bfloat16",
    "bool",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "complex32",
    "complex64",
    "complex128",
    "bcomplex32",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "float4_e2m1fn_x2",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "int1",
    "int2",
    "int3",
    "int4",
    "int5",
    "int6",
    "int7",
    "uint1",
    "uint2",
    "uint3",
    "uint4",
    "uint5",
    "uint6",
    "uint7",
    "qint32",
    "qint8",
    "quint2x4",
    "quint4x2",
    "quint8",
];

const QSCHEMES: &[&str] = &[
    "per_channel_affine",
    "per_channel_affine_float_qparams",
    "per_channel_symmetric",
    "per_tensor_affine",
    "per_tensor_symmetric",
];

/// `OrderedDict()`, or one built from a sequence of `(key, value)` pairs.
fn new_dict(args: &[Value], heap: &mut Heap) -> Result<Value, String> {
    let mut dict = Dict::default();
    match args {
        [] => {}
        [pairs] => {
            for pair in copy_items(pairs, heap)? {
                match &pair {
                    Value::Tuple(kv) if kv.len() == 2 => {
                        dict.insert(Key::of(&kv[0])?, kv[1].clone())
                    }
                    other => {
                        return Err(format!(
                            "a dict is built from (key, value) pairs, found a {}",
                            kind(other)
                        ))
                    }
                }
            }
        }
        _ => return Err(arity("OrderedDict", args)),
    }
    Ok(Value::Dict(heap.alloc(Container::Dict(dict))))
}

/// `_codecs.encode(text, encoding)`: how protocol 2 pickles `bytes`.
fn encode(args: &[Value]) -> Result<Value, String> {
    let [Value::Str(s), Value::Str(enc)] = args else {
        return Err(arity("_codecs.encode", args));
    };
    let bytes: Vec<u8> = match enc.to_ascii_lowercase().as_str() {
        "latin1" | "latin-1" | "iso-8859-1" => s
            .chars()
            .map(|c| u8::try_from(c as u32).map_err(|_| format!("{c:?} is not latin-1")))
            .collect::<Result<_, _>>()?,
        "utf-8" | "utf8" | "ascii" => s.as_bytes().to_vec(),
        other => return Err(format!("_codecs.encode with encoding {other:?}")),
    };
    Ok(Value::Bytes(bytes.into()))
}

/// A copy of a tuple's or list's items, charged to the heap's allowance
/// (a pickle could otherwise copy one long list over and over).
fn copy_items(v: &Value, heap: &mut Heap) -> Result<Vec<Value>, String> {
    let items = match v {
        Value::Tuple(items) => items.to_vec(),
        Value::List(id) => match heap.get(*id) {
            Some(Container::List(items)) => items.clone(),
            _ => return Err("a list refers to no object".into()),
        },
        other => return Err(format!("expected a tuple or list, found a {}", kind(other))),
    };
    heap.charge(items.len())?;
    Ok(items)
}

/// A message naming a call and the kinds of its arguments.
pub(super) fn arity(what: &str, args: &[Value]) -> String {
    let kinds: Vec<&str> = args.iter().map(kind).collect();
    format!("{what} called with arguments ({})", kinds.join(", "))
}
