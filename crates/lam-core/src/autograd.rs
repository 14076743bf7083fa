//! The autodiff tape.
//!
//! Each tensor produced by a differentiable op while gradients are enabled
//! carries a [`Node`]: the op's inputs and a closure mapping the gradient of
//! the output to the gradients of the inputs. The closure is written in
//! tensor ops right beside the op's forward code, so it runs on any backend.
//! [`Tensor::backward`] walks the nodes in reverse topological order and
//! accumulates gradients into the `.grad()` of leaf tensors that require grad
//! (PyTorch's convention); they accumulate across calls until zeroed.
//!
//! A leaf's gradient is stored as soon as the last op that reads the leaf
//! has run, not when the walk reaches the leaf, so code outside lam-core can
//! act on each gradient while the rest of the backward pass still runs:
//! [`Tensor::register_post_accumulate_grad_hook`] calls a function right
//! after a leaf's gradient is stored (data-parallel training starts sending
//! it to the other replicas there), and [`queue_callback`], called from such
//! a hook, runs a function once the whole pass has finished. [`custom_op`]
//! records an op whose forward and gradient rule are written outside
//! lam-core (PyTorch's `torch.autograd.Function`).
//!
//! Closures capture *detached* copies of the tensors they read (including,
//! where needed, the op's own output), so the graph holds no reference
//! cycles and is freed when the last tensor of a step drops. Nodes hold
//! edges to their inputs' nodes, never the inputs' buffers, so memory goes
//! as PyTorch's: an intermediate result lives while a handle or a saved
//! value needs it, and `backward` drops each rule with what it saved once it
//! has run (`backward_retain_graph` keeps them for another pass).
//!
//! `untrained`: the first `backward` after an optimizer is built checks that
//! every leaf given a gradient is in some optimizer ([`UntrainedCheck`]).

mod pieces;
mod untrained;

pub(crate) use pieces::Piece;
use pieces::{accumulate, Owned};
pub(crate) use untrained::register_optimized;
pub use untrained::{set_untrained_check, UntrainedCheck};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{Error, Result, Tensor};

/// Maps the output gradient to one optional gradient per input.
pub type BackwardFn = Arc<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// A function called with a leaf right after `backward` stored its gradient.
pub type GradHook = Arc<dyn Fn(&Tensor) -> Result<()> + Send + Sync>;

/// One recorded op: its name (for error messages), the edges to its inputs
/// and its gradient rule. A node holds no tensor data of its own: the edges
/// reach the inputs' nodes, not their buffers, so an intermediate result is
/// freed as soon as no tensor handle and no rule needs it (as PyTorch's
/// graph keeps only saved tensors). The rule, with the tensors it saved, is
/// dropped once `backward` has run it, unless the graph is retained.
pub struct Node {
    // Keys the node's gradient in the walk; from the tensor id counter, so
    // it never equals a leaf's id.
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    // The shape of the op's output, for checking the gradients its
    // consumers' rules produce.
    shape: Vec<usize>,
    inputs: Vec<Edge>,
    rule: Mutex<Option<BackwardFn>>,
    // For a view into part of its one input (`narrow`, `slice_step`): where
    // the rule's gradient, the view's own, goes in the input's gradient.
    piece: Option<Piece>,
}

/// Where an input's gradient goes.
enum Edge {
    /// The input does not require grad: its gradient is dropped.
    Skip,
    /// A leaf that requires grad: its gradient is stored in `.grad()`.
    Leaf(Tensor),
    /// The result of another recorded op.
    Op(Arc<Node>),
}

impl Edge {
    fn dims(&self) -> &[usize] {
        match self {
            Edge::Skip => &[],
            Edge::Leaf(t) => t.dims(),
            Edge::Op(n) => &n.shape,
        }
    }
}

