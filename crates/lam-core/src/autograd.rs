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
//! Closures capture *detached* copies of any tensor they need (including the
//! op's own output), so the graph holds no reference cycles and is freed when
//! the last tensor of a step drops.
//!
//! `untrained`: the first `backward` after an optimizer is built checks that
//! every leaf given a gradient is in some optimizer ([`UntrainedCheck`]).

mod untrained;

pub(crate) use untrained::register_optimized;
pub use untrained::{set_untrained_check, UntrainedCheck};

use std::cell::Cell;
use std::collections::HashMap;

use crate::{Error, Result, Tensor};

/// Maps the output gradient to one optional gradient per input.
pub type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// One recorded op: its name (for error messages), inputs and gradient rule.
pub struct Node {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    pub(crate) backward: BackwardFn,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
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
        let order = topological_order(self);
        let mut grads: HashMap<u64, Tensor> = HashMap::new();
        grads.insert(self.id(), grad.detach());
        let mut leaves = untrained::armed().then(Vec::new);
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id()) else {
                continue;
            };
            match t.node() {
                None => {
                    t.accumulate_grad(&g)?;
                    if let Some(leaves) = &mut leaves {
                        leaves.push(t.clone());
                    }
                }
                Some(node) => {
                    let input_grads = (node.backward)(&g)?;
                    for (input, ig) in node.inputs.iter().zip(input_grads) {
                        let Some(ig) = ig else { continue };
                        if !input.requires_grad() {
                            continue;
                        }
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
                }
            }
        }
        match leaves {
            Some(leaves) => untrained::check(&leaves),
            None => Ok(()),
        }
    }
}

/// Tensors reachable from `root` through nodes, each after all its inputs.
fn topological_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
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
            for input in &node.inputs {
                if input.requires_grad() && !visited.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}
