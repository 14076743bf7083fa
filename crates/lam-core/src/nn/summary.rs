//! [`Summary`]: `torchinfo.summary` for a lam model — every module of the
//! tree with its output shape and parameter count — from
//! [`super::Module::summary`].
//!
//! The tree and the counts come from [`super::Visit`]. The output shapes come
//! from one forward pass during which lam's own layers [`record`] what they
//! return (a thread-local flag: one load per layer call otherwise). A layer
//! is matched to its row by its address and type name; layers with no
//! address of their own (zero-sized ones, such as `ReLU`) are matched in
//! call order. A module whose `forward` is user code records nothing, so
//! its row shows `--` unless it is the model itself.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::Ordering;

use super::{Entry, Module};
use crate::{no_grad, Error, Result, Tensor};

/// What [`super::Module::summary`] returns; `Display` prints the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Every module, depth first, the model itself first.
    pub rows: Vec<SummaryRow>,
    /// Parameters (scalars) in the whole model.
    pub total_params: usize,
    /// Those that require grad.
    pub trainable_params: usize,
}

/// One module of a [`Summary`].
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// 0 for the model, 1 for its children, ...
    pub depth: usize,
    /// The child's name in its parent (`fc1`, `0`); empty for the model.
    pub name: String,
    /// [`super::Module::type_name`].
    pub type_name: String,
    /// What its forward returned, when recorded.
    pub output_shape: Option<Vec<usize>>,
    /// Parameter scalars it holds itself (not through children).
    pub params: usize,
}

/// Passes `out` through, noting its shape for the summary being taken (if
/// any) on this thread. lam's layers call it on what `forward` returns.
pub(crate) fn record<M: Module + ?Sized>(module: &M, out: Result<Tensor>) -> Result<Tensor> {
    if let Ok(t) = &out {
        note(module, t);
    }
    out
}

/// Notes `out` as `module`'s output while a summary is being taken.
pub(crate) fn note<M: Module + ?Sized>(module: &M, out: &Tensor) {
    if !ACTIVE.with(Cell::get) {
        return;
    }
    let key = (address(module), module.type_name());
    CALLS.with(|calls| {
        calls
            .borrow_mut()
            .entry(key)
            .or_default()
            .push_back(out.shape())
    });
}

/// True while a summary is being taken on this thread (fusion is off then,
/// so that each layer reports its own output).
pub(crate) fn recording() -> bool {
    ACTIVE.with(Cell::get)
}

/// The summary for zeros of `shape` on the device of `model`'s first tensor.
pub(crate) fn summarize_shape(model: &dyn Module, shape: &[usize]) -> Result<Summary> {
    let Some((_, first)) = model.state_dict().into_iter().next() else {
        return Err(Error::invalid(
            "summary",
            "the model owns no tensor to take the device from; use summary_with(&input)",
        ));
    };
    summarize(model, &Tensor::zeros(shape, &first.device())?)
}

/// The summary for one forward pass of `input`, in evaluation mode without
/// gradients; each layer's train/eval flag is restored afterwards.
pub(crate) fn summarize(model: &dyn Module, input: &Tensor) -> Result<Summary> {
    let mut modes = Vec::new();
    model.visit("", &mut |_, e| {
        if let Entry::Mode(flag) = e {
            modes.push(flag.load(Ordering::Relaxed));
        }
    });
    model.eval();
    let out = {
        let _recording = Recording::start();
        no_grad(|| model.forward(input))
    };
    let mut calls = CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()));
    let mut saved = modes.into_iter();
    model.visit("", &mut |_, e| {
        if let Entry::Mode(flag) = e {
            if let Some(was) = saved.next() {
                flag.store(was, Ordering::Relaxed);
            }
        }
    });
    let out = out?;

    let mut rows = Vec::new();
    walk(model, "", 0, &mut calls, &mut rows);
    rows[0].output_shape = Some(out.shape());
    let (total_params, trainable_params) = counts(model);
    Ok(Summary {
        rows,
        total_params,
        trainable_params,
    })
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self.rows.iter().map(label).collect();
        let shapes: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                r.output_shape
                    .as_ref()
                    .map_or("--".into(), |s| format!("{s:?}"))
            })
            .collect();
        let params: Vec<String> = self
            .rows
            .iter()
            .map(|r| match r.params {
                0 => "--".into(),
                n => thousands(n),
            })
            .collect();
        let w0 = labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .max(24)
            + 2;
        let w1 = shapes.iter().map(String::len).max().unwrap_or(0).max(12) + 2;
        let w2 = params.iter().map(String::len).max().unwrap_or(0).max(7);
        let rule = "=".repeat(w0 + w1 + w2);
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "{:<w0$}{:<w1$}{:>w2$}",
            "Layer (type)", "Output Shape", "Param #"
        )?;
        writeln!(f, "{rule}")?;
        for ((l, s), p) in labels.iter().zip(&shapes).zip(&params) {
            let pad = w0.saturating_sub(l.chars().count());
            writeln!(f, "{l}{:pad$}{s:<w1$}{p:>w2$}", "")?;
        }
        writeln!(f, "{rule}")?;
        writeln!(f, "Total params: {}", thousands(self.total_params))?;
        writeln!(f, "Trainable params: {}", thousands(self.trainable_params))?;
        writeln!(
            f,
            "Non-trainable params: {}",
            thousands(self.total_params - self.trainable_params)
        )?;
        write!(f, "{rule}")
    }
}

/// Output shapes by (address, type name), in call order.
type Calls = HashMap<(usize, String), VecDeque<Vec<usize>>>;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static CALLS: RefCell<Calls> = RefCell::new(HashMap::new());
}

/// Turns recording on for its lifetime (off again on an error or a panic).
struct Recording;

impl Recording {
    fn start() -> Recording {
        CALLS.with(|c| c.borrow_mut().clear());
        ACTIVE.with(|a| a.set(true));
        Recording
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
    }
}

fn address<M: ?Sized>(module: &M) -> usize {
    module as *const M as *const () as usize
}

/// Rows for `module` and, depth first, its children.
fn walk(
    module: &dyn Module,
    name: &str,
    depth: usize,
    calls: &mut Calls,
    rows: &mut Vec<SummaryRow>,
) {
    let type_name = module.type_name();
    let output_shape = calls
        .get_mut(&(address(module), type_name.clone()))
        .and_then(VecDeque::pop_front);
    let mut in_children = 0;
    module.children(&mut |_, child| in_children += counts(child).0);
    rows.push(SummaryRow {
        depth,
        name: name.to_string(),
        type_name,
        output_shape,
        params: counts(module).0 - in_children,
    });
    module.children(&mut |child_name, child| walk(child, child_name, depth + 1, calls, rows));
}

/// (all parameter scalars, those that require grad) of `module`.
fn counts(module: &dyn Module) -> (usize, usize) {
    let (mut all, mut trainable) = (0, 0);
    module.visit("", &mut |_, e| {
        if let Entry::Parameter(t) = e {
            all += t.numel();
            if t.requires_grad() {
                trainable += t.numel();
            }
        }
    });
    (all, trainable)
}

/// `├─fc1 (Linear)`, indented as torchinfo draws depth.
fn label(row: &SummaryRow) -> String {
    let branch = match row.depth {
        0 => String::new(),
        1 => "├─".to_string(),
        d => format!("{}└─", "│    ".repeat(d - 1)),
    };
    if row.depth == 0 {
        row.type_name.clone()
    } else {
        format!("{branch}{} ({})", row.name, row.type_name)
    }
}

/// `101770` → `101,770`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(101770), "101,770");
    }
}
