//! [`Linear`]: `y = x Wᵀ + b`, PyTorch's `nn.Linear`, and its functional
//! form [`linear`].
//!
//! The weight is `[out_features, in_features]` and the bias `[out_features]`,
//! both initialised `U(-1/√in, 1/√in)` as PyTorch does. Any number of leading
//! batch dims is accepted: `[*, in] → [*, out]`.

use super::{init, join, Entry, Module};
use crate::{Device, Error, Result, Tensor};

/// A fully connected layer.
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, absent when built with `bias: false`.
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
        linear(input, &self.weight, self.bias.as_ref())
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&join(prefix, "weight"), Entry::Parameter(&self.weight));
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), Entry::Parameter(b));
        }
    }
}

/// `x Wᵀ + b` for `x: [*, in]`, `weight: [out, in]`, `bias: [out]`
/// (`torch.nn.functional.linear`).
pub fn linear(input: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    if weight.rank() != 2 {
        return Err(Error::RankMismatch {
            op: "linear",
            expected: "2 (weight [out, in])".into(),
            found: weight.rank(),
            shape: weight.shape(),
        });
    }
    let (out_f, in_f) = (weight.dims()[0], weight.dims()[1]);
    if input.rank() == 0 || input.dims()[input.rank() - 1] != in_f {
        return Err(Error::shape(
            "linear",
            format!("an input of shape [*, {in_f}]"),
            input.dims(),
        ));
    }
    let y = input.matmul(&weight.t()?)?;
    match bias {
        None => Ok(y),
        Some(b) => {
            if b.dims() != [out_f] {
                return Err(Error::shape(
                    "linear",
                    format!("a bias of shape [{out_f}]"),
                    b.dims(),
                ));
            }
            y.add(b)
        }
    }
}
