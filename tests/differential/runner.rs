//! The generic driver of op cases: builds each input (stored data, then the
//! case's view steps, with the gradient leaf before the views), calls the
//! family's op, backpropagates `Σ_k (out_k · w_k).sum()`, and compares every
//! output and gradient with PyTorch's. Cases PyTorch rejects must be errors
//! in lam; a panic anywhere is a failure of that case alone.
//!
//! Reads are batched: the values to compare are queued and read back a few
//! hundred at a time as one `cat` of flattened tensors, so a GPU does one
//! readback per batch rather than several per case.

use std::panic::{catch_unwind, AssertUnwindSafe};

use lam::prelude::*;
use serde_json::Value;

use super::check::{compare_with_slack, Report, Tol};
use super::fixture::{array, cases, list, Args, Array};

/// A case's inputs: each viewed tensor, its gradient leaf (the stored base
/// before the views) and its name (module parameters and buffers).
pub struct Inputs {
    pub tensors: Vec<Tensor>,
    pub leaves: Vec<Tensor>,
    pub names: Vec<Option<String>>,
}

impl Inputs {
    /// Input `i`.
    pub fn at(&self, i: usize) -> &Tensor {
        &self.tensors[i]
    }

    /// The unnamed inputs (the data), in order.
    pub fn data(&self) -> Vec<Tensor> {
        self.tensors
            .iter()
            .zip(&self.names)
            .filter(|(_, n)| n.is_none())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The named inputs (parameters and buffers by `state_dict` key).
    pub fn named(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names
            .iter()
            .zip(&self.tensors)
            .filter_map(|(n, t)| n.as_deref().map(|n| (n, t)))
    }
}

/// What an op produced: its outputs in the fixture's order, and the
/// tensors (module parameters) whose gradients stand for named inputs.
pub struct Outcome {
    pub outputs: Vec<Tensor>,
    pub params: Vec<(String, Tensor)>,
}

impl From<Vec<Tensor>> for Outcome {
    fn from(outputs: Vec<Tensor>) -> Self {
        Outcome {
            outputs,
            params: Vec::new(),
        }
    }
}

impl From<Tensor> for Outcome {
    fn from(t: Tensor) -> Self {
        vec![t].into()
    }
}

/// A family's op: `(op name, args, inputs, device)`.
pub type Op = fn(&str, &Args, &Inputs, &Device) -> lam::Result<Outcome>;

/// The tolerance of an op's outputs (`grad = false`) or gradients.
pub type TolFn = fn(&str, bool) -> Tol;

/// Runs every case of `family` on `dev`; fails listing every failing case,
/// or when there are fewer than `min_cases`.
pub fn run_family(
    family: &str,
    dev: &Device,
    min_cases: usize,
    tol: TolFn,
    op: Op,
) -> lam::Result<()> {
    let mut report = Report::default();
    let mut queue = Queue::default();
    for case in cases(family) {
        let name = case["name"].as_str().unwrap_or("?").to_string();
        report.cases += 1;
        report.errors += case.get("err").is_some() as usize;
        report.differs += case.get("differs").is_some() as usize;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run_case(&case, dev, tol, op, &mut queue, &mut report)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.fail(&name, e),
            Err(p) => report.fail(&name, format!("panicked: {}", panic_text(&p))),
        }
        if queue.len() >= 256 {
            queue.flush(&mut report);
        }
    }
    queue.flush(&mut report);
    report.finish(family, &dev.name(), min_cases)
}

fn run_case(
    case: &Value,
    dev: &Device,
    tol: TolFn,
    op: Op,
    queue: &mut Queue,
    report: &mut Report,
) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or("?");
    let op_name = case["op"].as_str().expect("op");
    let empty = Value::Object(Default::default());
    let args = Args(case.get("args").unwrap_or(&empty));
    let inputs = build_inputs(case, dev).map_err(|e| format!("building the inputs: {e}"))?;
    if let Some(why) = case.get("err") {
        queue.flush(report);
        return expect_error(name, op(op_name, &args, &inputs, dev), why);
    }
    let outcome = op(op_name, &args, &inputs, dev).map_err(|e| format!("lam error: {e}"))?;
    let expected_out = case["out"].as_array().expect("out");
    if outcome.outputs.len() != expected_out.len() {
        return Err(format!(
            "{} outputs, PyTorch has {}",
            outcome.outputs.len(),
            expected_out.len()
        ));
    }
    let exact = case.get("exact").is_some();
    for (k, (t, entry)) in outcome.outputs.iter().zip(expected_out).enumerate() {
        queue.push(
            name,
            format!("output {k}"),
            t,
            entry,
            tol(op_name, false),
            exact,
        )?;
    }
    if let Some(grads) = case.get("grad").and_then(|g| g.as_array()) {
        backward(&outcome, expected_out, dev)?;
        for (i, entry) in grads.iter().enumerate() {
            if entry.is_null() {
                continue;
            }
            let g = input_grad(&inputs, &outcome, i)
                .ok_or_else(|| format!("input {i} has no gradient slot"))?;
            let g = match g {
                Some(g) => g,
                None => Tensor::zeros(array(entry).shape(), dev).map_err(|e| e.to_string())?,
            };
            let what = match &inputs.names[i] {
                Some(n) => format!("gradient of {n}"),
                None => format!("gradient of input {i}"),
            };
            queue.push(name, what, &g, entry, tol(op_name, true), false)?;
        }
    }
    Ok(())
}

