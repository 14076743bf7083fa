//! The gate arithmetic of one LSTM or GRU step and its gradient
//! (lstm.wgsl): one dispatch per call, one thread per (row, hidden unit),
//! inputs read through their `[rows, cols]` views and outputs contiguous.
//!
//! And a whole LSTM layer's loop each way (Backend `fused_lstm_sequence`
//! and its gradient): per step one product by `Wₕₕ` (the matmul kernels,
//! chosen and tuned as any product) and one gate dispatch that writes
//! straight into the sequence's buffers — two dispatches a step, where the
//! step-by-step composition also copied each step's outputs into the
//! stacked sequence and, backwards, added the two gradients reaching `h`.

use std::sync::Arc;

use lam_core::backend::{lstm_sequence_sizes, View};
use lam_core::{DType, Error, Layout, Result, Storage};

use super::copy::{copy, zeros};
use super::matmul::matmul;
use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{
    Kernel, GRU_CELL, GRU_CELL_GRAD, LSTM_CELL, LSTM_CELL_GRAD, LSTM_SEQUENCE_STEP,
    LSTM_SEQUENCE_STEP_GRAD,
};
use crate::params::{to_u32, LstmParams};
use crate::storage::GpuStorage;

/// `hc` (`[2, B, H]`: `h'` then `c'`) and the activated gates `[B, 4H]`
/// from the two projections `[B, 4H]` and `c` `[B, H]`.
pub(crate) fn lstm_cell(
    gpu: &Arc<Gpu>,
    input_gates: View,
    hidden_gates: View,
    c: View,
) -> Result<(Storage, Storage)> {
    let [hc, gates] = step(
        gpu,
        LSTM_CELL,
        &[input_gates, hidden_gates, c],
        &[4, 4, 1],
        2,
        [2, 4],
    )?;
    Ok((hc, gates))
}

/// The gradients of the summed projections `[B, 4H]` and of `c` `[B, H]`
/// from `grad_h`, `grad_c`, the activated gates, `c` and `c'`.
pub(crate) fn lstm_cell_grad(gpu: &Arc<Gpu>, views: [View; 5]) -> Result<(Storage, Storage)> {
    let [d_gates, d_c] = step(gpu, LSTM_CELL_GRAD, &views, &[1, 1, 4, 1, 1], 0, [4, 1])?;
    Ok((d_gates, d_c))
}

/// `h'` `[B, H]` and the activated gates `[B, 3H]` from the two
/// projections `[B, 3H]` and `h` `[B, H]`.
pub(crate) fn gru_cell(
    gpu: &Arc<Gpu>,
    input_gates: View,
    hidden_gates: View,
    h: View,
) -> Result<(Storage, Storage)> {
    let [out, gates] = step(
        gpu,
        GRU_CELL,
        &[input_gates, hidden_gates, h],
        &[3, 3, 1],
        2,
        [1, 3],
    )?;
    Ok((out, gates))
}

/// The gradients of the input projection, the hidden projection (`[B, 3H]`
/// each) and `h` (`[B, H]`) from `grad_h`, the activated gates, the hidden
/// projection and `h`.
pub(crate) fn gru_cell_grad(
    gpu: &Arc<Gpu>,
    views: [View; 4],
) -> Result<(Storage, Storage, Storage)> {
    let [dx, dy, dh] = step(gpu, GRU_CELL_GRAD, &views, &[1, 3, 3, 1], 0, [3, 3, 1])?;
    Ok((dx, dy, dh))
}

