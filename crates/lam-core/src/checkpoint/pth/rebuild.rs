//! Tensors and storages as a state-dict pickle describes them: the
//! persistent ids of storages, and the `torch._utils` functions that
//! rebuild a tensor as a strided view of one. Every size, stride and
//! offset is checked here, with checked arithmetic, against the storage
//! the view names, before the storage's bytes are even located.

use std::rc::Rc;

use super::element::Element;
use super::globals::{arity, Global};
use super::value::{kind, StorageRef, TensorRef, Value};

/// The tensor rebuild functions of `torch._utils` that lam evaluates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rebuild {
    /// `_rebuild_tensor(storage, offset, size, stride)`
    V1,
    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`
    V2,
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`
    V3,
    /// `_rebuild_parameter(data, requires_grad, hooks)`
    Parameter,
    /// `_rebuild_parameter_with_state(data, requires_grad, hooks, state)`
    ParameterWithState,
}

/// The storage a persistent id names: `('storage', class, key, location,
/// numel)` (zip format) or with a sixth item, the legacy format's view.
pub(crate) fn storage(pid: &Value) -> Result<StorageRef, String> {
    let Value::Tuple(items) = pid else {
        return Err(format!(
            "a persistent id must be a tuple, found a {}",
            kind(pid)
        ));
    };
    let (class, key, location, numel, view) = match &items[..] {
        [tag, class, key, location, numel] if is_str(tag, "storage") => {
            (class, key, location, numel, &Value::None)
        }
        [tag, class, key, location, numel, view] if is_str(tag, "storage") => {
            (class, key, location, numel, view)
        }
        _ => return Err(
            "only persistent ids of storages, ('storage', class, key, location, size), are allowed"
                .into(),
        ),
    };
    let element = match class {
        Value::Global(g) => match **g {
            Global::Storage(Some(e)) => e,
            Global::Storage(None) => Element::U8,
            _ => return Err(format!("the storage class {g:?} is not a storage class")),
        },
        other => return Err(format!("the storage class is a {}", kind(other))),
    };
    let (Some(key), Some(_location), Some(numel)) = (text(key), text(location), count(numel))
    else {
        return Err("a storage's key and location must be strings and its size an integer".into());
    };
    let view = match view {
        Value::None => None,
        Value::Tuple(v) => match &v[..] {
            [k, offset, size] => match (text(k), count(offset), count(size)) {
                (Some(k), Some(o), Some(s)) => Some((k, o, s)),
                _ => return Err("a storage view must be (key, offset, size)".into()),
            },
            _ => return Err("a storage view must be (key, offset, size)".into()),
        },
        other => return Err(format!("a storage view is a {}", kind(other))),
    };
    Ok(StorageRef {
        key,
        element,
        numel,
        view,
    })
}

/// Evaluates a tensor rebuild function.
pub(crate) fn rebuild(r: Rebuild, args: &[Value]) -> Result<Value, String> {
    let (storage, offset, size, stride, dtype) = match (r, args) {
        (Rebuild::V1, [s, o, size, stride])
        | (Rebuild::V2, [s, o, size, stride, _, _])
        | (Rebuild::V2, [s, o, size, stride, _, _, _]) => (s, o, size, stride, None),
        (Rebuild::V3, [s, o, size, stride, _, _, d])
        | (Rebuild::V3, [s, o, size, stride, _, _, d, _]) => (s, o, size, stride, Some(d)),
        (Rebuild::Parameter, [t @ Value::Tensor(_), _, _])
        | (Rebuild::ParameterWithState, [t @ Value::Tensor(_), _, _, _]) => return Ok(t.clone()),
        _ => return Err(arity(&format!("torch._utils rebuild {r:?}"), args)),
    };
    let Value::Storage(storage) = storage else {
        return Err(format!("a tensor's storage is a {}", kind(storage)));
    };
    let element = match dtype {
        None => storage.element,
        Some(Value::Global(g)) => match &**g {
            Global::Dtype(Some(e), _) => *e,
            Global::Dtype(None, name) => {
                return Err(format!("a tensor of dtype {name}, which lam does not load"))
            }
            _ => return Err("a tensor's dtype is not a torch dtype".into()),
        },
        Some(other) => return Err(format!("a tensor's dtype is a {}", kind(other))),
    };
    let dims = |v: &Value, what: &str| -> Result<Vec<usize>, String> {
        let items = match v {
            Value::Tuple(items) => items,
            other => return Err(format!("a tensor's {what} is a {}", kind(other))),
        };
        items
            .iter()
            .map(|d| count(d).and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("a tensor's {what} must hold non-negative integers"))
    };
    let shape = dims(size, "size")?;
    let strides = dims(stride, "stride")?;
    let offset = count(offset)
        .and_then(|o| usize::try_from(o).ok())
        .ok_or("a tensor's storage offset must be a non-negative integer")?;
    if shape.len() != strides.len() {
        return Err(format!(
            "a tensor of size {shape:?} has strides {strides:?}"
        ));
    }
    check_view(storage, element, offset, &shape, &strides)?;
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: storage.clone(),
        element,
        offset,
        shape,
        strides,
    })))
}

/// The view must lie within its storage, with no size that overflows.
fn check_view(
    storage: &StorageRef,
    element: Element,
    offset: usize,
    shape: &[usize],
    strides: &[usize],
) -> Result<(), String> {
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if numel.is_none_or(|n| n > crate::layout::MAX_NUMEL) {
        return Err(format!(
            "a tensor of size {shape:?} has more elements than memory can address"
        ));
    }
    if numel == Some(0) {
        return Ok(());
    }
    // The last element's offset, then the bytes up to its end.
    let last = shape.iter().zip(strides).try_fold(offset, |acc, (&d, &s)| {
        acc.checked_add((d - 1).checked_mul(s)?)
    });
    let storage_bytes = storage
        .view
        .as_ref()
        .map_or(storage.numel, |v| v.2)
        .checked_mul(storage.element.size() as u64);
    let end = last
        .and_then(|l| l.checked_add(1)?.checked_mul(element.size()))
        .map(|e| e as u64);
    match (end, storage_bytes) {
        (Some(end), Some(bytes)) if end <= bytes => Ok(()),
        _ => Err(format!(
            "a tensor of size {shape:?}, strides {strides:?} and offset {offset} reaches past its \
             storage `{}` of {} {} elements",
            storage.key,
            storage.numel,
            storage.element.name()
        )),
    }
}

fn is_str(v: &Value, want: &str) -> bool {
    text(v).is_some_and(|s| s == want)
}

/// A string, or ASCII bytes (Python 2's `str`).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Bytes(b) => std::str::from_utf8(b).ok().map(String::from),
        _ => None,
    }
}

/// A non-negative integer.
fn count(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}