/// `Σ_k (out_k · w_k).sum()` backpropagated.
fn backward(outcome: &Outcome, expected_out: &[Value], dev: &Device) -> Result<(), String> {
    let mut total: Option<Tensor> = None;
    for (t, entry) in outcome.outputs.iter().zip(expected_out) {
        let Some(w) = entry.get("w") else { continue };
        let w = array(&serde_json::json!({ "f": w }))
            .tensor(dev)
            .map_err(|e| e.to_string())?;
        let term = t
            .mul(&w)
            .and_then(|p| p.sum_all())
            .map_err(|e| format!("upstream weights: {e}"))?;
        total = Some(match total {
            None => term,
            Some(s) => s.add(&term).map_err(|e| e.to_string())?,
        });
    }
    match total {
        Some(loss) if loss.requires_grad() => loss.backward().map_err(|e| format!("backward: {e}")),
        _ => Ok(()),
    }
}

/// The gradient lam computed for input `i`: the leaf's, or for a named
/// input the module parameter of that name. `None` when there is no such
/// tensor; `Some(None)` when it received no gradient (all zero).
fn input_grad(inputs: &Inputs, outcome: &Outcome, i: usize) -> Option<Option<Tensor>> {
    if let Some(n) = &inputs.names[i] {
        if let Some((_, p)) = outcome.params.iter().find(|(pn, _)| pn == n) {
            return Some(p.grad());
        }
    }
    let leaf = &inputs.leaves[i];
    leaf.requires_grad().then(|| leaf.grad())
}

/// `LAM_DIFF_VERBOSE=1` prints lam's message for every expected error, to
/// check that each fails for the reason PyTorch gives.
fn expect_error(name: &str, result: lam::Result<Outcome>, why: &Value) -> Result<(), String> {
    let outcome = match result {
        Err(e) => {
            if std::env::var("LAM_DIFF_VERBOSE").as_deref() == Ok("1") {
                println!("{name}: lam: {e} | PyTorch: {}", why.as_str().unwrap_or(""));
            }
            return Ok(());
        }
        Ok(outcome) => outcome,
    };
    // A device may report a bad input at the next readback instead.
    for t in &outcome.outputs {
        let read = match t.dtype() {
            DType::F32 | DType::F16 => t.to_vec().map(|_| ()),
            DType::I32 => t.to_vec_i32().map(|_| ()),
        };
        if read.is_err() {
            return Ok(());
        }
    }
    Err(format!(
        "returned Ok where it must be an error (PyTorch: {})",
        why.as_str().unwrap_or("")
    ))
}

/// Builds every input of `case` on `dev`.
pub fn build_inputs(case: &Value, dev: &Device) -> lam::Result<Inputs> {
    let mut inputs = Inputs {
        tensors: Vec::new(),
        leaves: Vec::new(),
        names: Vec::new(),
    };
    for entry in case["in"].as_array().expect("in") {
        let mut base = array(entry).tensor(dev)?;
        if entry.get("g").is_some() {
            base = base.requires_grad_()?;
        }
        let mut t = base.clone();
        if let Some(steps) = entry.get("v").and_then(|v| v.as_array()) {
            for step in steps {
                t = view_step(&t, step, dev)?;
            }
        }
        inputs.tensors.push(t);
        inputs.leaves.push(base);
        inputs
            .names
            .push(entry.get("n").and_then(|n| n.as_str()).map(String::from));
    }
    Ok(inputs)
}

