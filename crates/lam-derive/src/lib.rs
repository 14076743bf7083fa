//! `#[derive(Module)]` for lam: a model's `Visit` implementation — which
//! tensors it owns and under what names — written from its fields, so a
//! parameter cannot be left out of training, checkpoints or `to_device` by
//! a forgotten line. Use it through `lam` (`use lam::prelude::*`), which
//! re-exports it beside the `Module` trait; the model's computation stays a
//! hand-written `impl Module { fn forward }`, as in PyTorch:
//!
//! ```ignore
//! use lam::nn::Linear;
//! use lam::prelude::*;
//!
//! #[derive(Module)]
//! struct Mlp {
//!     fc1: Linear,
//!     fc2: Linear,
//! }
//!
//! impl Module for Mlp {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         self.fc2.forward(&self.fc1.forward(x)?.relu()?)
//!     }
//! }
//! ```
//!
//! Each field is, by its type and its `#[module(...)]` attribute:
//!
//! | field | what the derive does | PyTorch |
//! |---|---|---|
//! | `fc1: Linear` (any `Module`) | a child: `fc1.weight`, `fc1.bias` | `self.fc1 = nn.Linear(..)` |
//! | `blocks: Vec<Block>`, `[Block; 3]` | children `blocks.0.…`, `blocks.1.…` | `nn.ModuleList` |
//! | `heads: BTreeMap<String, Linear>` | children `heads.<key>.…`, in key order | `nn.ModuleDict` |
//! | `proj: Option<Linear>` | a child when `Some`, nothing when `None` | `self.proj = None` |
//! | `#[module(param)] w: Tensor` | a parameter `w` (also `Option`, `Vec`, map of tensors) | `nn.Parameter` |
//! | `#[module(buffer)] steps: Tensor` | a buffer `steps`: saved, not trained | `register_buffer` |
//! | `#[module(skip)] cache: Anything` | nothing | a plain attribute |
//! | `hidden: usize`, `p: f32`, `name: String`, ... | nothing (plain data holds no tensor) | a plain attribute |
//! | `mode: Mode` | the train/eval flag | `self.training` |
//!
//! `#[module(name = "...")]` gives a field another key. The keys are
//! PyTorch's `state_dict` keys for the same model, in PyTorch's order: a
//! module's own parameters, then its buffers, then each child, each group
//! in field order.
//!
//! What it rejects, with a message saying what to write instead: a field
//! whose type mentions `Tensor` without `param`, `buffer` or `skip` (a
//! tensor's role is never guessed); `param`/`buffer` on a field that holds
//! no tensor; a field of a type that is not a module (the compiler's error
//! names it, with a note); two fields with one key; keys that are empty or
//! contain a `.`; enums and unions.
//!
//! The derive also writes `Display` (PyTorch's `print(model)` tree, from
//! each module's `Module::type_name` and `Module::extra_repr`), which needs
//! the type to implement `Module`; `#[module(no_display)]` on the struct
//! leaves it out (for a type that only holds modules, or has its own
//! `Display`).
//!
//! The generated code names lam's items as `::lam::nn::...`. A crate that
//! depends on `lam-core` directly says so with `#[module(crate = "lam_core")]`
//! (`lam-core` itself declares `extern crate self as lam`, so its own
//! layers need nothing).

mod attrs;
mod expand;
mod types;

use proc_macro::TokenStream;

/// Writes `Visit` (and `Display`) for a struct from its fields; see the
/// crate documentation for what each kind of field becomes.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    match expand::derive(&input) {
        Ok(tokens) => tokens.into(),
        Err(errors) => {
            // The errors, and an empty `Visit` so that the type's `impl
            // Module` does not add a second, misleading error.
            let mut tokens = errors.into_compile_error();
            tokens.extend(expand::placeholder(&input));
            tokens.into()
        }
    }
}
