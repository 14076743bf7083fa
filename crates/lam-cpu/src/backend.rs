//! [`CpuBackend`]'s [`Backend`] impl: one method per op, each handing its
//! views to the op family's module and wrapping what comes back as
//! buffers.
//!
//! The impl is the crate's table from trait method to op family, kept apart
//! from `lib.rs` so that the crate root reads as the overview (modules, the
//! device, the backend's counters). Results become buffers through `op`,
//! which counts a dispatch, or `store`, which does not: as a rule an op's
//! first output takes `op` and the rest `store`, so a fused op counts once
//! however many outputs it has.

use lam_core::backend::{
    AdamStep, AttentionInputs, AttentionScores, BatchNormRunning, BinaryOp, DeviceKind,
    DeviceStats, Distribution, LinearActivation, ReduceOp, SgdStep, UnaryOp, View, WindowGeometry,
};
use lam_core::{Backend, DType, Result, Storage};

use crate::storage::Data;
use crate::{
    adam, attention, attention_weights, batch_norm, conv, copy, cross_entropy, elementwise, index,
    layer_norm, lstm, lstm_sequence, lstm_sequence_grad, matmul, max_pool, pool, quant, random,
    reduce, sgd, softmax, unscale, window, CpuBackend,
};

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn kind(&self) -> DeviceKind {
        DeviceKind::Cpu
    }

    fn zeros(&self, len: usize, dtype: DType) -> Result<Storage> {
        Ok(self.store(match dtype {
            DType::F32 => Data::F32(pool::zeroed(len)?),
            DType::I32 => Data::I32(pool::fresh_zeroed(len)?),
            DType::F16 => Data::F16(pool::fresh_zeroed(len)?),
        }))
    }

    fn empty(&self, len: usize, dtype: DType) -> Result<Storage> {
        match dtype {
            // A recycled vector as it is (a fresh one is zeros).
            DType::F32 => Ok(self.store(Data::F32(pool::take(len)?))),
            _ => self.zeros(len, dtype),
        }
    }

    fn from_f32(&self, data: &[f32]) -> Result<Storage> {
        Ok(self.store(Data::F32(pool::copy_f32(data)?)))
    }

    fn from_i32(&self, data: &[i32]) -> Result<Storage> {
        Ok(self.store(Data::I32(pool::copy_of(data)?)))
    }

    fn read_f32(&self, src: View) -> Result<Vec<f32>> {
        copy::read_f32(src)
    }

    fn read_i32(&self, src: View) -> Result<Vec<i32>> {
        copy::read_i32(src)
    }

    fn copy(&self, src: View, dst: View) -> Result<()> {
        self.count();
        copy::copy(src, dst)
    }

    fn cast(&self, src: View, to: DType) -> Result<Storage> {
        Ok(self.op(copy::cast(src, to)?))
    }

    fn unary(&self, op: UnaryOp, src: View) -> Result<Storage> {
        Ok(self.op(Data::F32(elementwise::unary(op, src)?)))
    }

    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Storage> {
        Ok(self.op(Data::F32(elementwise::binary(op, lhs, rhs)?)))
    }

    fn select(&self, cond: View, a: View, b: View) -> Result<Storage> {
        Ok(self.op(Data::F32(elementwise::select(cond, a, b)?)))
    }

    fn reduce(&self, op: ReduceOp, src: View, axes: &[usize]) -> Result<Storage> {
        Ok(self.op(reduce::reduce(op, src, axes)?))
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<Storage> {
        Ok(self.op(Data::F32(matmul::matmul(lhs, rhs)?)))
    }

    fn matmul_i8(
        &self,
        input: View,
        input_scale: Option<View>,
        weight: View,
        weight_scale: View,
        bias: Option<View>,
    ) -> Result<Storage> {
        Ok(self.op(Data::F32(quant::matmul_i8(
            input,
            input_scale,
            weight,
            weight_scale,
            bias,
        )?)))
    }

    fn index_select(&self, src: View, dim: usize, index: View) -> Result<Storage> {
        Ok(self.op(index::index_select(src, dim, index)?))
    }

    fn gather(&self, src: View, dim: usize, index: View) -> Result<Storage> {
        Ok(self.op(index::gather(src, dim, index)?))
    }

    fn scatter_add(&self, shape: &[usize], dim: usize, index: View, src: View) -> Result<Storage> {
        Ok(self.op(index::scatter_add(shape, dim, index, src)?))
    }

    fn unfold(&self, src: View, geometry: &WindowGeometry, pad_value: f32) -> Result<Storage> {
        Ok(self.op(Data::F32(window::unfold(src, geometry, pad_value)?)))
    }

    fn fold(&self, cols: View, geometry: &WindowGeometry) -> Result<Storage> {
        Ok(self.op(Data::F32(window::fold(cols, geometry)?)))
    }

    fn max_pool(&self, src: View, geometry: &WindowGeometry) -> Result<(Storage, Storage)> {
        let (values, taps) = max_pool::max_pool(src, geometry)?;
        Ok((self.op(Data::F32(values)), self.store(Data::I32(taps))))
    }

    fn max_pool_grad(&self, grad: View, taps: View, geometry: &WindowGeometry) -> Result<Storage> {
        Ok(self.op(Data::F32(max_pool::max_pool_grad(grad, taps, geometry)?)))
    }

    fn fill_random(&self, len: usize, dist: Distribution, seed: u64) -> Result<Storage> {
        Ok(self.op(Data::F32(random::fill_random(len, dist, seed)?)))
    }

    fn fused_softmax(&self, src: View, log: bool) -> Result<Option<Storage>> {
        Ok(Some(self.op(Data::F32(softmax::softmax(src, log)?))))
    }

    fn fused_attention(&self, inputs: &AttentionInputs<'_>) -> Result<Option<(Storage, Storage)>> {
        let (out, stats) = attention::attention(inputs)?;
        Ok(Some((
            self.op(Data::F32(out)),
            self.store(Data::F32(stats)),
        )))
    }

    fn fused_attention_grad(
        &self,
        inputs: &AttentionInputs<'_>,
        out: View,
        stats: View,
        grad: View,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        let (dq, dk, dv) = attention::attention_grad(inputs, out, stats, grad)?;
        Ok(Some((
            self.op(Data::F32(dq)),
            self.store(Data::F32(dk)),
            self.store(Data::F32(dv)),
        )))
    }

    fn fused_cross_entropy(
        &self,
        logits: View,
        targets: View,
    ) -> Result<Option<(Storage, Storage)>> {
        if logits.0.dtype() == DType::F16 {
            // lam-core reads F16 logits through an F32 copy then.
            return Ok(None);
        }
        let (losses, grad) = cross_entropy::cross_entropy(logits, targets)?;
        Ok(Some((
            self.op(Data::F32(losses)),
            self.store(Data::F32(grad)),
        )))
    }

    fn fused_linear(
        &self,
        input: View,
        weight: View,
        bias: Option<View>,
        act: LinearActivation,
    ) -> Result<Option<Storage>> {
        Ok(Some(
            self.op(Data::F32(matmul::linear(input, weight, bias, act)?)),
        ))
    }

    fn fused_lstm_cell(
        &self,
        input_gates: View,
        hidden_gates: View,
        c: View,
    ) -> Result<Option<(Storage, Storage)>> {
        let (hc, gates) = lstm::lstm_cell(input_gates, hidden_gates, c)?;
        Ok(Some((self.op(Data::F32(hc)), self.store(Data::F32(gates)))))
    }

    fn fused_lstm_sequence(
        &self,
        input_gates: View,
        w_hh: View,
        h: View,
        c: View,
        reverse: bool,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        let input = lstm_sequence::StepInput::Projected(input_gates);
        let (hs, cs, gates) = lstm_sequence::lstm_sequence(input, w_hh, h, c, reverse)?;
        Ok(Some((
            self.op(Data::F32(hs)),
            self.store(Data::F32(cs)),
            self.store(Data::F32(gates)),
        )))
    }

    fn fused_lstm_layer(
        &self,
        x: View,
        w_ih: View,
        bias: Option<View>,
        w_hh: View,
        (h, c): (View, View),
        reverse: bool,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        let (inputs, hidden) = (x.1.shape.last().copied(), w_hh.1.shape.last().copied());
        let (Some(inputs), Some(hidden)) = (inputs, hidden) else {
            return Ok(None);
        };
        // `x` is `[T, B, in]` (lstm_sequence checks it).
        let batch = x.1.shape.get(1).copied().unwrap_or(0);
        if !lstm_sequence::projects_inside(batch, inputs, hidden) {
            return Ok(None);
        }
        let input = lstm_sequence::StepInput::Rows { x, w_ih, bias };
        let (hs, cs, gates) = lstm_sequence::lstm_sequence(input, w_hh, h, c, reverse)?;
        Ok(Some((
            self.op(Data::F32(hs)),
            self.store(Data::F32(cs)),
            self.store(Data::F32(gates)),
        )))
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
        let grads =
            lstm_sequence_grad::lstm_sequence_grad(grad_hs, grad_c, gates, cs, w_hh, reverse)?;
        Ok(Some((
            self.op(Data::F32(grads.d_xp)),
            self.store(Data::F32(grads.d_h)),
            self.store(Data::F32(grads.d_c)),
            Some(self.store(Data::F32(grads.d_bias))),
        )))
    }

    fn fused_lstm_cell_grad(
        &self,
        grad_h: View,
        grad_c: View,
        gates: View,
        c: View,
        c_new: View,
    ) -> Result<Option<(Storage, Storage)>> {
        let (d_gates, d_c) = lstm::lstm_cell_grad(grad_h, grad_c, gates, c, c_new)?;
        Ok(Some((
            self.op(Data::F32(d_gates)),
            self.store(Data::F32(d_c)),
        )))
    }

    fn fused_gru_cell(
        &self,
        input_gates: View,
        hidden_gates: View,
        h: View,
    ) -> Result<Option<(Storage, Storage)>> {
        let (out, gates) = lstm::gru_cell(input_gates, hidden_gates, h)?;
        Ok(Some((
            self.op(Data::F32(out)),
            self.store(Data::F32(gates)),
        )))
    }

    fn fused_gru_cell_grad(
        &self,
        grad_h: View,
        gates: View,
        hidden_gates: View,
        h: View,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        let (dx, dy, dh) = lstm::gru_cell_grad(grad_h, gates, hidden_gates, h)?;
        Ok(Some((
            self.op(Data::F32(dx)),
            self.store(Data::F32(dy)),
            self.store(Data::F32(dh)),
        )))
    }

    fn fused_layer_norm(
        &self,
        input: View,
        weight: Option<View>,
        bias: Option<View>,
        eps: f32,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        let (y, mean, rstd) = layer_norm::layer_norm(input, weight, bias, eps)?;
        Ok(Some((
            self.op(Data::F32(y)),
            self.store(Data::F32(mean)),
            self.store(Data::F32(rstd)),
        )))
    }

    fn fused_layer_norm_grad(
        &self,
        grad: View,
        input: View,
        mean: View,
        rstd: View,
        weight: Option<View>,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        let (dx, dw, db) = layer_norm::layer_norm_grad(grad, input, mean, rstd, weight)?;
        Ok(Some((
            self.op(Data::F32(dx)),
            self.store(Data::F32(dw)),
            self.store(Data::F32(db)),
        )))
    }

    fn fused_batch_norm(
        &self,
        input: View,
        weight: Option<View>,
        bias: Option<View>,
        eps: f32,
    ) -> Result<Option<(Storage, Storage)>> {
        let (y, stats) = batch_norm::batch_norm(input, weight, bias, eps)?;
        Ok(Some((self.op(Data::F32(y)), self.store(Data::F32(stats)))))
    }

    fn fused_batch_norm_running(
        &self,
        update: BatchNormRunning,
    ) -> Result<Option<(Storage, Storage, Option<Storage>)>> {
        let (m, v, n) = batch_norm::running(&update)?;
        let n = n.map(|n| self.store(Data::I32(vec![n])));
        Ok(Some((
            self.store(Data::F32(m)),
            self.store(Data::F32(v)),
            n,
        )))
    }

    fn fused_batch_norm_grad(
        &self,
        grad: View,
        input: View,
        mean: View,
        invstd: View,
        weight: Option<View>,
    ) -> Result<Option<(Storage, Storage, Storage)>> {
        let (dx, dw, db) = batch_norm::batch_norm_grad(grad, input, mean, invstd, weight)?;
        Ok(Some((
            self.op(Data::F32(dx)),
            self.store(Data::F32(dw)),
            self.store(Data::F32(db)),
        )))
    }

    fn fused_adam(
        &self,
        param: &Storage,
        grad: &Storage,
        m: &Storage,
        v: &Storage,
        step: &AdamStep,
    ) -> Result<bool> {
        self.count();
        adam::adam(param, grad, m, v, step)?;
        Ok(true)
    }

    fn fused_sgd(
        &self,
        param: &Storage,
        grad: &Storage,
        momentum_buffer: Option<&Storage>,
        step: &SgdStep,
    ) -> Result<bool> {
        self.count();
        sgd::sgd(param, grad, momentum_buffer, step)?;
        Ok(true)
    }

    fn fused_attention_weights(
        &self,
        inputs: &AttentionScores<'_>,
    ) -> Result<Option<(Storage, Storage)>> {
        let (weights, stats) = attention_weights::weights(inputs)?;
        Ok(Some((
            self.op(Data::F32(weights)),
            self.store(Data::F32(stats)),
        )))
    }

    fn fused_attention_weights_grad(
        &self,
        inputs: &AttentionScores<'_>,
        stats: View,
        dp: View,
        grad: View,
        out: View,
    ) -> Result<Option<(Storage, Storage)>> {
        let (p, ds) = attention_weights::weights_grad(inputs, stats, dp, grad, out)?;
        Ok(Some((self.op(Data::F32(p)), self.store(Data::F32(ds)))))
    }

    fn fused_unscale(
        &self,
        grad: View,
        inv_scale: f32,
        found: &Storage,
    ) -> Result<Option<Storage>> {
        let scaled = unscale::unscale(grad, inv_scale, found)?;
        Ok(Some(self.op(Data::F32(scaled))))
    }

    fn fused_conv2d(
        &self,
        input: View,
        weight: View,
        bias: Option<View>,
        geometry: &WindowGeometry,
        groups: usize,
    ) -> Result<Option<Storage>> {
        let y = conv::conv2d(input, weight, bias, geometry, groups)?;
        Ok(Some(self.op(Data::F32(y))))
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
        let grads = conv::conv2d_grad(grad, input, weight, geometry, groups, needs)?;
        self.count();
        Ok(Some(grads.map(|g| g.map(|g| self.store(Data::F32(g))))))
    }

    /// This device's counters; `bytes_pooled` is the process-wide pool's,
    /// which every CPU device shares.
    fn stats(&self) -> DeviceStats {
        DeviceStats {
            bytes_pooled: pool::pool_stats().bytes_pooled,
            ..self.counters.snapshot()
        }
    }
}