/// One view step, as `fixtures/random_cases/engine.py` `apply_view` does it.
pub fn view_step(t: &Tensor, step: &Value, dev: &Device) -> lam::Result<Tensor> {
    let n = |i: usize| step[i].as_i64().expect("number");
    match step[0].as_str().expect("step kind") {
        "narrow" => t.narrow(n(1) as isize, n(2) as usize, n(3) as usize),
        "t" => t.transpose(n(1) as isize, n(2) as isize),
        "permute" => t.permute(&list(&step[1], |v| v.as_u64().expect("dim") as usize)),
        "expand" => t.expand(&list(&step[1], |v| v.as_i64().expect("size") as isize)),
        "get" => t.get(n(1) as usize),
        "chunk" => Ok(t.chunk(n(1) as usize, n(2) as isize)?[n(3) as usize].clone()),
        "unsqueeze" => t.unsqueeze(n(1) as isize),
        "cat" => Tensor::cat(&[t.clone(), array(&step[1]).tensor(dev)?], n(2) as isize),
        "stack" => Tensor::stack(&[t.clone(), array(&step[1]).tensor(dev)?], n(2) as isize),
        other => panic!("unknown view step {other}"),
    }
}

pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// One value waiting to be read back and compared.
struct Pending {
    case: String,
    what: String,
    tensor: Tensor,
    expected: Array,
    e: f32,
    tol: Tol,
    exact: bool,
    slack: Vec<f32>,
}

/// Values to compare, read back in batches.
#[derive(Default)]
pub struct Queue {
    items: Vec<Pending>,
}

impl Queue {
    fn len(&self) -> usize {
        self.items.len()
    }

    /// Queues `t` for comparison with the fixture array `entry`, checking
    /// its dtype and shape now.
    pub fn push(
        &mut self,
        case: &str,
        what: String,
        t: &Tensor,
        entry: &Value,
        tol: Tol,
        exact: bool,
    ) -> Result<(), String> {
        self.push_with_slack(case, what, t, entry, tol, exact, Vec::new())
    }

    /// [`Queue::push`] with an extra absolute allowance per element.
    #[allow(clippy::too_many_arguments)]
    pub fn push_with_slack(
        &mut self,
        case: &str,
        what: String,
        t: &Tensor,
        entry: &Value,
        tol: Tol,
        exact: bool,
        slack: Vec<f32>,
    ) -> Result<(), String> {
        let expected = array(entry);
        let want = match expected {
            Array::F(..) => DType::F32,
            Array::I(..) => DType::I32,
        };
        if t.dtype() != want {
            return Err(format!(
                "{what}: dtype {:?}, PyTorch's is {want:?}",
                t.dtype()
            ));
        }
        if t.dims() != expected.shape() {
            return Err(format!(
                "{what}: shape {:?}, PyTorch's is {:?}",
                t.dims(),
                expected.shape()
            ));
        }
        let e = entry.get("e").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32;
        let tensor = t.detach();
        self.items.push(Pending {
            case: case.to_string(),
            what,
            tensor,
            expected,
            e,
            tol,
            exact,
            slack,
        });
        Ok(())
    }

    /// Reads every queued value and records the comparisons in `report`.
    pub fn flush(&mut self, report: &mut Report) {
        let items = std::mem::take(&mut self.items);
        let values = read_all(&items);
        let mut failed: Vec<String> = Vec::new();
        for (p, v) in items.iter().zip(values) {
            let result = v.and_then(|v| {
                compare_with_slack(&v, &p.expected.floats(), p.e, p.tol, p.exact, &p.slack)
            });
            match result {
                Ok(m) => report.record(&p.case, m),
                Err(e) => {
                    // One line per failing case (its first failing value).
                    if !failed.contains(&p.case) {
                        failed.push(p.case.clone());
                        report.fail(&p.case, format!("{}: {e}", p.what));
                    }
                }
            }
        }
    }
}

/// The values of every pending tensor, in one readback where possible.
fn read_all(items: &[Pending]) -> Vec<Result<Vec<f32>, String>> {
    let flat: lam::Result<Vec<Tensor>> = items
        .iter()
        .filter(|p| p.tensor.numel() > 0)
        .map(|p| p.tensor.to_dtype(DType::F32)?.reshape(&[-1]))
        .collect();
    let joined = flat.and_then(|f| {
        if f.is_empty() {
            Ok(Vec::new())
        } else {
            Tensor::cat(&f, 0)?.to_vec()
        }
    });
    if let Ok(all) = joined {
        let mut at = 0;
        return items
            .iter()
            .map(|p| {
                let n = p.tensor.numel();
                at += n;
                Ok(all[at - n..at].to_vec())
            })
            .collect();
    }
    // Something in the batch failed to read: read each alone to say which.
    items
        .iter()
        .map(|p| {
            p.tensor
                .to_vec()
                .map_err(|e| format!("{}: reading: {e}", p.what))
        })
        .collect()
}
