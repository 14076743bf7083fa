//! [`WgpuBackend`]: lam's [`Backend`] trait over one wgpu device. Each method
//! forwards to its op family in `ops/` (the module named as the family, as
//! are its shaders); this file is the table of contents.

use std::sync::Arc;

use lam_core::backend::{
    AdamStep, AttentionInputs, AttentionScores, BatchNormRunning, BinaryOp, Distribution,
    LinearActivation, ReduceOp, SgdStep, UnaryOp, View, WindowGeometry,
};
use lam_core::{Backend, DType, DeviceKind, DeviceStats, Result, Storage};

use crate::context::Gpu;
use crate::kernels::{
    ATTENTION_FORWARD, ATTENTION_GRAD_KV, ATTENTION_GRAD_Q, ATTENTION_ROWS, ATTENTION_WEIGHTS,
    ATTENTION_WEIGHTS_GRAD, BATCH_NORM_APPLY, BATCH_NORM_GRAD_INPUT, BATCH_NORM_RUNNING, GRU_CELL,
    GRU_CELL_GRAD, LAYER_NORM, LAYER_NORM_GRAD_INPUT, LAYER_NORM_GRAD_PARAMS, LSTM_CELL,
    LSTM_CELL_GRAD, LSTM_SEQUENCE_STEP, LSTM_SEQUENCE_STEP_GRAD,
};
use crate::ops::{
    adam, attention, attention_weights, batch_norm, conv, copy, cross_entropy, elementwise, index,
    layer_norm, lstm, matmul, max_pool, quant, random, reduce, sgd, softmax, unscale, window,
};

/// The WebGPU backend: every primitive is a WGSL kernel recorded into a lazy
/// command queue. Created by [`crate::gpu_device`] and friends.
#[derive(Debug)]
pub struct WgpuBackend {
    gpu: Arc<Gpu>,
}

impl WgpuBackend {
    pub(crate) fn new(gpu: Arc<Gpu>) -> WgpuBackend {
        WgpuBackend { gpu }
    }

    /// The adapter this backend runs on.
    pub fn adapter_info(&self) -> crate::AdapterInfo {
        crate::device::info_of(&self.gpu.info)
    }

    /// The device, for op families that call its kernels directly as well
    /// as through this backend's methods (`ops/conv.rs`).
    pub(crate) fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> String {
        self.gpu.describe()
    }

    fn kind(&self) -> DeviceKind {
        DeviceKind::Gpu
    }

    fn native_f16(&self) -> bool {
        // Requested when opening the device wherever the adapter offers it.
        self.gpu
            .device
            .features()
            .contains(wgpu::Features::SHADER_F16)
    }

    fn zeros(&self, len: usize, dtype: DType) -> Result<Storage> {
        copy::zeros(&self.gpu, len, dtype)
    }

    fn empty(&self, len: usize, dtype: DType) -> Result<Storage> {
        copy::empty(&self.gpu, len, dtype)
    }

    fn from_f32(&self, data: &[f32]) -> Result<Storage> {
        copy::upload(&self.gpu, bytemuck::cast_slice(data), DType::F32)
    }

    fn from_i32(&self, data: &[i32]) -> Result<Storage> {
        copy::upload(&self.gpu, bytemuck::cast_slice(data), DType::I32)
    }