impl Node {
    pub(crate) fn new(
        id: u64,
        name: &'static str,
        shape: &[usize],
        inputs: &[&Tensor],
        rule: BackwardFn,
        piece: Option<Piece>,
    ) -> Node {
        let inputs = inputs
            .iter()
            .map(|t| match t.node() {
                Some(node) => Edge::Op(node.clone()),
                None if t.requires_grad() => Edge::Leaf((*t).clone()),
                None => Edge::Skip,
            })
            .collect();
        Node {
            id,
            name,
            shape: shape.to_vec(),
            inputs,
            rule: Mutex::new(Some(rule)),
            piece,
        }
    }

    /// The rule to run: shared when the graph is retained, taken (so the
    /// tensors it saved are freed when it returns) otherwise.
    fn rule(&self, retain_graph: bool) -> Result<BackwardFn> {
        let mut slot = self.rule.lock().unwrap_or_else(|e| e.into_inner());
        let rule = if retain_graph {
            slot.clone()
        } else {
            slot.take()
        };
        rule.ok_or_else(|| {
            Error::Autograd(format!(
                "backward through {} a second time: the first backward freed the values its \
                 gradient rule saved; call backward_retain_graph() (PyTorch's retain_graph=True) \
                 for every backward but the last through one graph",
                self.name
            ))
        })
    }

    /// Frees the rule without running it (a node no gradient reached).
    fn release(&self) {
        self.rule.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Drop for Node {
    // Dropping a long chain of nodes (an RNN unrolled over thousands of
    // steps) recursively would overflow the stack: unlink the chain here,
    // one node at a time.
    fn drop(&mut self) {
        let mut pending: Vec<Arc<Node>> = Vec::new();
        let take = |inputs: &mut Vec<Edge>, pending: &mut Vec<Arc<Node>>| {
            for edge in inputs.drain(..) {
                if let Edge::Op(node) = edge {
                    pending.push(node);
                }
            }
        };
        take(&mut self.inputs, &mut pending);
        while let Some(node) = pending.pop() {
            if let Some(mut node) = Arc::into_inner(node) {
                take(&mut node.inputs, &mut pending);
            }
        }
    }
}

/// Removes a hook registered with
/// [`Tensor::register_post_accumulate_grad_hook`]. Dropping the handle
/// keeps the hook (as PyTorch's `RemovableHandle` does).
pub struct HookHandle {
    tensor: Tensor,
    id: u64,
}

impl HookHandle {
    /// Unregisters the hook; later backward passes no longer call it.
    pub fn remove(self) {
        self.tensor.remove_grad_hook(self.id);
    }
}

type Callback = Box<dyn FnOnce() -> Result<()>>;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    // The callbacks queued by hooks during the backward pass running on this
    // thread; `None` outside a backward pass.
    static CALLBACKS: RefCell<Option<Vec<Callback>>> = const { RefCell::new(None) };
}

/// True unless inside a [`no_grad`] scope on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording anything on the tape (evaluation, optimizer updates).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = NoGradGuard::new();
    f()
}

/// Disables gradient recording on this thread until dropped.
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    /// Starts a no-grad scope.
    pub fn new() -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Queues `f` to run when the backward pass running on this thread has
/// finished storing every gradient (after its last hook), in the order
/// queued. For hooks that start work per gradient and must finish it before
/// the optimizer step (PyTorch's `Variable._execution_engine.queue_callback`).
/// An error outside a backward pass; an error from `f` is returned by
/// `backward`. Callbacks do not run when the pass itself fails.
pub fn queue_callback(f: impl FnOnce() -> Result<()> + 'static) -> Result<()> {
    CALLBACKS.with(|c| match c.borrow_mut().as_mut() {
        Some(queue) => {
            queue.push(Box::new(f));
            Ok(())
        }
        None => Err(Error::Autograd(
            "queue_callback() outside a backward pass: call it from a gradient hook".into(),
        )),
    })
}

