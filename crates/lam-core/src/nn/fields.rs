//! What `#[derive(Module)]` calls for each field: [`Submodule`] for child
//! modules and collections of them, [`TensorField`] for tensors marked
//! `#[module(param)]` or `#[module(buffer)]`. A hand-written
//! [`Visit`] can call them too.
//!
//! Collections follow PyTorch's containers: a `Vec` or array of modules is an
//! `nn.ModuleList` (children `0`, `1`, ...; printed as `ModuleList`), a
//! `BTreeMap<String, _>` an `nn.ModuleDict` (children by key, in key order),
//! an `Option` a child that may be absent. The same shapes of tensors are
//! `nn.ParameterList` / `nn.ParameterDict` (`name.0`, `name.key`).

use std::collections::BTreeMap;

use super::{join, Entry, Mode, Module, Visit};
use crate::{Error, Result, Tensor};

/// A field that holds modules: a module, or an `Option`, `Vec`, array or
/// `BTreeMap<String, _>` of them (nested as deep as wanted), or a [`Mode`]
/// flag.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a module, so #[derive(Module)] cannot visit this field",
    label = "not a Module",
    note = "a field is a child module (a type implementing `Module`, or an Option, Vec, array or \
            BTreeMap<String, _> of them); mark a field that holds no module #[module(skip)], and \
            a tensor #[module(param)] or #[module(buffer)]"
)]
pub trait Submodule: Send + Sync {
    /// Reports this field's tensors under `prefix.name`.
    fn visit_submodule(&self, prefix: &str, name: &str, f: &mut dyn FnMut(&str, Entry<'_>));

    /// Reports this field as a child named `name` (nothing for an absent
    /// `Option` or a flag).
    fn child(&self, name: &str, f: &mut dyn FnMut(&str, &dyn Module));
}

/// How [`TensorField`] reports its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// Trainable: [`Entry::Parameter`].
    Parameter,
    /// Saved, not trained: [`Entry::Buffer`].
    Buffer,
}

/// A field that holds tensors: a `Tensor`, or an `Option`, `Vec`, array,
/// `Box` or `BTreeMap<String, _>` of them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tensor, so it cannot be marked #[module(param)] or #[module(buffer)]",
    label = "not a tensor field",
    note = "param and buffer are for Tensor, Option<Tensor>, Vec<Tensor>, arrays and \
            BTreeMap<String, Tensor>; a module field (a child) takes no attribute"
)]
pub trait TensorField {
    /// Reports each tensor under `key` (collections add `.index` / `.key`).
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>));
}

impl<M: Module> Submodule for M {
    fn visit_submodule(&self, prefix: &str, name: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.visit(&join(prefix, name), f);
    }

    fn child(&self, name: &str, f: &mut dyn FnMut(&str, &dyn Module)) {
        f(name, self);
    }
}

impl<T: Submodule> Submodule for Option<T> {
    fn visit_submodule(&self, prefix: &str, name: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        if let Some(m) = self {
            m.visit_submodule(prefix, name, f);
        }
    }

    fn child(&self, name: &str, f: &mut dyn FnMut(&str, &dyn Module)) {
        if let Some(m) = self {
            m.child(name, f);
        }
    }
}

impl<T: Submodule> Submodule for Vec<T> {
    fn visit_submodule(&self, prefix: &str, name: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        ModuleList(self).visit(&join(prefix, name), f);
    }

    fn child(&self, name: &str, f: &mut dyn FnMut(&str, &dyn Module)) {
        f(name, &ModuleList(self));
    }
}

impl<T: Submodule, const N: usize> Submodule for [T; N] {
    fn visit_submodule(&self, prefix: &str, name: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        ModuleList(self).visit(&join(prefix, name), f);
    }

    fn child(&self, name: &str, f: &mut dyn FnMut(&str, &dyn Module)) {
        f(name, &ModuleList(self));
    }
}

impl<T: Submodule> Submodule for BTreeMap<String, T> {
    fn visit_submodule(&self, prefix: &str, name: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        ModuleDict(self).visit(&join(prefix, name), f);
    }

    fn child(&self, name: &str, f: &mut dyn FnMut(&str, &dyn Module)) {
        f(name, &ModuleDict(self));
    }
}

/// The train/eval flag, reported under the owning module's own prefix.
impl Submodule for Mode {
    fn visit_submodule(&self, prefix: &str, _name: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.visit(prefix, f);
    }

    fn child(&self, _name: &str, _f: &mut dyn FnMut(&str, &dyn Module)) {}
}

impl TensorField for Tensor {
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>)) {
        match role {
            TensorRole::Parameter => f(key, Entry::Parameter(self)),
            TensorRole::Buffer => f(key, Entry::Buffer(self)),
        }
    }
}

impl<T: TensorField> TensorField for Option<T> {
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>)) {
        if let Some(t) = self {
            t.visit_tensors(key, role, f);
        }
    }
}

impl<T: TensorField + ?Sized> TensorField for Box<T> {
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>)) {
        (**self).visit_tensors(key, role, f);
    }
}

impl<T: TensorField> TensorField for [T] {
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, t) in self.iter().enumerate() {
            t.visit_tensors(&join(key, &i.to_string()), role, f);
        }
    }
}

impl<T: TensorField> TensorField for Vec<T> {
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.as_slice().visit_tensors(key, role, f);
    }
}

impl<T: TensorField, const N: usize> TensorField for [T; N] {
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.as_slice().visit_tensors(key, role, f);
    }
}

impl<T: TensorField> TensorField for BTreeMap<String, T> {
    fn visit_tensors(&self, key: &str, role: TensorRole, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (k, t) in self {
            t.visit_tensors(&join(key, k), role, f);
        }
    }
}

/// A list of modules seen as one child (PyTorch's `nn.ModuleList`): items
/// named by index.
struct ModuleList<'a, T>(&'a [T]);

impl<T: Submodule> Visit for ModuleList<'_, T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, m) in self.0.iter().enumerate() {
            m.visit_submodule(prefix, &i.to_string(), f);
        }
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, m) in self.0.iter().enumerate() {
            m.child(&i.to_string(), f);
        }
    }
}

impl<T: Submodule> Module for ModuleList<'_, T> {
    fn forward(&self, _input: &Tensor) -> Result<Tensor> {
        Err(no_forward("ModuleList"))
    }

    fn type_name(&self) -> String {
        "ModuleList".into()
    }
}

/// A map of modules seen as one child (PyTorch's `nn.ModuleDict`): items
/// named by key, in key order.
struct ModuleDict<'a, T>(&'a BTreeMap<String, T>);

impl<T: Submodule> Visit for ModuleDict<'_, T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (k, m) in self.0 {
            m.visit_submodule(prefix, k, f);
        }
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (k, m) in self.0 {
            m.child(k, f);
        }
    }
}

impl<T: Submodule> Module for ModuleDict<'_, T> {
    fn forward(&self, _input: &Tensor) -> Result<Tensor> {
        Err(no_forward("ModuleDict"))
    }

    fn type_name(&self) -> String {
        "ModuleDict".into()
    }
}

fn no_forward(what: &'static str) -> Error {
    Error::invalid(
        what,
        "a collection of modules has no forward of its own; call its items",
    )
}
