//! [`Tensor`]: an n-d array of `f32` (or `i32` labels) on a [`Device`].
//!
//! A tensor is a cheap handle (`Arc`) to a storage buffer plus a [`Layout`];
//! views share the buffer. Ops live in the submodules by family, each with
//! its gradient rule beside it, and each family's file is named as its
//! backend files are (ARCHITECTURE.md has the table):
//! `copy` (contiguous, cat, stack, casts, readbacks), `elementwise` (unary,
//! broadcasting binary, where), `reduce`, `matmul`, `index` (index_select,
//! gather, scatter_add), `random`, `softmax` (softmax, log-softmax,
//! logsumexp) and `cross_entropy`; `saved` has what elementwise ops keep
//! for their gradient rules. Beside them: `creation` (constructors
//! from host data and fills), `view` (reshape, permute, narrow, expand, ...:
//! new layouts, no data moved), `display`, and `dims`: the shape-check
//! vocabulary that ops and layers share (`dims2`..`dims4`, `batched`,
//! `rank_in`, `expect_shape`, `check_operands`). `ops` has the arithmetic
//! operators (`&a + &b`, `&x * 2.0`, `-&x`), which only forward to the ops,
//! and [`Dims`], the one-or-several dims argument of reductions.

mod attention;
mod copy;
mod creation;
mod cross_entropy;
mod dims;
mod display;
mod elementwise;
mod half;
mod index;
pub(crate) mod matmul;
mod ops;
mod random;
mod reduce;
mod saved;
mod softmax;
mod view;

pub(crate) use attention::attention;
pub use attention::{SdpaMask, SdpaOptions};
pub use ops::Dims;
pub use reduce::Correction;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) use dims::check_operands;

use crate::autograd::{is_grad_enabled, GradHook, Node};
use crate::backend::{Backend, Storage};
use crate::{DType, Device, Error, Layout, Result};

/// An n-d array on a device. Cloning is cheap and shares the data.
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

struct Inner {
    id: u64,
    // A lock so optimizers and `to_device` can swap in new data (even on
    // another device) without changing the tensor's identity, as PyTorch's
    // `p.data = ...` does for parameters.
    data: RwLock<Data>,
    layout: Layout,
    dtype: DType,
    requires_grad: bool,
    node: Option<Arc<Node>>,
    grad: Mutex<Option<Tensor>>,
    // Called after backward stores this leaf's gradient, with their ids
    // (see `autograd`'s module docs).
    grad_hooks: Mutex<Vec<(u64, GradHook)>>,
}

struct Data {
    storage: Storage,
    device: Device,
    // Known bounds of an I32 tensor's values (from host data or the op that
    // made it), so index ops can reject out-of-range indices without reading
    // a GPU buffer back. It lives with the storage so `set_data` replaces both.
    int_range: Option<IntRange>,
}

/// Bounds of an I32 tensor's values: every value lies in `lo..=hi`, and when
/// `attained`, some value equals `lo` and some equals `hi` (bounds read from
/// host data, kept by ops that keep every element). Only attained bounds
/// prove that an index is out of range; others (a slice keeps its whole
/// tensor's bounds, `argmax` declares a range no value need reach) can only
/// prove that every index is in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IntRange {
    lo: i32,
    hi: i32,
    attained: bool,
}

static NEXT_TENSOR_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_HOOK_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a tensor or a tape node (one counter, so they never meet).
fn next_tensor_id() -> u64 {
    NEXT_TENSOR_ID.fetch_add(1, Ordering::Relaxed)
}

impl Tensor {
    /// Wraps a backend buffer as a leaf tensor (for backends and custom ops).
    pub fn from_storage(storage: Storage, layout: Layout, device: &Device) -> Tensor {
        let dtype = storage.dtype();
        Tensor::build(storage, layout, dtype, device.clone(), false, None)
    }

