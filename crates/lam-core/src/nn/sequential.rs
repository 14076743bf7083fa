//! [`Sequential`]: PyTorch's `nn.Sequential`, layers applied in order.
//!
//! Children are named by position (`0.weight`, `1.bias`, ...), exactly the
//! `state_dict` keys PyTorch gives the same stack.

use std::fmt;

use super::summary::{self, record};
use super::{fmt_module, join, Entry, Module, Visit};
use crate::{Result, Tensor};

/// A chain of modules; the output of each is the input of the next.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty chain (its forward is the identity).
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }

    /// This chain with `layer` appended: `Sequential::new().add(a).add(b)`.
    #[allow(clippy::should_implement_trait)] // A builder step, not `+`.
    pub fn add(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends `layer` in place.
    pub fn push(&mut self, layer: impl Module + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Appends an already boxed layer.
    pub fn push_boxed(&mut self, layer: Box<dyn Module>) {
        self.layers.push(layer);
    }

    /// The layer at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&dyn Module> {
        self.layers.get(index).map(|l| l.as_ref())
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers in order.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }
}

impl FromIterator<Box<dyn Module>> for Sequential {
    fn from_iter<I: IntoIterator<Item = Box<dyn Module>>>(iter: I) -> Self {
        Sequential {
            layers: iter.into_iter().collect(),
        }
    }
}

impl Module for Sequential {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let mut x = input.clone();
        let mut i = 0;
        while i < self.layers.len() {
            // A layer followed by an activation it can absorb (Linear then
            // ReLU) runs as one fused op: same result, one pass fewer.
            // (Not while a summary is taken: each layer reports its own output.)
            let act = self
                .layers
                .get(i + 1)
                .filter(|_| !summary::recording())
                .and_then(|next| next.as_activation());
            if let Some(fused) = act.and_then(|a| self.layers[i].forward_then(&x, a)) {
                x = fused?;
                i += 2;
            } else {
                x = self.layers[i].forward(&x)?;
                i += 1;
            }
        }
        record(self, Ok(x))
    }
}

impl Visit for Sequential {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit(&join(prefix, &i.to_string()), f);
        }
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, layer) in self.layers.iter().enumerate() {
            f(&i.to_string(), layer.as_ref());
        }
    }
}

impl fmt::Display for Sequential {
    /// PyTorch's `print(model)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_module(self, f)
    }
}
