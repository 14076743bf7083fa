//! The Python values a state-dict pickle builds, and the walk that turns
//! the unpickled object into named tensors.
//!
//! Lists and dicts are mutable and shared in Python (a memo entry refers to
//! the same object a later `SETITEM` fills), so they live in an arena,
//! [`Heap`], and values refer to them by index; everything else is
//! immutable and shared by `Rc`. Storages and tensors are descriptions
//! only — a storage key and element type, a tensor's view of one — whose
//! bytes the file's reader resolves and checks afterwards.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::element::Element;

/// A value on the unpickler's stack.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond 64 bits, as little-endian two's complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    /// A list (or set) in the heap.
    List(usize),
    /// A dict, `OrderedDict` or `Counter` in the heap.
    Dict(usize),
    /// A class or function from the allowed set, not yet called.
    Global(Rc<super::globals::Global>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// Something lam reads past but has no use for (a `torch.device`, a
    /// complex number), described.
    Opaque(Rc<str>),
}

/// A storage as a persistent id names it.
#[derive(Debug)]
pub(crate) struct StorageRef {
    pub(crate) key: String,
    pub(crate) element: Element,
    /// Elements (bytes for an untyped storage).
    pub(crate) numel: u64,
    /// The legacy format's storage views: `(view key, offset, elements)`.
    pub(crate) view: Option<(String, u64, u64)>,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
#[derive(Debug)]
pub(crate) struct TensorRef {
    pub(crate) storage: Rc<StorageRef>,
    pub(crate) element: Element,
    pub(crate) offset: usize,
    pub(crate) shape: Vec<usize>,
    pub(crate) strides: Vec<usize>,
}

/// The mutable containers, by index.
#[derive(Default)]
pub(crate) struct Heap {
    objects: Vec<Container>,
}

pub(crate) enum Container {
    List(Vec<Value>),
    Dict(Dict),
}

/// A dict in insertion order; keys are the hashable values a state dict
/// uses (strings, integers, `None`, bytes).
#[derive(Default)]
pub(crate) struct Dict {
    entries: Vec<(Key, Value)>,
    index: HashMap<Key, usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Str(Rc<str>),
    Int(i64),
    Bytes(Rc<[u8]>),
    None,
}

impl Key {
    /// The key a value makes, as Python hashes it (`True == 1`).
    pub(crate) fn of(v: &Value) -> Result<Key, String> {
        Ok(match v {
            Value::Str(s) => Key::Str(s.clone()),
            Value::Int(i) => Key::Int(*i),
            Value::Bool(b) => Key::Int(*b as i64),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            Value::None => Key::None,
            other => {
                return Err(format!(
                    "a dict key of kind {} is not supported",
                    kind(other)
                ))
            }
        })
    }

    /// The key as part of a dotted tensor name.
    fn segment(&self) -> String {
        match self {
            Key::Str(s) => s.to_string(),
            Key::Int(i) => i.to_string(),
            Key::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Key::None => "None".into(),
        }
    }
}

impl Dict {
    /// Sets `key` to `value`, keeping the first insertion's place (Python's order).
    pub(crate) fn insert(&mut self, key: Key, value: Value) {
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }
}

impl Heap {
    pub(crate) fn alloc(&mut self, c: Container) -> usize {
        self.objects.push(c);
        self.objects.len() - 1
    }

    pub(crate) fn get_mut(&mut self, id: usize) -> Option<&mut Container> {
        self.objects.get_mut(id)
    }

    pub(crate) fn get(&self, id: usize) -> Option<&Container> {
        self.objects.get(id)
    }
}

/// A short description of a value's kind, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global(_) => "class or function",
        Value::Storage(_) => "storage",
        Value::Tensor(_) => "tensor",
        Value::Opaque(_) => "object",
    }
}

/// How deep nested dicts and lists may go: far beyond any checkpoint, and
/// short of exhausting the stack on a crafted file (or looping on a cycle).
const MAX_DEPTH: usize = 64;

/// What a file holds, flattened: tensors and plain values by dotted name
/// (`model.fc1.weight`, `optimizer.param_groups.0.lr`), as lam names a
/// nested module's state.
#[derive(Default)]
pub(crate) struct Flat {
    pub(crate) tensors: BTreeMap<String, Rc<TensorRef>>,
    /// Strings, numbers, booleans, `None` and devices, as text (`True`,
    /// `None`, `0.001`, `device(cuda:0)`).
    pub(crate) scalars: BTreeMap<String, String>,
}

/// Flattens `root`, which must be a dict (a state dict or a checkpoint
/// holding several) or a list of them.
pub(crate) fn flatten(root: &Value, heap: &Heap) -> Result<Flat, String> {
    if !matches!(root, Value::Dict(_) | Value::List(_) | Value::Tuple(_)) {
        return Err(format!(
            "the file holds a {}, not a state dict (a dict of tensors, as `model.state_dict()` gives)",
            kind(root)
        ));
    }
    let mut flat = Flat::default();
    walk(root, "", heap, 0, &mut flat)?;
    Ok(flat)
}

fn walk(v: &Value, name: &str, heap: &Heap, depth: usize, flat: &mut Flat) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "`{name}` is nested more than {MAX_DEPTH} levels deep (or contains itself)"
        ));
    }
    let child = |seg: &dyn std::fmt::Display| {
        if name.is_empty() {
            seg.to_string()
        } else {
            format!("{name}.{seg}")
        }
    };
    let scalar = match v {
        Value::Dict(id) | Value::List(id) => {
            match heap.get(*id) {
                Some(Container::Dict(d)) => {
                    for (k, item) in &d.entries {
                        walk(item, &child(&k.segment()), heap, depth + 1, flat)?;
                    }
                }
                Some(Container::List(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, &child(&i), heap, depth + 1, flat)?;
                    }
                }
                None => return Err(format!("`{name}` refers to no object")),
            }
            return Ok(());
        }
        Value::Tuple(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &child(&i), heap, depth + 1, flat)?;
            }
            return Ok(());
        }
        Value::Tensor(t) => {
            if flat.tensors.insert(name.to_string(), t.clone()).is_some() {
                return Err(format!("two tensors are named `{name}`"));
            }
            return Ok(());
        }
        Value::None => "None".to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Int(i) => i.to_string(),
        // Rust's shortest form that reads back to the same f64.
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.to_string(),
        Value::Opaque(what) => what.to_string(),
        // Bytes, big integers, bare storages: nothing lam can hold.
        _ => return Ok(()),
    };
    flat.scalars.insert(name.to_string(), scalar);
    Ok(())
}
