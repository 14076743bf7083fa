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
//! Closures capture *detached* copies of any tensor they need (including the
//! op's own output), so the graph holds no reference cycles and is freed when
//! the last tensor of a step drops.
//!
//! `untrained`: the first `backward` after an optimizer is built checks that
//! every leaf given a gradient is in some optimizer ([`UntrainedCheck`]).

mod untrained;

pub(crate) use untrained::register_optimized;
pub use untrained::{set_untrained_check, UntrainedCheck};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use crate::{Error, Result, Tensor};

/// Maps the output gradient to one optional gradient per input.
pub type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// A function called with a leaf right after `backward` stored its gradient.
pub type GradHook = Arc<dyn Fn(&Tensor) -> Result<()> + Send + Sync>;

/// One recorded op: its name (for error messages), inputs and gradient rule.
pub struct Node {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    pub(crate) backward: BackwardFn,
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
    /// `.grad()` of every leaf that requires grad.
    pub fn backward(&self) -> Result<()> {
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
        self.backward_with(&seed)
    }

    /// Backpropagates with an explicit output gradient of this tensor's shape.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
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
        let walked = self.walk(grad);
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
    /// consumer of its output has run; a leaf's summed gradient is stored
    /// (and its hooks called) as soon as its last consumer has run.
    fn walk(&self, grad: &Tensor) -> Result<()> {
        let (order, mut waiting) = topological_order(self);
        let mut grads: HashMap<u64, Tensor> = HashMap::new();
        grads.insert(self.id(), grad.detach());
        let mut leaves = untrained::armed().then(Vec::new);
        for t in order.iter().rev() {
            let g = grads.remove(&t.id());
            let Some(node) = t.node() else {
                // Only the root leaf (no consumers) is stored here.
                if let Some(g) = g {
                    t.store_grad(&g, &mut leaves)?;
                }
                continue;
            };
            let input_grads = match g {
                Some(g) => (node.backward)(&g)?,
                None => Vec::new(),
            };
            let mut input_grads = input_grads.into_iter();
            for input in &node.inputs {
                let ig = input_grads.next().flatten();
                if !input.requires_grad() {
                    continue;
                }
                if let Some(ig) = ig {
                    if ig.dims() != input.dims() {
                        return Err(Error::Autograd(format!(
                            "gradient rule of {} produced shape {:?} for an input of shape {:?}",
                            node.name,
                            ig.dims(),
                            input.dims()
                        )));
                    }
                    let total = match grads.remove(&input.id()) {
                        Some(prev) => prev.add(&ig)?,
                        None => ig,
                    };
                    grads.insert(input.id(), total);
                }
                // Every consumer of a leaf has run: its gradient is final.
                if let Some(left) = waiting.get_mut(&input.id()) {
                    *left -= 1;
                    if *left == 0 {
                        if let Some(g) = grads.remove(&input.id()) {
                            input.store_grad(&g, &mut leaves)?;
                        }
                    }
                }
            }
        }
        match leaves {
            Some(leaves) => untrained::check(&leaves),
            None => Ok(()),
        }
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

/// Tensors reachable from `root` through nodes, each after all its inputs,
/// and for each leaf among them the number of edges that read it (how many
/// input slots of reachable nodes it fills).
fn topological_order(root: &Tensor) -> (Vec<Tensor>, HashMap<u64, usize>) {
    let mut order = Vec::new();
    let mut leaf_reads: HashMap<u64, usize> = HashMap::new();
    let mut visited = std::collections::HashSet::new();
    // Iterative DFS: deep graphs (long RNN unrolls) must not overflow the stack.
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = t.node() {
            for input in node.inputs.iter().filter(|i| i.requires_grad()) {
                if input.is_leaf() {
                    *leaf_reads.entry(input.id()).or_default() += 1;
                }
                if !visited.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    (order, leaf_reads)
}