    fn read_f32(&self, src: View) -> Result<Vec<f32>> {
        let bytes = copy::read(&self.gpu, src, DType::F32)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn read_i32(&self, src: View) -> Result<Vec<i32>> {
        let bytes = copy::read(&self.gpu, src, DType::I32)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn copy(&self, src: View, dst: View) -> Result<()> {
        copy::copy(&self.gpu, src, dst)
    }

    fn cast(&self, src: View, to: DType) -> Result<Storage> {
        copy::cast(&self.gpu, src, to)
    }

    fn unary(&self, op: UnaryOp, src: View) -> Result<Storage> {
        elementwise::unary(&self.gpu, op, src)
    }

    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Storage> {
        elementwise::binary(&self.gpu, op, lhs, rhs)
    }

    fn select(&self, cond: View, a: View, b: View) -> Result<Storage> {
        elementwise::select(&self.gpu, cond, a, b)
    }

    fn reduce(&self, op: ReduceOp, src: View, axes: &[usize]) -> Result<Storage> {
        reduce::reduce(&self.gpu, op, src, axes)
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<Storage> {
        matmul::matmul(&self.gpu, lhs, rhs)
    }

    fn matmul_i8(
        &self,
        input: View,
        input_scale: Option<View>,
        weight: View,
        weight_scale: View,
        bias: Option<View>,
    ) -> Result<Storage> {
        quant::matmul_i8(&self.gpu, input, input_scale, weight, weight_scale, bias)
    }

    fn index_select(&self, src: View, dim: usize, index: View) -> Result<Storage> {
        index::index_select(&self.gpu, src, dim, index)
    }

    fn gather(&self, src: View, dim: usize, index: View) -> Result<Storage> {
        index::gather(&self.gpu, src, dim, index)
    }

    fn scatter_add(&self, shape: &[usize], dim: usize, index: View, src: View) -> Result<Storage> {
        index::scatter_add(&self.gpu, shape, dim, index, src)
    }

    fn unfold(&self, src: View, geometry: &WindowGeometry, pad_value: f32) -> Result<Storage> {
        window::unfold(&self.gpu, src, geometry, pad_value)
    }

    fn fold(&self, cols: View, geometry: &WindowGeometry) -> Result<Storage> {
        window::fold(&self.gpu, cols, geometry)
    }

    fn max_pool(&self, src: View, geometry: &WindowGeometry) -> Result<(Storage, Storage)> {
        max_pool::max_pool(&self.gpu, src, geometry)
    }

    fn max_pool_grad(&self, grad: View, taps: View, geometry: &WindowGeometry) -> Result<Storage> {
        max_pool::max_pool_grad(&self.gpu, grad, taps, geometry)
    }

    fn fill_random(&self, len: usize, dist: Distribution, seed: u64) -> Result<Storage> {
        random::fill_random(&self.gpu, len, dist, seed)
    }

    fn fused_softmax(&self, src: View, log: bool) -> Result<Option<Storage>> {
        softmax::softmax(&self.gpu, src, log)
    }

    fn fused_attention(&self, inputs: &AttentionInputs<'_>) -> Result<Option<(Storage, Storage)>> {
        if !self.gpu.binds(&[ATTENTION_FORWARD]) {
            return Ok(None);
        }
        attention::attention(&self.gpu, inputs)
    }

    fn fused_attention_grad(
        &self,
        inputs: &AttentionInputs<'_>,
        out: View,
        stats: View,
        grad: View,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        if !self
            .gpu
            .binds(&[ATTENTION_ROWS, ATTENTION_GRAD_Q, ATTENTION_GRAD_KV])
        {
            return Ok(None);
        }
        attention::attention_grad(&self.gpu, inputs, out, stats, grad)
    }

    fn fused_attention_weights(
        &self,
        inputs: &AttentionScores<'_>,
    ) -> Result<Option<(Storage, Storage)>> {
        if !self.gpu.binds(&[ATTENTION_WEIGHTS]) {
            return Ok(None);
        }
        attention_weights::weights(&self.gpu, inputs).map(Some)
    }

    fn fused_attention_weights_grad(
        &self,
        inputs: &AttentionScores<'_>,
        stats: View,
        dp: View,
        grad: View,
        out: View,
    ) -> Result<Option<(Storage, Storage)>> {
        if !self.gpu.binds(&[ATTENTION_WEIGHTS_GRAD]) {
            return Ok(None);
        }
        attention_weights::weights_grad(&self.gpu, inputs, stats, dp, grad, out)
    }

    fn fused_cross_entropy(
        &self,
        logits: View,
        targets: View,
    ) -> Result<Option<(Storage, Storage)>> {
        cross_entropy::cross_entropy(&self.gpu, logits, targets)
    }

    fn fused_unary_f16(&self, op: UnaryOp, src: View, to: DType) -> Result<Option<Storage>> {
        elementwise::unary_f16(&self.gpu, op, src, to).map(Some)
    }

    fn fused_binary_f16(
        &self,
        op: BinaryOp,
        lhs: View,
        rhs: View,
        to: DType,
    ) -> Result<Option<Storage>> {
        elementwise::binary_f16(&self.gpu, op, lhs, rhs, to).map(Some)
    }

    fn fused_unscale(
        &self,
        grad: View,
        inv_scale: f32,
        found: &Storage,
    ) -> Result<Option<Storage>> {
        unscale::unscale(&self.gpu, grad, inv_scale, found).map(Some)
    }

    fn fused_matmul_f16(&self, lhs: View, rhs: View, to: DType) -> Result<Option<Storage>> {
        matmul::matmul_f16(&self.gpu, lhs, rhs, to).map(Some)
    }

    fn fused_linear(
        &self,
        input: View,
        weight: View,
        bias: Option<View>,
        act: LinearActivation,
    ) -> Result<Option<Storage>> {
        matmul::linear(&self.gpu, input, weight, bias, act)
    }

    fn fused_linear_f16(
        &self,
        input: View,
        weight: View,
        bias: View,
        act: LinearActivation,
        to: DType,
    ) -> Result<Option<Storage>> {
        matmul::linear_f16(&self.gpu, input, weight, bias, act, to)
    }

    fn fused_lstm_cell(
        &self,
        input_gates: View,
        hidden_gates: View,
        c: View,
    ) -> Result<Option<(Storage, Storage)>> {
        if !self.gpu.binds(&[LSTM_CELL]) {
            return Ok(None);
        }
        lstm::lstm_cell(&self.gpu, input_gates, hidden_gates, c).map(Some)
    }

    fn fused_lstm_cell_grad(
        &self,
        grad_h: View,
        grad_c: View,
        gates: View,
        c: View,
        c_new: View,
    ) -> Result<Option<(Storage, Storage)>> {
        if !self.gpu.binds(&[LSTM_CELL_GRAD]) {
            return Ok(None);
        }
        lstm::lstm_cell_grad(&self.gpu, [grad_h, grad_c, gates, c, c_new]).map(Some)
    }

    fn fused_lstm_sequence(
        &self,
        input_gates: View,
        w_hh: View,
        h: View,
        c: View,
        reverse: bool,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        // Both directions' kernels, so that a forward taken here never
        // meets a declined gradient; `F32` only (lam-core composes a layer
        // of halves step by step).
        let f32s = [input_gates, w_hh, h, c]
            .iter()
            .all(|v| v.0.dtype() == DType::F32);
        if !f32s
            || !self
                .gpu
                .binds(&[LSTM_SEQUENCE_STEP, LSTM_SEQUENCE_STEP_GRAD])
        {
            return Ok(None);
        }
        lstm::lstm_sequence(&self.gpu, input_gates, w_hh, [h, c], reverse).map(Some)
    }

    fn fused_lstm_sequence_grad(
        &self,
        grad_hs: View,
        grad_c: View,
        gates: View,
        cs: View,
        w_hh: View,
        reverse: bool,
    ) -> Result<Option<(Storage, Storage, Storage, Option<Storage>)>> {
        let f32s = [grad_hs, grad_c, gates, cs, w_hh]
            .iter()
            .all(|v| v.0.dtype() == DType::F32);
        if !f32s || !self.gpu.binds(&[LSTM_SEQUENCE_STEP_GRAD]) {
            return Ok(None);
        }
        let grads = [grad_hs, grad_c];
        // The bias's gradient is left to lam-core's column sum.
        let (d_xp, d_h, d_c) =
            lstm::lstm_sequence_grad(&self.gpu, grads, gates, cs, w_hh, reverse)?;
        Ok(Some((d_xp, d_h, d_c, None)))
    }

    fn fused_gru_cell(
        &self,
        input_gates: View,
        hidden_gates: View,
        h: View,
    ) -> Result<Option<(Storage, Storage)>> {
        if !self.gpu.binds(&[GRU_CELL]) {
            return Ok(None);
        }
        lstm::gru_cell(&self.gpu, input_gates, hidden_gates, h).map(Some)
    }

    fn fused_gru_cell_grad(
        &self,
        grad_h: View,
        gates: View,
        hidden_gates: View,
        h: View,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        if !self.gpu.binds(&[GRU_CELL_GRAD]) {
            return Ok(None);
        }
        lstm::gru_cell_grad(&self.gpu, [grad_h, gates, hidden_gates, h]).map(Some)
    }

    fn fused_layer_norm(
        &self,
        input: View,
        weight: Option<View>,
        bias: Option<View>,
        eps: f32,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        if !self.gpu.binds(&[LAYER_NORM]) {
            return Ok(None);
        }
        layer_norm::layer_norm(&self.gpu, input, weight, bias, eps).map(Some)
    }

    fn fused_layer_norm_grad(
        &self,
        grad: View,
        input: View,
        mean: View,
        rstd: View,
        weight: Option<View>,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        if !self
            .gpu
            .binds(&[LAYER_NORM_GRAD_INPUT, LAYER_NORM_GRAD_PARAMS])
        {
            return Ok(None);
        }
        layer_norm::layer_norm_grad(&self.gpu, grad, input, mean, rstd, weight).map(Some)
    }

    fn fused_batch_norm(
        &self,
        input: View,
        weight: Option<View>,
        bias: Option<View>,
        eps: f32,
    ) -> Result<Option<(Storage, Storage)>> {
        if !self.gpu.binds(&[BATCH_NORM_APPLY]) {
            return Ok(None);
        }
        batch_norm::batch_norm(&self.gpu, input, weight, bias, eps).map(Some)
    }

    fn fused_batch_norm_running(
        &self,
        update: BatchNormRunning,
    ) -> Result<Option<(Storage, Storage, Option<Storage>)>> {
        if !self.gpu.binds(&[BATCH_NORM_RUNNING]) {
            return Ok(None);
        }
        batch_norm::batch_norm_running(&self.gpu, &update).map(Some)
    }

    fn fused_batch_norm_grad(
        &self,
        grad: View,
        input: View,
        mean: View,
        invstd: View,
        weight: Option<View>,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        if !self.gpu.binds(&[BATCH_NORM_GRAD_INPUT]) {
            return Ok(None);
        }
        batch_norm::batch_norm_grad(&self.gpu, grad, input, mean, invstd, weight).map(Some)
    }

    fn fused_adam(
        &self,
        param: &Storage,
        grad: &Storage,
        m: &Storage,
        v: &Storage,
        step: &AdamStep,
    ) -> Result<bool> {
        adam::adam(&self.gpu, param, grad, m, v, step)
    }

    fn fused_sgd(
        &self,
        param: &Storage,
        grad: &Storage,
        momentum_buffer: Option<&Storage>,
        step: &SgdStep,
    ) -> Result<bool> {
        sgd::sgd(&self.gpu, param, grad, momentum_buffer, step)
    }

    fn fused_conv2d(
        &self,
        input: View,
        weight: View,
        bias: Option<View>,
        geometry: &WindowGeometry,
        groups: usize,
    ) -> Result<Option<Storage>> {
        conv::conv2d(self, input, weight, bias, geometry, groups)
    }

    fn fused_conv2d_grad(
        &self,
        grad: View,
        input: View,
        weight: View,
        geometry: &WindowGeometry,
        groups: usize,
        needs: [bool; 3],
    ) -> Result<Option<[Option<Storage>; 3]>> {
        conv::conv2d_grad(self, grad, input, weight, geometry, groups, needs)
    }

    fn fused_conv2d_f16(
        &self,
        input: View,
        weight: View,
        bias: Option<View>,
        geometry: &WindowGeometry,
        groups: usize,
    ) -> Result<Option<Storage>> {
        conv::conv2d_f16(self, input, weight, bias, geometry, groups)
    }

    fn fused_conv2d_f16_grad(
        &self,
        grad: View,
        input: View,
        weight: View,
        geometry: &WindowGeometry,
        groups: usize,
        needs: [bool; 3],
    ) -> Result<Option<[Option<Storage>; 3]>> {
        conv::conv2d_f16_grad(self, grad, input, weight, geometry, groups, needs)
    }

    fn stats(&self) -> DeviceStats {
        self.gpu.stats()
    }

    fn reset_peak_stats(&self) {
        self.gpu.reset_peak();
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu.synchronize()
    }
}
