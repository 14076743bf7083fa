//! Automatic mixed precision, as `torch.amp`: [`autocast`] runs matrix
//! products in half precision while the model's weights stay `F32`, and
//! [`GradScaler`] scales the loss so that small `F16` gradients do not
//! underflow, skipping the steps whose gradients overflowed.
//!
//! Under an autocast guard for a device, every [`crate::Tensor::matmul`] on
//! it — and so `Linear` and attention's two products — casts its float
//! operands to `F16` (a differentiable cast: an `F32` weight gets an `F32`
//! gradient) and returns an `F16` product accumulated in `f32`; a `Linear`
//! adds its bias in `f32` and returns `F16`; a convolution rounds its image
//! and weight to `F16` and returns `F16` too (computed by the `f32` kernels
//! from the halves, rounded once). Softmax, losses, layer norm and
//! reductions compute in `F32` and return it, as on PyTorch's autocast
//! "float32" list. Elementwise ops follow their operands, as PyTorch's do:
//! all `F16` gives `F16` (computed in `f32`, rounded once), so activations
//! stay half precision, except for the few on that list (`exp`, `log`,
//! reciprocals, powers, softplus) and comparisons; a mix of `F16` and `F32`
//! gives `F32`. Batch norm and attention on halves return halves. Every op
//! that returns halves keeps halves for its gradient, so a mixed-precision
//! step holds its activations in half the bytes.

//! Autocast takes effect where half precision is native to the device
//! ([`crate::Backend::native_f16`]: a GPU whose adapter has WGSL's
//! `shader-f16`). Elsewhere — the CPU, whose products run through `f32`
//! GEMM kernels and would only pay for the conversions, and adapters
//! without the feature — [`autocast`] is a no-op and the same program runs
//! in `F32`; [`Autocast::enabled`] says which. (PyTorch's CPU autocast
//! uses bfloat16 instead; lam has no bf16.) [`autocast_forced`] enables it
//! on any device, for checking mixed-precision numerics on the CPU.
//!
//! The state is per thread, like PyTorch's: a guard covers the code its
//! thread runs until it drops, and guards nest.

mod scaler;

use std::cell::RefCell;

pub use scaler::{GradScaler, GradScalerState};

use crate::{DType, Device, Error, Result};

/// Enables autocast on `device` for this thread until the guard drops, when
/// the device computes half precision natively; otherwise the guard does
/// nothing ([`Autocast::enabled`] is false). `dtype` is `F16`, or `F32` to
/// turn autocast off inside an enclosing region; `I32` is an error.
///
/// ```text
/// let guard = amp::autocast(&dev, DType::F16)?;
/// let y = x.matmul(&w)?; // F16 if guard.enabled(), else F32
/// drop(guard);           // products are F32 again
/// ```
pub fn autocast(device: &Device, dtype: DType) -> Result<Autocast> {
    check_dtype(dtype)?;
    let on = dtype == DType::F32 || device.backend().native_f16();
    Ok(Autocast::install(device, dtype, on))
}

/// [`autocast`] on any device, whether or not half precision is native to
/// it (on the CPU, `F16` products are computed through `f32` copies): for
/// testing mixed-precision numerics where no such GPU is at hand.
pub fn autocast_forced(device: &Device, dtype: DType) -> Result<Autocast> {
    check_dtype(dtype)?;
    Ok(Autocast::install(device, dtype, true))
}

/// Runs `f` under [`autocast`] on `device` (a closure form of the guard).
pub fn with_autocast<R>(device: &Device, dtype: DType, f: impl FnOnce() -> R) -> Result<R> {
    let _guard = autocast(device, dtype)?;
    Ok(f())
}

/// The dtype matrix products on `device` are cast to on this thread now
/// (`None` when no autocast region is active for it or the region is `F32`).
pub fn autocast_dtype(device: &Device) -> Option<DType> {
    STATE.with(|s| match &*s.borrow() {
        Some((d, dtype)) if d == device && *dtype != DType::F32 => Some(*dtype),
        _ => None,
    })
}

/// Turns autocast off on this thread until the guard drops (what
/// `backward()` runs its gradient rules under).
pub(crate) fn suspended() -> Autocast {
    let previous = STATE.with(|s| s.borrow_mut().take());
    Autocast {
        previous: Some(previous),
        enabled: false,
        _thread: std::marker::PhantomData,
    }
}

/// An active autocast region; the previous state comes back when it drops.
/// Not `Send`: the region belongs to the thread that opened it.
#[must_use = "autocast ends when the guard drops"]
pub struct Autocast {
    previous: Option<Option<(Device, DType)>>,
    enabled: bool,
    _thread: std::marker::PhantomData<*const ()>,
}

impl Autocast {
    /// True when this guard changed how products compute (false for a
    /// device without native half precision).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn install(device: &Device, dtype: DType, on: bool) -> Autocast {
        let previous = on.then(|| STATE.with(|s| s.borrow_mut().replace((device.clone(), dtype))));
        Autocast {
            previous,
            enabled: on && dtype != DType::F32,
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            STATE.with(|s| *s.borrow_mut() = previous);
        }
    }
}

thread_local! {
    /// The device and dtype of the innermost active region on this thread.
    static STATE: RefCell<Option<(Device, DType)>> = const { RefCell::new(None) };
}

fn check_dtype(dtype: DType) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::invalid(
            "autocast",
            format!("a float dtype (float16, or float32 to turn it off), found {dtype}"),
        ));
    }
    Ok(())
}
