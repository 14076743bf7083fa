//! [`Linear`]: `y = x Wᵀ + b`, PyTorch's `nn.Linear`, and its functional
//! form [`linear`].
//!
//! The weight is `[out_features, in_features]` and the bias `[out_features]`,
//! both initialised `U(-1/√in, 1/√in)` as PyTorch does. Any number of leading
//! batch dims is accepted: `[*, in] → [*, out]`.

mod autocast;

use super::summary::record;
use super::{init, py_bool, Module};
use crate::backend::LinearActivation;
use crate::tensor::check_operands;
use crate::{DType, Device, Error, Layout, Result, Tensor};

/// A fully connected layer.
#[derive(Module)]
pub struct Linear {
    /// `[out_features, in_features]`.
    #[module(param)]
    pub weight: Tensor,
    /// `[out_features]`, absent when built with `bias: false`.
    #[module(param)]
    pub bias: Option<Tensor>,
    in_features: usize,
    out_features: usize,
}

/// Options of [`Linear`] beyond its sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearConfig {
    /// Learn an additive bias (default true).
    pub bias: bool,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig { bias: true }
    }
}

impl Linear {
    /// `nn.Linear(in_features, out_features)`.
    pub fn new(in_features: usize, out_features: usize, device: &Device) -> Result<Linear> {
        Linear::with_config(in_features, out_features, LinearConfig::default(), device)
    }

    /// `nn.Linear(in_features, out_features, bias=config.bias)`.
    pub fn with_config(
        in_features: usize,
        out_features: usize,
        config: LinearConfig,
        device: &Device,
    ) -> Result<Linear> {
        let weight = init::default_uniform(&[out_features, in_features], in_features, device)?
            .requires_grad_()?;
        let bias = if config.bias {
            Some(init::default_uniform(&[out_features], in_features, device)?.requires_grad_()?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            in_features,
            out_features,
        })
    }

    /// Size of each input sample.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Size of each output sample.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

impl Module for Linear {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, linear(input, &self.weight, self.bias.as_ref()))
    }

    fn forward_then(&self, input: &Tensor, act: LinearActivation) -> Option<Result<Tensor>> {
        Some(linear_act(input, &self.weight, self.bias.as_ref(), act))
    }

    fn extra_repr(&self) -> String {
        format!(
            "in_features={}, out_features={}, bias={}",
            self.in_features,
            self.out_features,
            py_bool(self.bias.is_some())
        )
    }
}

/// `x Wᵀ + b` for `x: [*, in]`, `weight: [out, in]`, `bias: [out]`
/// (`torch.nn.functional.linear`).
pub fn linear(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    linear_act(input, weight, bias, LinearActivation::Identity)
}

/// `act(x Wᵀ + b)`: [`linear`] followed by an activation, run as one fused
/// op where the backend has it — the bias add and the activation happen as
/// the matrix product is written (one pass over the output on the CPU, one
/// kernel on a GPU) — and as the separate ops otherwise. [`super::Sequential`]
/// uses it for a `Linear` followed by a `ReLU`. Under autocast the product
/// is `F16`, the bias is added in `F32` and the result is `F16` (see
/// `linear/autocast.rs`).
pub fn linear_act(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    act: LinearActivation,
) -> Result<Tensor> {
    if crate::capture::hooked() {
        return crate::capture::traced(
            || crate::capture::Op::Linear { act },
            &[Some(input), Some(weight), bias],
            || linear_act(input, weight, bias, act),
        );
    }
    const OP: &str = "linear";
    let (out_f, in_f) = weight.dims2(OP, "weight [out, in]")?;
    if input.rank() == 0 || input.dims()[input.rank() - 1] != in_f {
        return Err(Error::shape(
            OP,
            format!("an input of shape [*, {in_f}]"),
            input.dims(),
        ));
    }
    if let Some(b) = bias {
        b.expect_shape(OP, "a bias", &[out_f])?;
    }
    // [*, in] as [rows, in]; the result is shaped back to [*, out].
    let lead = &input.dims()[..input.rank() - 1];
    let rows: usize = lead.iter().product();
    if let Some(half) = crate::amp::autocast_dtype(&input.device()) {
        for t in [input, weight].into_iter().chain(bias) {
            t.check_float(OP)?;
            input.device().check_same(&t.device(), OP)?;
        }
        let x = input.reshape_exact(&[rows, in_f])?;
        return autocast::linear(&x, weight, bias, act, half)?
            .reshape_exact(&out_shape(lead, out_f));
    }
    check_operands(OP, DType::F32, [input, weight].into_iter().chain(bias))?;
    let x = input.reshape_exact(&[rows, in_f])?;
    let wt = weight.t()?;
    let (xs, ws) = (x.storage(), wt.storage());
    let bias_storage = bias.map(|b| b.storage());
    let fused = x.backend().fused_linear(
        (&xs, x.layout()),
        (&ws, wt.layout()),
        bias_storage
            .as_ref()
            .zip(bias)
            .map(|(s, b)| (s, b.layout())),
        act,
    )?;
    let Some(out) = fused else {
        return composite(&x, &wt, bias, act)?.reshape_exact(&out_shape(lead, out_f));
    };
    let layout = Layout::contiguous(&[rows, out_f]);
    let needs = [
        x.requires_grad(),
        weight.requires_grad(),
        bias.is_some_and(|b| b.requires_grad()),
    ];
    // Kept for the gradient only where read: the output for the ReLU's
    // mask, `x` for the weight's gradient, the weight for `x`'s.
    let y = (act == LinearActivation::Relu)
        .then(|| Tensor::from_storage(out.clone(), layout.clone(), &x.device()));
    let xd = needs[1].then(|| x.detach());
    let wd = needs[0].then(|| weight.detach());
    let mut inputs = vec![&x, weight];
    inputs.extend(bias);
    let name = match act {
        LinearActivation::Identity => "linear",
        LinearActivation::Relu => "linear_relu",
    };
    let out = Tensor::from_op(name, out, layout, &inputs, move |g| {
        // The gradient before the activation, then those of x W^T + b.
        let gp = match &y {
            Some(y) => g.relu_grad(y)?,
            None => g.clone(),
        };
        let gx = wd.as_ref().map(|w| gp.matmul(w)).transpose()?;
        let gw = xd.as_ref().map(|x| gp.t()?.matmul(x)).transpose()?;
        let gb = needs[2].then(|| gp.sum(&[0], false)).transpose()?;
        Ok(vec![gx, gw, gb])
    });
    out.reshape_exact(&out_shape(lead, out_f))
}

/// The unfused ops, for backends without `fused_linear` (and, under
/// autocast, without `fused_linear_f16`).
fn composite(
    x: &Tensor,
    wt: &Tensor,
    bias: Option<&Tensor>,
    act: LinearActivation,
) -> Result<Tensor> {
    let mut y = x.matmul(wt)?;
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    match act {
        LinearActivation::Identity => Ok(y),
        LinearActivation::Relu => y.relu(),
    }
}

/// `lead` followed by `out_f`.
fn out_shape(lead: &[usize], out_f: usize) -> Vec<usize> {
    let mut shape = lead.to_vec();
    shape.push(out_f);
    shape
}
