//! The recorder: a thread-local graph under construction, and [`traced`],
//! the hook lam's ops call around their work.
//!
//! Off (the usual case) a hook costs one thread-local load. On, the
//! outermost hooked op records one node and the ops it runs inside are not
//! recorded (a `Linear` is one node, not a reshape, a transpose and a
//! matmul). Tensors reach the graph by id: an op's outputs become computed
//! values; an input not seen before is a parameter when the model owns it,
//! an error when it depends on the example input through an op no hook
//! records (it would otherwise be frozen into a constant), and a constant
//! otherwise.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::batch::batch_axis;
use super::graph::{Graph, Node, Op, Value, ValueId, ValueKind};
use crate::{Error, Result, Tensor};

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// True while a capture is on and no recorded op encloses the caller: an op
/// then calls itself again through [`traced`], which records it.
pub(crate) fn hooked() -> bool {
    ACTIVE.with(Cell::get) && DEPTH.with(Cell::get) == 0
}

/// Runs `run` (an op over `inputs`) and, while a capture is on and no
/// hooked op encloses this one, records it as one node of `op()`.
pub(crate) fn traced(
    op: impl FnOnce() -> Op,
    inputs: &[Option<&Tensor>],
    run: impl FnOnce() -> Result<Tensor>,
) -> Result<Tensor> {
    if !ACTIVE.with(Cell::get) {
        return run();
    }
    let mut outs = traced_many(op, inputs, || Ok(vec![run()?]))?;
    Ok(outs.remove(0))
}

/// [`traced`] for ops with several outputs.
pub(crate) fn traced_many(
    op: impl FnOnce() -> Op,
    inputs: &[Option<&Tensor>],
    run: impl FnOnce() -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    if !ACTIVE.with(Cell::get) || DEPTH.with(Cell::get) > 0 {
        return run();
    }
    let outputs = {
        let _inside = Inside::enter();
        run()?
    };
    RECORDER.with(|r| match r.borrow_mut().as_mut() {
        Some(rec) => rec.node(op(), inputs, &outputs),
        None => Ok(()),
    })?;
    Ok(outputs)
}

/// Marks the ops run inside a recorded one, so that they are not recorded.
struct Inside;

impl Inside {
    fn enter() -> Inside {
        DEPTH.with(|d| d.set(d.get() + 1));
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Turns recording on for this thread until dropped (then the graph is
/// discarded unless taken with [`Session::finish`]).
pub(super) struct Session;

impl Session {
    /// Starts recording, `input` as the graph's input (batch axis 0 when
    /// `dynamic_batch`) and `params` (`state_dict` names by tensor id).
    pub(super) fn start(
        input: &Tensor,
        params: HashMap<u64, (String, Tensor)>,
        dynamic_batch: bool,
    ) -> Result<Session> {
        if ACTIVE.with(Cell::get) {
            return Err(Error::invalid(
                "capture",
                "a capture is already running on this thread",
            ));
        }
        let mut rec = Recorder {
            graph: Graph {
                values: Vec::new(),
                nodes: Vec::new(),
                input: 0,
                output: 0,
            },
            ids: HashMap::new(),
            params,
        };
        let batch = (dynamic_batch && input.rank() > 0).then_some(0);
        rec.graph.input = rec.push(input, "input".into(), ValueKind::Input, batch);
        RECORDER.with(|r| *r.borrow_mut() = Some(rec));
        ACTIVE.with(|a| a.set(true));
        Ok(Session)
    }

    /// Stops recording and returns the graph with `output` as its output.
    pub(super) fn finish(self, output: &Tensor) -> Result<Graph> {
        ACTIVE.with(|a| a.set(false));
        let rec = RECORDER.with(|r| r.borrow_mut().take());
        let Some(mut rec) = rec else {
            return Err(Error::invalid("capture", "the recorder was lost"));
        };
        rec.graph.output = rec.resolve(output)?;
        Ok(rec.graph)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
        RECORDER.with(|r| r.borrow_mut().take());
    }
}

struct Recorder {
    graph: Graph,
    /// Tensor id → value.
    ids: HashMap<u64, ValueId>,
    /// Tensor id → the model's name for it, and the tensor.
    params: HashMap<u64, (String, Tensor)>,
}

impl Recorder {
    fn push(
        &mut self,
        t: &Tensor,
        name: String,
        kind: ValueKind,
        batch_axis: Option<usize>,
    ) -> ValueId {
        let id = self.graph.values.len();
        self.graph.values.push(Value {
            name,
            shape: t.shape(),
            dtype: t.dtype(),
            batch_axis,
            kind,
        });
        self.ids.insert(t.id(), id);
        id
    }

    /// The value of an op's input (see the module doc).
    fn resolve(&mut self, t: &Tensor) -> Result<ValueId> {
        if let Some(&id) = self.ids.get(&t.id()) {
            return Ok(id);
        }
        if let Some((name, data)) = self.params.get(&t.id()).cloned() {
            return Ok(self.push(t, name, ValueKind::Parameter(data), None));
        }
        if t.requires_grad() {
            if let Some(op) = t.op_name() {
                return Err(Error::invalid(
                    "capture",
                    format!(
                        "op `{op}` cannot be captured (no graph op records it); \
                         export supports lam's layers and tensor ops listed in lam::onnx"
                    ),
                ));
            }
        }
        let name = format!("const_{}", self.graph.values.len());
        Ok(self.push(t, name, ValueKind::Constant(t.detach()), None))
    }

    fn node(&mut self, op: Op, inputs: &[Option<&Tensor>], outputs: &[Tensor]) -> Result<()> {
        let ins = inputs
            .iter()
            .map(|t| t.map(|t| self.resolve(t)).transpose())
            .collect::<Result<Vec<_>>>()?;
        if op == Op::Identity {
            if let (Some(Some(src)), Some(out)) = (ins.first(), outputs.first()) {
                self.ids.insert(out.id(), *src);
            }
            return Ok(());
        }
        let in_values: Vec<Option<&Value>> = ins
            .iter()
            .map(|i| i.map(|i| &self.graph.values[i]))
            .collect();
        let axes: Vec<Option<usize>> = outputs
            .iter()
            .enumerate()
            .map(|(k, out)| batch_axis(&op, &in_values, out.dims(), k))
            .collect();
        let outs = outputs
            .iter()
            .zip(axes)
            .map(|(t, axis)| {
                let name = format!("t{}", self.graph.values.len());
                self.push(t, name, ValueKind::Computed, axis)
            })
            .collect();
        self.graph.nodes.push(Node {
            op,
            inputs: ins,
            outputs: outs,
        });
        Ok(())
    }
}
