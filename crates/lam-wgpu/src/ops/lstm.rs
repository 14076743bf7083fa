//! The gate arithmetic of one LSTM or GRU step and its gradient
//! (lstm.wgsl): one dispatch per call, one thread per (row, hidden unit),
//! inputs read through their `[rows, cols]` views and outputs contiguous.

use std::sync::Arc;

use lam_core::backend::View;
use lam_core::{DType, Error, Layout, Result, Storage};

use super::{grid_for, input, output};
use crate::context::Gpu;
use crate::kernels::{Kernel, GRU_CELL, GRU_CELL_GRAD, LSTM_CELL, LSTM_CELL_GRAD};
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
        params.views[k] = [
            to_u32(op, l.offset)?,
            to_u32(op, l.strides[0])?,
            to_u32(op, l.strides[1])?,
            0,
        ];
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