/// The forward loop: from the input projection `xp` `[T, B, 4H]`, `w_hh`
/// `[4H, H]` and the initial `h`, `c` `[B, H]` (any strides), `hs` and `cs`
/// (`[T + 1, B, H]`: the initial state, then each step's) and the activated
/// gates `[T, B, 4H]`, all in the order run (backwards when `reverse`).
pub(crate) fn lstm_sequence(
    gpu: &Arc<Gpu>,
    xp: View,
    w_hh: View,
    [h0, c0]: [View; 2],
    reverse: bool,
) -> Result<(Storage, Storage, Storage)> {
    const OP: &str = "lstm_sequence";
    let (steps, b, h) = lstm_sequence_sizes(OP, xp.1, w_hh.1)?;
    for v in [xp, w_hh, h0, c0] {
        input(gpu, OP, v, Some(DType::F32))?;
    }
    for l in [h0.1, c0.1] {
        l.expect_shape(OP, "an initial state", &[b, h])?;
    }
    let bh = b * h;
    let out = |len| output(gpu, OP, len, DType::F32).map(GpuStorage::into_storage);
    let (hs, cs, gates) = (
        out((steps + 1) * bh)?,
        out((steps + 1) * bh)?,
        out(steps * 4 * bh)?,
    );
    if bh == 0 {
        return Ok((hs, cs, gates));
    }
    copy(gpu, h0, (&hs, &state(0, b, h)))?;
    copy(gpu, c0, (&cs, &state(0, b, h)))?;
    let w_t = w_hh.1.permute(&[1, 0])?;
    let mut params = step_params(OP, b, h)?;
    for k in 0..steps {
        let t = if reverse { steps - 1 - k } else { k };
        let hg = matmul(gpu, (&hs, &state(k, b, h)), (w_hh.0, &w_t))?;
        params.views[0] = view_of(OP, &at_step(xp.1, t))?;
        params.views[1] = view_of(OP, &Layout::contiguous(&[b, 4 * h]))?;
        params.offsets = [
            to_u32(OP, (k + 1) * bh)?,
            to_u32(OP, (k + 1) * bh)?,
            to_u32(OP, k * 4 * bh)?,
            to_u32(OP, k * bh)?,
        ];
        let buffers = [xp.0, &hg, &hs, &gates, &cs].map(|s| buffer(gpu, OP, s));
        gpu.dispatch(
            LSTM_SEQUENCE_STEP,
            &[],
            bytemuck::bytes_of(&params),
            &buffers.into_iter().collect::<Result<Vec<_>>>()?,
            grid_for(OP, bh)?,
        )?;
    }
    Ok((hs, cs, gates))
}

/// The gradient of [`lstm_sequence`]: from the gradient reaching each
/// step's output `h` (`grad_hs`, `[T, B, H]` in time order) and the final
/// `c` (`grad_c`, `[B, H]`), the `gates` `[T, B, 4H]` and `cs`
/// `[T + 1, B, H]` it returned and `w_hh` (any strides), the gradient of the
/// input projection (`[T, B, 4H]`, time order) and of the initial `h` and
/// `c`.
pub(crate) fn lstm_sequence_grad(
    gpu: &Arc<Gpu>,
    [grad_hs, grad_c]: [View; 2],
    gates: View,
    cs: View,
    w_hh: View,
    reverse: bool,
) -> Result<(Storage, Storage, Storage)> {
    const OP: &str = "lstm_sequence_grad";
    let (steps, b, h) = lstm_sequence_sizes(OP, gates.1, w_hh.1)?;
    for v in [grad_hs, grad_c, gates, cs, w_hh] {
        input(gpu, OP, v, Some(DType::F32))?;
    }
    grad_hs
        .1
        .expect_shape(OP, "the outputs' gradient", &[steps, b, h])?;
    grad_c
        .1
        .expect_shape(OP, "the final c's gradient", &[b, h])?;
    cs.1.expect_shape(OP, "the cell states", &[steps + 1, b, h])?;
    let bh = b * h;
    let d_xp = output(gpu, OP, steps * 4 * bh, DType::F32)?.into_storage();
    // The gradient reaching c before the step being undone, overwritten by
    // each step in place; at the end, that of the initial c.
    let d_c = output(gpu, OP, bh, DType::F32)?.into_storage();
    if bh == 0 {
        return Ok((d_xp, zeros(gpu, 0, DType::F32)?, d_c));
    }
    copy(gpu, grad_c, (&d_c, &Layout::contiguous(&[b, h])))?;
    // The gradient reaching h from the step run after the one being undone.
    let mut d_h: Option<Storage> = None;
    let mut params = step_params(OP, b, h)?;
    for k in (0..steps).rev() {
        let t = if reverse { steps - 1 - k } else { k };
        let g_t = at_step(grad_hs.1, t);
        params.flags = u32::from(d_h.is_some());
        params.views = [
            view_of(OP, &g_t)?,
            view_of(OP, &Layout::contiguous(&[b, h]))?,
            view_of(OP, &at_step(gates.1, k))?,
            view_of(OP, &at_step(cs.1, k))?,
            view_of(OP, &at_step(cs.1, k + 1))?,
        ];
        params.offsets = [to_u32(OP, t * 4 * bh)?, 0, 0, 0];
        // Without a gradient from a later step, binding 2 is not read.
        let later = d_h.as_ref().unwrap_or(grad_hs.0);
        let buffers =
            [grad_hs.0, later, gates.0, cs.0, cs.0, &d_xp, &d_c].map(|s| buffer(gpu, OP, s));
        gpu.dispatch(
            LSTM_SEQUENCE_STEP_GRAD,
            &[],
            bytemuck::bytes_of(&params),
            &buffers.into_iter().collect::<Result<Vec<_>>>()?,
            grid_for(OP, bh)?,
        )?;
        let d_gates = Layout::contiguous(&[b, 4 * h]);
        let d_gates = Layout {
            offset: t * 4 * bh,
            ..d_gates
        };
        d_h = Some(matmul(gpu, (&d_xp, &d_gates), w_hh)?);
    }
    let d_h = match d_h {
        Some(d_h) => d_h,
        None => zeros(gpu, bh, DType::F32)?,
    };
    Ok((d_xp, d_h, d_c))
}