    fn build(
        storage: Storage,
        layout: Layout,
        dtype: DType,
        device: Device,
        requires_grad: bool,
        node: Option<Arc<Node>>,
    ) -> Tensor {
        let id = next_tensor_id();
        Tensor::build_with_id(id, storage, layout, dtype, device, requires_grad, node)
    }

    fn build_with_id(
        id: u64,
        storage: Storage,
        layout: Layout,
        dtype: DType,
        device: Device,
        requires_grad: bool,
        node: Option<Arc<Node>>,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id,
            data: RwLock::new(Data {
                storage,
                device,
                int_range: None,
            }),
            layout,
            dtype,
            requires_grad,
            node,
            grad: Mutex::new(None),
            grad_hooks: Mutex::new(Vec::new()),
        }))
    }

    /// The same tensor handle with bounds its values lie within attached.
    pub(crate) fn with_int_range(self, range: Option<(i32, i32)>) -> Tensor {
        self.set_int_range(range, false)
    }

    /// The same tensor handle with the minimum and maximum of its values
    /// attached (bounds it attains: see [`IntRange`]).
    pub(crate) fn with_attained_range(self, range: Option<(i32, i32)>) -> Tensor {
        self.set_int_range(range, true)
    }

    /// Marks this result's bounds attained when every input's are: for ops
    /// whose result holds every element of its inputs (reshapes, permutes,
    /// broadcasts, copies, joins).
    pub(crate) fn keeping_attained_range(self, inputs: &[&Tensor]) -> Tensor {
        if inputs.iter().all(|t| t.range_attained()) {
            let range = self.int_range();
            self.set_int_range(range, true)
        } else {
            self
        }
    }

    fn set_int_range(self, range: Option<(i32, i32)>, attained: bool) -> Tensor {
        self.0
            .data
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .int_range = range.map(|(lo, hi)| IntRange { lo, hi, attained });
        self
    }

    pub(crate) fn int_range(&self) -> Option<(i32, i32)> {
        self.data().int_range.map(|r| (r.lo, r.hi))
    }

    /// True when this tensor's known bounds are values it holds.
    pub(crate) fn range_attained(&self) -> bool {
        self.data().int_range.is_some_and(|r| r.attained)
    }

    /// The result of an op: records `backward` on the tape when gradients
    /// are enabled and any of `inputs` requires grad.
    pub(crate) fn from_op(
        name: &'static str,
        storage: Storage,
        layout: Layout,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        Tensor::record(name, storage, layout, inputs, Arc::new(backward), None)
    }

    /// A view of part of `input` (`narrow`, `slice_step`): its gradient is
    /// the view's own, which the backward walk places at `piece` in the
    /// input's (see [`crate::autograd::Piece`]).
    pub(crate) fn from_piece(
        name: &'static str,
        layout: Layout,
        input: &Tensor,
        piece: crate::autograd::Piece,
    ) -> Tensor {
        let rule = Arc::new(|g: &Tensor| Ok(vec![Some(g.clone())]));
        Tensor::record(name, input.storage(), layout, &[input], rule, Some(piece))
    }

    /// [`Tensor::from_op`] and [`Tensor::from_piece`]: the result, with a
    /// node holding `rule` (and `piece`) when it is to be differentiated.
    fn record(
        name: &'static str,
        storage: Storage,
        layout: Layout,
        inputs: &[&Tensor],
        rule: crate::autograd::BackwardFn,
        piece: Option<crate::autograd::Piece>,
    ) -> Tensor {
        let device = inputs[0].device();
        let dtype = storage.dtype();
        let track =
            dtype.is_float() && is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
        let id = next_tensor_id();
        let node = track.then(|| Arc::new(Node::new(id, name, &layout.shape, inputs, rule, piece)));
        // Views, joins and selections of I32 tensors hold only their inputs'
        // values, so the inputs' bounds together bound the result — known
        // only when every input's bounds are.
        let range = if dtype == DType::I32 {
            union_of_ranges(inputs)
        } else {
            None
        };
        Tensor::build_with_id(id, storage, layout, dtype, device, track, node).with_int_range(range)
    }

    /// A result that is never differentiated (integer outputs, masks).
    pub(crate) fn constant(storage: Storage, layout: Layout, device: &Device) -> Tensor {
        Tensor::from_storage(storage, layout, device)
    }

    /// A process-unique id (stable for the tensor's life).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The shape.
    pub fn dims(&self) -> &[usize] {
        &self.0.layout.shape
    }

    /// The shape as an owned vector.
    pub fn shape(&self) -> Vec<usize> {
        self.0.layout.shape.clone()
    }

    /// Size of dimension `dim` (negative counts from the end).
    pub fn dim(&self, dim: isize) -> Result<usize> {
        let d = crate::layout::normalize_axis("dim", dim, self.rank())?;
        Ok(self.dims()[d])
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The device holding the data.
    pub fn device(&self) -> Device {
        self.data().device.clone()
    }

    /// Shape, strides and offset into the storage.
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// The backing buffer (shared with views of this tensor).
    pub fn storage(&self) -> Storage {
        self.data().storage.clone()
    }

    fn data(&self) -> std::sync::RwLockReadGuard<'_, Data> {
        self.0.data.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn backend(&self) -> Arc<dyn Backend> {
        self.data().device.backend_arc()
    }

    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        self.0.node.as_ref()
    }

    /// True for leaves marked with `requires_grad` and results computed from them.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// The name of the op that made this tensor, when it is on the tape.
    pub(crate) fn op_name(&self) -> Option<&'static str> {
        self.0.node.as_ref().map(|n| n.name)
    }

    /// True when this tensor was not produced by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }

    /// A leaf sharing this tensor's data that requires grad (`x.requires_grad_()`).
    pub fn requires_grad_(&self) -> Result<Tensor> {
        if self.dtype() != DType::F32 {
            return Err(Error::DTypeMismatch {
                op: "requires_grad_",
                expected: DType::F32,
                found: self.dtype(),
            });
        }
        Ok(Tensor::build(
            self.storage(),
            self.layout().clone(),
            self.dtype(),
            self.device(),
            true,
            None,
        ))
    }

    /// A leaf sharing this tensor's data, cut off from the tape.
    pub fn detach(&self) -> Tensor {
        Tensor::build(
            self.storage(),
            self.layout().clone(),
            self.dtype(),
            self.device(),
            false,
            None,
        )
    }

    /// The gradient accumulated by `backward()`, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Replaces the accumulated gradient (gradient clipping, custom updates).
    pub fn set_grad(&self, grad: Option<Tensor>) -> Result<()> {
        if let Some(g) = &grad {
            self.check_same_shape(g, "set_grad")?;
        }
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = grad;
        Ok(())
    }

    pub(crate) fn accumulate_grad(&self, g: &Tensor) -> Result<()> {
        // A leaf's gradient has the leaf's dtype (an F32 weight used through
        // an F16 cast gets F32), whatever dtype the rules produced it in.
        let cast;
        let g = if g.dtype() == self.dtype() {
            g
        } else {
            cast = g.to_dtype(self.dtype())?;
            &cast
        };
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        let total = match slot.take() {
            Some(prev) => prev.add(g)?,
            None => g.contiguous()?.detach(),
        };
        *slot = Some(total);
        Ok(())
    }

    /// Adds a post-accumulate-grad hook; returns its id.
    pub(crate) fn add_grad_hook(&self, hook: GradHook) -> u64 {
        let id = NEXT_HOOK_ID.fetch_add(1, Ordering::Relaxed);
        self.hooks_mut().push((id, hook));
        id
    }

    pub(crate) fn remove_grad_hook(&self, id: u64) {
        self.hooks_mut().retain(|(i, _)| *i != id);
    }

    /// The hooks to call, copied out so a hook may register or remove hooks.
    pub(crate) fn grad_hooks(&self) -> Vec<GradHook> {
        self.hooks_mut().iter().map(|(_, h)| h.clone()).collect()
    }

    fn hooks_mut(&self) -> std::sync::MutexGuard<'_, Vec<(u64, GradHook)>> {
        self.0.grad_hooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces this tensor's data with `value`'s, keeping its identity,
    /// gradient slot and `requires_grad` (PyTorch's `p.data = value`). Used by
    /// optimizers and checkpoint loading. `value` must have the same shape,
    /// dtype and device. As in PyTorch, a dense `value`'s buffer is shared,
    /// not copied: the fused optimizer steps (Adam, SGD) update parameters
    /// in place, so a parameter set from another model's live tensor moves
    /// with it. Set it from a copy to keep the two apart.
    pub fn set_data(&self, value: &Tensor) -> Result<()> {
        self.check_same_shape(value, "set_data")?;
        self.device().check_same(&value.device(), "set_data")?;
        if value.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "set_data",
                expected: self.dtype(),
                found: value.dtype(),
            });
        }
        if !self.layout().is_contiguous() || self.layout().offset != 0 {
            return Err(Error::invalid(
                "set_data",
                "the target must be a contiguous tensor",
            ));
        }
        let value = value.contiguous()?;
        let storage = if value.layout().offset == 0 && value.storage().len() == value.numel() {
            value.storage()
        } else {
            value.copy_to_new()?
        };
        let range = value.data().int_range;
        let mut data = self.0.data.write().unwrap_or_else(|e| e.into_inner());
        data.storage = storage;
        data.int_range = range;
        Ok(())
    }

    /// Moves this tensor's data to `device` in place, keeping its identity
    /// (PyTorch's `param.data = param.data.to(device)`): how `Module::to_device`
    /// moves parameters. The accumulated gradient is cleared.
    pub fn move_to_(&self, device: &Device) -> Result<()> {
        if *device == self.device() {
            return Ok(());
        }
        let moved = self.detach().to_device(device)?.contiguous()?;
        let fresh = moved.copy_to_new()?;
        let range = self.data().int_range;
        *self.0.data.write().unwrap_or_else(|e| e.into_inner()) = Data {
            storage: fresh,
            device: device.clone(),
            int_range: range,
        };
        self.zero_grad();
        Ok(())
    }

    pub(crate) fn check_same_shape(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if self.dims() != other.dims() {
            return Err(Error::shape(op, format!("{:?}", self.dims()), other.dims()));
        }
        Ok(())
    }

    pub(crate) fn check_f32(&self, op: &'static str) -> Result<()> {
        if self.dtype() != DType::F32 {
            return Err(Error::DTypeMismatch {
                op,
                expected: DType::F32,
                found: self.dtype(),
            });
        }
        Ok(())
    }

    /// An error for an `F16` tensor: ops that move elements of `F32` or
    /// `I32` tensors (index ops) do not take half precision.
    pub(crate) fn check_not_f16(&self, op: &'static str) -> Result<()> {
        if self.dtype() == DType::F16 {
            return Err(Error::DTypeMismatch {
                op,
                expected: DType::F32,
                found: DType::F16,
            });
        }
        Ok(())
    }

    /// An error unless this is a float tensor (`F32` or `F16`).
    pub(crate) fn check_float(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_float() {
            return Err(Error::DTypeMismatch {
                op,
                expected: DType::F32,
                found: self.dtype(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_i32(&self, op: &'static str) -> Result<()> {
        if self.dtype() != DType::I32 {
            return Err(Error::DTypeMismatch {
                op,
                expected: DType::I32,
                found: self.dtype(),
            });
        }
        Ok(())
    }
}

/// The smallest range holding every input's known bounds; `None` unless all
/// inputs are `I32` with known bounds.
fn union_of_ranges(inputs: &[&Tensor]) -> Option<(i32, i32)> {
    inputs.iter().try_fold(None, |acc: Option<(i32, i32)>, t| {
        if t.dtype() != DType::I32 {
            return None;
        }
        let (lo, hi) = t.int_range()?;
        Some(Some(match acc {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        }))
    })?
}
