//! A `Linear` under autocast: `act(f16(x) · f16(W)ᵀ + b)` rounded to
//! `F16`, as PyTorch's autocast Linear returns half precision: the product
//! in `F16`, the bias added and the activation applied in `F32`, the result
//! rounded once more, so the next layer reads (and its gradient rule keeps)
//! half the bytes.
//!
//! Composed, that is a cast of each operand, the `F16` product, the add
//! (which promotes to `F32`), the activation and the cast to `F16`. Where
//! the backend has `fused_linear_f16` (the GPU kernels), the product's own
//! output write rounds each sum to `F16`, widens it back, adds the bias and
//! applies the activation, and rounds that to `F16` as it writes it (with a
//! ReLU, whose rule reads the `F32` output, it writes that and one cast
//! rounds it), and the layer is one tape op whose gradient rule repeats the composed ops' rules step by
//! step, so that outputs and gradients are bit for bit those of the
//! composition, which runs wherever the backend declines.

use crate::backend::LinearActivation;
use crate::{DType, Layout, Result, Tensor};

/// `act(x Wᵀ + b)` for `x: [rows, in]` under autocast to `half`.
pub(super) fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    act: LinearActivation,
    half: DType,
) -> Result<Tensor> {
    // The casts the composition starts with, recorded as it records them:
    // if the backend declines, the composition continues from them.
    let wt = weight.t()?;
    let (x16, wt16) = (x.to_dtype(half)?, wt.to_dtype(half)?);
    let Some(bias) = bias.filter(|b| fusable(x, weight, b, half)) else {
        return super::composite(&x16, &wt16, bias, act)?.to_dtype(half);
    };
    let (xs, ws, bs) = (x16.storage(), wt16.storage(), bias.storage());
    // The rule of a ReLU reads the F32 output; otherwise the backend may
    // write the F16 one directly.
    let relu = act == LinearActivation::Relu;
    let fused = x.backend().fused_linear_f16(
        (&xs, x16.layout()),
        (&ws, wt16.layout()),
        (&bs, bias.layout()),
        act,
        if relu { DType::F32 } else { half },
    )?;
    let Some(out) = fused else {
        return super::composite(&x16, &wt16, Some(bias), act)?.to_dtype(half);
    };
    let (rows, out_f) = (x.dims()[0], weight.dims()[0]);
    let layout = Layout::contiguous(&[rows, out_f]);
    let rounded = if relu {
        x.backend().cast((&out, &layout), half)?
    } else {
        out.clone()
    };
    let needs = [
        x.requires_grad(),
        weight.requires_grad(),
        bias.requires_grad(),
    ];
    // Kept for the gradient only where read, as the composed ops keep
    // them: the F32 output for the ReLU's mask (the F16 one could lose a
    // positive value below F16's smallest), each F16 operand for the
    // other's gradient.
    let y = relu.then(|| Tensor::from_storage(out, layout.clone(), &x.device()));
    let x16 = needs[1].then(|| x16.detach());
    let wt16 = needs[0].then(|| wt16.detach());
    let (x_dtype, w_dtype) = (x.dtype(), weight.dtype());
    let name = match act {
        LinearActivation::Identity => "linear_f16",
        LinearActivation::Relu => "linear_f16_relu",
    };
    Ok(Tensor::from_op(
        name,
        rounded,
        layout,
        &[x, weight, bias],
        move |g| {
            // The composed rules in turn: the final cast's, which takes `g`
            // to F32; the ReLU's mask; the add's, which
            // hands `g` to the product and sums it over rows for the bias;
            // the cast of the product, which takes it to F16; the F16
            // product's (dA = G Bᵀ, dB = Aᵀ G, its operands row-major here);
            // and the operands' casts and the weight's transpose.
            // (`g` is used in its own dtype: the cast's rule widens it
            // exactly, and the ReLU's mask and the bias sum read halves as
            // the same f32 values, so a F16 `g` is not copied to F32.)
            let gp = match &y {
                Some(y) => g.relu_grad(y)?,
                None => g.clone(),
            };
            let gb = needs[2]
                .then(|| gp.sum_to_shape(&[gp.dims()[1]]))
                .transpose()?;
            let g16 = gp.to_dtype(half)?;
            let gx = wt16
                .as_ref()
                .map(|wt| g16.matmul_as(&wt.t()?, x_dtype))
                .transpose()?;
            let gw = x16
                .as_ref()
                .map(|x| x.t()?.matmul_as(&g16, w_dtype)?.t())
                .transpose()?;
            Ok(vec![gx, gw, gb])
        },
    ))
}

/// True where the fused op's gradient rule is the composed ops' rule: an
/// `F32` bias (the kernels read `f32` biases), an `F32` weight (cast to a
/// row-major `F16` copy of `Wᵀ`, where an `F16` weight's `Wᵀ` would be a
/// column-major view whose product gradient is computed transposed) and an
/// input that is `F32` or a contiguous `F16` (row-major either way).
fn fusable(x: &Tensor, weight: &Tensor, bias: &Tensor, half: DType) -> bool {
    half == DType::F16
        && bias.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && (x.dtype() == DType::F32 || x.layout().is_contiguous())
}