/// Records `output` as the result of an op on `inputs` whose gradient rule
/// is `backward` (PyTorch's `torch.autograd.Function`): for ops written
/// outside lam-core, such as a sum across processes. `output` is computed by
/// the caller (under [`no_grad`] or from detached inputs); the returned
/// tensor shares its data and, when gradients are enabled and an input
/// requires grad, carries the rule. `backward` maps the gradient of the
/// output to one optional gradient per input, each of that input's shape.
pub fn custom_op(
    name: &'static str,
    output: &Tensor,
    inputs: &[&Tensor],
    backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Result<Tensor> {
    let Some(first) = inputs.first() else {
        return Err(Error::invalid(name, "a custom op needs at least one input"));
    };
    for t in inputs.iter().chain([&output]) {
        first.device().check_same(&t.device(), name)?;
    }
    let count = inputs.len();
    let checked = move |g: &Tensor| -> Result<Vec<Option<Tensor>>> {
        let grads = backward(g)?;
        if grads.len() != count {
            return Err(Error::Autograd(format!(
                "gradient rule of {name} returned {} gradients for {count} inputs",
                grads.len()
            )));
        }
        Ok(grads)
    };
    Ok(Tensor::from_op(
        name,
        output.storage(),
        output.layout().clone(),
        inputs,
        checked,
    ))
}

impl Tensor {
    /// Backpropagates from this scalar, adding `d self / d leaf` to the
    /// `.grad()` of every leaf that requires grad. Frees the graph's saved
    /// values as it goes, so a second backward through the same graph is
    /// an error (PyTorch's default); see [`Tensor::backward_retain_graph`].
    pub fn backward(&self) -> Result<()> {
        self.backward_from_one(false)
    }

    /// [`Tensor::backward`] that keeps the graph, so another backward can
    /// run through it (PyTorch's `backward(retain_graph=True)`).
    pub fn backward_retain_graph(&self) -> Result<()> {
        self.backward_from_one(true)
    }

    /// Backpropagates with an explicit output gradient of this tensor's
    /// shape, freeing the graph as [`Tensor::backward`] does.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        self.run_backward(grad, false)
    }

    /// [`Tensor::backward_with`] that keeps the graph for another backward.
    pub fn backward_with_retain_graph(&self, grad: &Tensor) -> Result<()> {
        self.run_backward(grad, true)
    }

    fn backward_from_one(&self, retain_graph: bool) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a scalar (one element), found shape {:?}",
                self.dims()
            )));
        }
        if !self.requires_grad() {
            return Err(Error::Autograd(
                "backward() on a tensor that does not require grad: no input of the computation \
                 requires grad, or it was computed under no_grad"
                    .into(),
            ));
        }
        let seed = Tensor::ones_like(self)?;
        self.run_backward(&seed, retain_graph)
    }

    fn run_backward(&self, grad: &Tensor, retain_graph: bool) -> Result<()> {
        if grad.dims() != self.dims() {
            return Err(Error::shape(
                "backward",
                format!("{:?}", self.dims()),
                grad.dims(),
            ));
        }
        let _guard = NoGradGuard::new();
        // Gradient rules run in the dtypes their forward ops saved, not in
        // an autocast region the caller may still be in (as PyTorch's).
        let _amp = crate::amp::suspended();
        // A hook may itself run a backward pass: keep the outer pass's queue.
        let outer = CALLBACKS.with(|c| c.replace(Some(Vec::new())));
        let walked = self.walk(grad, retain_graph);
        let queued = CALLBACKS.with(|c| c.replace(outer)).unwrap_or_default();
        walked?;
        queued.into_iter().try_for_each(|f| f())
    }

    /// Registers `hook`, called with this leaf right after each backward pass
    /// has stored its gradient in `.grad()` (all of that pass's
    /// contributions summed). Hooks run in the order registered; an error
    /// from one ends the pass with that error. A tensor that is not a leaf
    /// requiring grad never gets a gradient stored, so its hooks never run.
    pub fn register_post_accumulate_grad_hook(
        &self,
        hook: impl Fn(&Tensor) -> Result<()> + Send + Sync + 'static,
    ) -> HookHandle {
        HookHandle {
            tensor: self.clone(),
            id: self.add_grad_hook(Arc::new(hook)),
        }
    }

    /// The reverse topological walk: each node's rule runs once every
    /// consumer of its output has run, and is then dropped with what it
    /// saved (unless `retain_graph`); a leaf's summed gradient is stored
    /// (and its hooks called) as soon as its last consumer has run.
    fn walk(&self, grad: &Tensor, retain_graph: bool) -> Result<()> {
        let mut leaves = untrained::armed().then(Vec::new);
        let Some(root) = self.node() else {
            // A leaf: its gradient is the seed.
            self.store_grad(&grad.detach(), &mut leaves)?;
            return finish(leaves);
        };
        let (mut order, mut waiting) = topological_order(root);
        let mut grads: HashMap<u64, Tensor> = HashMap::new();
        let mut owned: HashMap<u64, Owned> = HashMap::new();
        grads.insert(root.id, grad.detach());
        // Popping drops the walk's handle on each node once it has run.
        while let Some(node) = order.pop() {
            owned.remove(&node.id);
            let input_grads = match grads.remove(&node.id) {
                Some(g) => (node.rule(retain_graph)?)(&g)?,
                None => Vec::new(),
            };
            if !retain_graph {
                node.release();
            }
            let mut input_grads = input_grads.into_iter();
            for input in &node.inputs {
                let ig = input_grads.next().flatten();
                let key = match input {
                    Edge::Skip => continue,
                    Edge::Leaf(t) => t.id(),
                    Edge::Op(n) => n.id,
                };
                if let Some(ig) = ig {
                    let expected = match node.piece {
                        Some(_) => node.shape.as_slice(),
                        None => input.dims(),
                    };
                    if ig.dims() != expected {
                        return Err(Error::Autograd(format!(
                            "gradient rule of {} produced shape {:?} for an input of shape {:?}",
                            node.name,
                            ig.dims(),
                            expected
                        )));
                    }
                    accumulate(&mut grads, &mut owned, key, input.dims(), ig, node.piece)?;
                }
                // Every consumer of a leaf has run: its gradient is final.
                if let Edge::Leaf(leaf) = input {
                    if let Some(left) = waiting.get_mut(&key) {
                        *left -= 1;
                        if *left == 0 {
                            owned.remove(&key);
                            if let Some(g) = grads.remove(&key) {
                                leaf.store_grad(&g, &mut leaves)?;
                            }
                        }
                    }
                }
            }
        }
        finish(leaves)
    }

    /// Adds `g` to this leaf's `.grad()`, notes it for the untrained check
    /// (when armed), then calls its hooks.
    fn store_grad(&self, g: &Tensor, leaves: &mut Option<Vec<Tensor>>) -> Result<()> {
        self.accumulate_grad(g)?;
        if let Some(leaves) = leaves {
            leaves.push(self.clone());
        }
        for hook in self.grad_hooks() {
            hook(self)?;
        }
        Ok(())
    }
}

