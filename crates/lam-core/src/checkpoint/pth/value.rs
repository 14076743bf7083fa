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
    Tuple(Rc<Tuple>),
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

/// A tuple's items, and how deeply tuples nest inside it. Tuples are
/// immutable and shared by `Rc`, so a pickle could nest them deeply enough
/// that dropping one would exhaust the stack: [`Value::tuple`] refuses
/// nesting deeper than [`MAX_NESTING`].
#[derive(Debug)]
pub(crate) struct Tuple {
    items: Vec<Value>,
    depth: usize,
}

impl std::ops::Deref for Tuple {
    type Target = [Value];

    fn deref(&self) -> &[Value] {
        &self.items
    }
}

/// How deeply tuples may nest (state dicts nest them two deep).
pub(crate) const MAX_NESTING: usize = 100;

impl Value {
    /// A tuple of `items`, unless it would nest tuples too deeply.
    pub(crate) fn tuple(items: Vec<Value>) -> Result<Value, String> {
        let inner = items
            .iter()
            .map(|v| match v {
                Value::Tuple(t) => t.depth,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        if inner >= MAX_NESTING {
            return Err(format!("tuples nested more than {MAX_NESTING} deep"));
        }
        Ok(Value::Tuple(Rc::new(Tuple {
            items,
            depth: inner + 1,
        })))
    }
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

/// The mutable containers, by index, and an allowance for copies.
#[derive(Default)]
pub(crate) struct Heap {
    objects: Vec<Container>,
    /// Values that calls may still copy (`set(list)`, `torch.Size(list)`):
    /// a few per byte of pickle, so copying is linear in the file's size.
    allowance: usize,
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

    /// Adds to the allowance for copies (a pickle of `bytes` bytes gets
    /// four values per byte).
    pub(crate) fn allow(&mut self, bytes: usize) {
        self.allowance = self.allowance.saturating_add(bytes.saturating_mul(4));
    }

    /// Takes `n` values from the allowance for copies.
    pub(crate) fn charge(&mut self, n: usize) -> Result<(), String> {
        self.allowance = self.allowance.checked_sub(n).ok_or_else(|| {
            "the pickle copies its lists into more values than it holds bytes".to_string()
        })?;
        Ok(())
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
/// holding several) or a list of them. `budget` bounds the values visited:
/// containers a pickle shares (through its memo) are walked once per
/// reference, and a few bytes of pickle can share a list with itself at
/// every level, a walk of 2^64 steps. A pickle's own values take at least
/// a byte each, so a budget of a few times its length never stops a real one.
pub(crate) fn flatten(root: &Value, heap: &Heap, budget: usize) -> Result<Flat, String> {
    if !matches!(root, Value::Dict(_) | Value::List(_) | Value::Tuple(_)) {
        return Err(format!(
            "the file holds a {}, not a state dict (a dict of tensors, as `model.state_dict()` gives)",
            kind(root)
        ));
    }
    let mut flat = Flat::default();
    let mut walk = Walk {
        heap,
        flat: &mut flat,
        budget,
    };
    walk.visit(root, "", 0)?;
    Ok(flat)
}

struct Walk<'a> {
    heap: &'a Heap,
    flat: &'a mut Flat,
    /// Values that may still be visited.
    budget: usize,
}

impl Walk<'_> {
    fn visit(&mut self, v: &Value, name: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "`{name}` is nested more than {MAX_DEPTH} levels deep (or contains itself)"
            ));
        }
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            "the pickle shares its containers into more values than it holds bytes".to_string()
        })?;
        let child = |seg: &dyn std::fmt::Display| {
            if name.is_empty() {
                seg.to_string()
            } else {
                format!("{name}.{seg}")
            }
        };
        let heap = self.heap;
        let scalar = match v {
            Value::Dict(id) | Value::List(id) => {
                match heap.get(*id) {
                    Some(Container::Dict(d)) => {
                        for (k, item) in &d.entries {
                            self.visit(item, &child(&k.segment()), depth + 1)?;
                        }
                    }
                    Some(Container::List(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            self.visit(item, &child(&i), depth + 1)?;
                        }
                    }
                    None => return Err(format!("`{name}` refers to no object")),
                }
                return Ok(());
            }
            Value::Tuple(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.visit(item, &child(&i), depth + 1)?;
                }
                return Ok(());
            }
            Value::Tensor(t) => {
                if self
                    .flat
                    .tensors
                    .insert(name.to_string(), t.clone())
                    .is_some()
                {
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
        self.flat.scalars.insert(name.to_string(), scalar);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::pickle;
    use super::*;

    fn flat(p: &[u8]) -> Result<Flat, String> {
        let mut heap = Heap::default();
        let (root, _) = pickle::load(p, 0, &mut heap)?;
        flatten(&root, &heap, 4 * p.len() + 1024)
    }

    #[test]
    fn nesting_and_sharing_are_bounded() {
        // ((((...)))) 200 deep: refused as it is built, not when dropped.
        let mut deep = b"\x80\x02)".to_vec();
        deep.extend(std::iter::repeat_n(0x85u8, 200));
        deep.push(b'.');
        let e = flat(&deep).err().expect("too deep");
        assert!(e.contains("nested more than 100"), "{e}");
        // {"a": (None, t1, ..., t60)} with t(k+1) = (t(k), t(k)) through the
        // memo: 2^60 leaves.
        let mut dag = b"\x80\x02}X\x01\x00\x00\x00a(Nq\x00".to_vec();
        for _ in 0..60 {
            dag.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        dag.extend_from_slice(b"ts.");
        let e = flat(&dag).err().expect("too shared");
        assert!(e.contains("shares its containers"), "{e}");
        // A list that contains itself.
        let cycle = b"\x80\x02}X\x01\x00\x00\x00a]q\x00h\x00as.";
        let e = flat(cycle).err().expect("a cycle");
        assert!(e.contains("contains itself"), "{e}");
    }

    #[test]
    fn checkpoints_flatten_to_dotted_names() {
        // {"model": {"w": 1.5}, "epoch": 3, "groups": [{"lr": None}], "ok": True}
        let p = b"\x80\x02}(X\x05\x00\x00\x00model}X\x01\x00\x00\x00wG?\xf8\x00\x00\x00\x00\x00\x00sX\x05\x00\x00\x00epochK\x03X\x06\x00\x00\x00groups]}X\x02\x00\x00\x00lrNsaX\x02\x00\x00\x00ok\x88u.";
        let f = flat(p).expect("valid");
        let s: Vec<(&str, &str)> = f
            .scalars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            s,
            [
                ("epoch", "3"),
                ("groups.0.lr", "None"),
                ("model.w", "1.5"),
                ("ok", "True")
            ]
        );
    }
}
