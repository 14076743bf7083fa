//! [`GpuStorage`]: the buffer behind a lam tensor on a wgpu device.
//!
//! It owns one pooled wgpu buffer (at least 16 bytes, so zero-length tensors
//! are ordinary) and returns it to its device's pool when dropped. It keeps
//! its device alive through an `Arc<Gpu>`, and knows which device it came
//! from, so an op handed another device's buffer fails cleanly.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use lam_core::backend::BackendStorage;
use lam_core::{DType, Error, Result, Storage};

use crate::context::Gpu;

/// A wgpu buffer holding `len` elements of `dtype`.
pub struct GpuStorage {
    buffer: wgpu::Buffer,
    capacity: u64,
    len: usize,
    dtype: DType,
    gpu: Arc<Gpu>,
}

impl GpuStorage {
    /// An uninitialised (pooled) buffer for `len` elements.
    pub(crate) fn alloc(
        gpu: &Arc<Gpu>,
        op: &'static str,
        len: usize,
        dtype: DType,
    ) -> Result<GpuStorage> {
        let bytes = (len as u64).saturating_mul(dtype.size() as u64);
        let (buffer, capacity) = gpu.acquire(op, bytes)?;
        Ok(GpuStorage {
            buffer,
            capacity,
            len,
            dtype,
            gpu: Arc::clone(gpu),
        })
    }

    /// A buffer initialised with `data` (raw 4-byte elements of `dtype`):
    /// a pooled one, written in recording order (see `staging.rs`).
    pub(crate) fn upload(
        gpu: &Arc<Gpu>,
        op: &'static str,
        data: &[u8],
        dtype: DType,
    ) -> Result<GpuStorage> {
        let storage = GpuStorage::alloc(gpu, op, data.len() / dtype.size(), dtype)?;
        gpu.write(op, &storage.buffer, data)?;
        Ok(storage)
    }

    /// The wgpu buffer (bound whole: its capacity is within the binding limit).
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The device the buffer lives on.
    pub(crate) fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Wraps this storage as a lam [`Storage`].
    pub(crate) fn into_storage(self) -> Storage {
        Arc::new(self)
    }

    /// The GPU storage behind `storage`, if it belongs to `gpu`.
    pub(crate) fn of<'a>(
        storage: &'a Storage,
        gpu: &Arc<Gpu>,
        op: &'static str,
    ) -> Result<&'a GpuStorage> {
        let s = storage
            .as_any()
            .downcast_ref::<GpuStorage>()
            .ok_or_else(|| {
                Error::Device(format!(
                    "{op}: a {} buffer from another backend was passed to {}",
                    storage.dtype(),
                    gpu.describe()
                ))
            })?;
        if !Arc::ptr_eq(&s.gpu, gpu) {
            return Err(Error::Device(format!(
                "{op}: a buffer of {} was passed to another device, {}",
                s.gpu.describe(),
                gpu.describe()
            )));
        }
        Ok(s)
    }
}

impl BackendStorage for GpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len(&self) -> usize {
        self.len
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

impl Drop for GpuStorage {
    fn drop(&mut self) {
        self.gpu.release(self.buffer.clone(), self.capacity);
    }
}

impl fmt::Debug for GpuStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuStorage")
            .field("len", &self.len)
            .field("dtype", &self.dtype)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Destroys the device behind `storage`, as a driver reset would, so tests
/// can check that a lost device turns every later call into
/// [`Error::Device`] rather than a panic or a hang. Not for other uses.
#[doc(hidden)]
pub fn simulate_device_loss(storage: &Storage) -> Result<()> {
    let s = storage
        .as_any()
        .downcast_ref::<GpuStorage>()
        .ok_or_else(|| Error::Device("simulate_device_loss: not a GPU buffer".into()))?;
    s.gpu.device.destroy();
    Ok(())
}
