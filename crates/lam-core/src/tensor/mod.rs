//! [`Tensor`]: an n-d array of `f32` (or `i32` labels) on a [`Device`].
//!
//! A tensor is a cheap handle (`Arc`) to a storage buffer plus a [`Layout`];
//! views share the buffer. Ops live in the submodules by family, each with
//! its gradient rule beside it:
//! `creation` (constructors, random), `view` (reshape, permute, cat, ...),
//! `elementwise` (unary, broadcasting binary, where), `reduce`, `matmul`,
//! `index` (index_select, gather, scatter_add), `softmax` (softmax,
//! log-softmax, logsumexp, cross-entropy) and `display`; `dims` holds the
//! shape-check vocabulary that ops and layers share (`dims2`..`dims4`,
//! `batched`, `expect_shape`, `check_operands`).

mod creation;
mod dims;
mod display;
mod elementwise;
mod index;
mod matmul;
mod reduce;
mod softmax;
mod view;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) use dims::check_operands;

use crate::autograd::{is_grad_enabled, Node};
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
    node: Option<Node>,
    grad: Mutex<Option<Tensor>>,
}

struct Data {
    storage: Storage,
    device: Device,
    // Known bounds of an I32 tensor's values (from host data or the op that
    // made it), so index ops can reject out-of-range indices without reading
    // a GPU buffer back. It lives with the storage so `set_data` replaces both.
    int_range: Option<(i32, i32)>,
}

static NEXT_TENSOR_ID: AtomicU64 = AtomicU64::new(1);

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
        node: Option<Node>,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_TENSOR_ID.fetch_add(1, Ordering::Relaxed),
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
        }))
    }

    /// The same tensor handle with known integer bounds attached.
    pub(crate) fn with_int_range(self, range: Option<(i32, i32)>) -> Tensor {
        self.0
            .data
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .int_range = range;
        self
    }

    pub(crate) fn int_range(&self) -> Option<(i32, i32)> {
        self.data().int_range
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
        let device = inputs[0].device();
        let dtype = storage.dtype();
        let track =
            dtype == DType::F32 && is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
        let node = track.then(|| Node {
            name,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            backward: Box::new(backward),
        });
        // Views, joins and selections of I32 tensors hold only their inputs'
        // values, so the inputs' bounds together bound the result — known
        // only when every input's bounds are.
        let range = if dtype == DType::I32 {
            union_of_ranges(inputs)
        } else {
            None
        };
        Tensor::build(storage, layout, dtype, device, track, node).with_int_range(range)
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

    pub(crate) fn node(&self) -> Option<&Node> {
        self.0.node.as_ref()
    }

    /// True for leaves marked with `requires_grad` and results computed from them.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
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
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        let total = match slot.take() {
            Some(prev) => prev.add(g)?,
            None => g.contiguous()?.detach(),
        };
        *slot = Some(total);
        Ok(())
    }

    /// Replaces this tensor's data with `value`'s, keeping its identity,
    /// gradient slot and `requires_grad` (PyTorch's `p.data = value`). Used by
    /// optimizers and checkpoint loading. `value` must have the same shape,
    /// dtype and device.
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
        let range = value.int_range();
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
        let range = self.int_range();
        *self.0.data.write().unwrap_or_else(|e| e.into_inner()) = Data {
            storage: fresh,
            device: device.clone(),
            int_range: range,
        };
        self.zero_grad();
        Ok(())
    }

    /// The elements as a row-major `Vec<f32>` (`I32` tensors are converted).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let s = self.storage();
        match self.dtype() {
            DType::F32 => self.backend().read_f32((&s, self.layout())),
            DType::I32 => Ok(self
                .backend()
                .read_i32((&s, self.layout()))?
                .into_iter()
                .map(|v| v as f32)
                .collect()),
        }
    }

    /// The elements of an `I32` tensor as a row-major `Vec<i32>`.
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        let s = self.storage();
        match self.dtype() {
            DType::I32 => self.backend().read_i32((&s, self.layout())),
            DType::F32 => Err(Error::DTypeMismatch {
                op: "to_vec_i32",
                expected: DType::I32,
                found: DType::F32,
            }),
        }
    }

    /// A 2-d tensor as rows.
    pub fn to_vec2(&self) -> Result<Vec<Vec<f32>>> {
        let (_, cols) = self.dims2("to_vec2", "[rows, cols]")?;
        Ok(self
            .to_vec()?
            .chunks(cols.max(1))
            .map(|c| c.to_vec())
            .collect())
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                "a tensor with one element",
                self.dims(),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// This tensor's data on `device` (a copy through host memory when the
    /// devices differ; gradients do not flow across the move).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if *device == self.device() {
            return Ok(self.clone());
        }
        match self.dtype() {
            DType::F32 => Tensor::from_vec(self.to_vec()?, self.dims(), device),
            DType::I32 => Tensor::from_vec_i32(self.to_vec_i32()?, self.dims(), device),
        }
    }

    /// Contiguous storage holding exactly this view's elements.
    pub(crate) fn copy_to_new(&self) -> Result<Storage> {
        let out = self.backend().zeros(self.numel(), self.dtype())?;
        let s = self.storage();
        self.backend().copy(
            (&s, self.layout()),
            (&out, &Layout::contiguous(self.dims())),
        )?;
        Ok(out)
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