/// The contiguous `[b, h]` state at step `k` of a `[T + 1, b, h]` buffer.
fn state(k: usize, b: usize, h: usize) -> Layout {
    Layout {
        offset: k * b * h,
        ..Layout::contiguous(&[b, h])
    }
}

/// Step `t` (the `[B, X]` matrix at index `t` of dim 0) of a `[T, B, X]`
/// view.
fn at_step(l: &Layout, t: usize) -> Layout {
    Layout {
        shape: l.shape[1..].to_vec(),
        strides: l.strides[1..].to_vec(),
        offset: l.offset + t * l.strides[0],
    }
}

/// A `[rows, cols]` view as the kernels read it.
fn view_of(op: &'static str, l: &Layout) -> Result<[u32; 4]> {
    Ok([
        to_u32(op, l.offset)?,
        to_u32(op, l.strides[0])?,
        to_u32(op, l.strides[1])?,
        0,
    ])
}

/// The parameters of a sequence step of `b` rows of `h` units.
fn step_params(op: &'static str, b: usize, h: usize) -> Result<LstmParams> {
    Ok(LstmParams {
        rows: to_u32(op, b)?,
        hidden: to_u32(op, h)?,
        numel: to_u32(op, b * h)?,
        ..LstmParams::default()
    })
}

/// The buffer of a storage of this device.
fn buffer<'a>(gpu: &Arc<Gpu>, op: &'static str, s: &'a Storage) -> Result<&'a wgpu::Buffer> {
    Ok(GpuStorage::of(s, gpu, op)?.buffer())
}

/// One dispatch of `kernel` over `views`, view `k` being `[B, widths[k]·H]`
/// where the `[B, H]` view at index `state` sets `B` and `H`. Returns `N`
/// contiguous outputs of `outputs[k]·B·H` elements.
fn step<const N: usize>(
    gpu: &Arc<Gpu>,
    kernel: Kernel,
    views: &[View],
    widths: &[usize],
    state: usize,
    outputs: [usize; N],
) -> Result<[Storage; N]> {
    let op = kernel.entry;
    let checked = views
        .iter()
        .map(|&v| input(gpu, op, v, Some(DType::F32)))
        .collect::<Result<Vec<_>>>()?;
    let (rows, hidden) = matrix(op, checked[state].1)?;
    let mut params = LstmParams {
        rows: to_u32(op, rows)?,
        hidden: to_u32(op, hidden)?,
        numel: to_u32(op, rows * hidden)?,
        ..LstmParams::default()
    };
    for (k, ((_, l), &w)) in checked.iter().zip(widths).enumerate() {
        let want = (rows, w * hidden);
        if matrix(op, l)? != want {
            return Err(Error::shape(
                op,
                format!("a view of shape [{}, {}]", want.0, want.1),
                &l.shape,
            ));
        }
        params.views[k] = view_of(op, l)?;
    }
    let outs = outputs
        .iter()
        .map(|&w| output(gpu, op, w * rows * hidden, DType::F32))
        .collect::<Result<Vec<GpuStorage>>>()?;
    let n = rows * hidden;
    if n > 0 {
        let buffers: Vec<&wgpu::Buffer> = checked
            .iter()
            .map(|(s, _)| s.buffer())
            .chain(outs.iter().map(GpuStorage::buffer))
            .collect();
        gpu.dispatch(
            kernel,
            &[],
            bytemuck::bytes_of(&params),
            &buffers,
            grid_for(op, n)?,
        )?;
    }
    let storages: Vec<Storage> = outs.into_iter().map(GpuStorage::into_storage).collect();
    storages
        .try_into()
        .map_err(|_| Error::invalid(op, "an output count that differs from the kernel's"))
}

/// The `(rows, cols)` of a rank-2 view.
fn matrix(op: &'static str, l: &Layout) -> Result<(usize, usize)> {
    match l.shape[..] {
        [r, c] => Ok((r, c)),
        _ => Err(Error::shape(op, "a [batch, features] view", &l.shape)),
    }
}