/// Runs the untrained check on the leaves a pass stored, when armed.
fn finish(leaves: Option<Vec<Tensor>>) -> Result<()> {
    match leaves {
        Some(leaves) => untrained::check(&leaves),
        None => Ok(()),
    }
}

/// The nodes reachable from `root`, each after the nodes of its inputs, and
/// for each leaf that requires grad the number of edges that read it (how
/// many input slots of reachable nodes it fills).
fn topological_order(root: &Arc<Node>) -> (Vec<Arc<Node>>, HashMap<u64, usize>) {
    let mut order = Vec::new();
    let mut leaf_reads: HashMap<u64, usize> = HashMap::new();
    let mut visited = std::collections::HashSet::new();
    // Iterative DFS: deep graphs (long RNN unrolls) must not overflow the stack.
    let mut stack: Vec<(Arc<Node>, bool)> = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !visited.insert(node.id) {
            continue;
        }
        stack.push((node.clone(), true));
        for input in &node.inputs {
            match input {
                Edge::Skip => {}
                Edge::Leaf(t) => *leaf_reads.entry(t.id()).or_default() += 1,
                Edge::Op(n) => {
                    if !visited.contains(&n.id) {
                        stack.push((n.clone(), false));
                    }
                }
            }
        }
    }
    (order, leaf_reads)
}
