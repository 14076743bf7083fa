//! Activations as layers, with PyTorch's names and defaults, so they can sit
//! in a [`super::Sequential`]: [`ReLU`], [`LeakyReLU`], [`PReLU`],
//! [`ReLU6`], [`ELU`], [`GELU`], [`SiLU`], [`Sigmoid`], [`Tanh`],
//! [`Softplus`], [`Softmax`], [`LogSoftmax`]; and the functional forms that
//! are not already `Tensor` methods: [`prelu`], [`gelu_tanh`] and
//! [`softplus`] with `beta` and `threshold` (plus thin
//! function wrappers of the methods, for code written in the
//! `torch.nn.functional` style).
//!
//! Only [`PReLU`] has a parameter (its learned negative slope `weight`).

use super::summary::record;
use super::{py_float, Module};
use crate::backend::LinearActivation;
use crate::{Device, Error, Result, Tensor};

/// A stateless activation layer that applies one tensor function.
macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Module)]
        pub struct $name;

        impl Module for $name {
            fn forward(&self, $x: &Tensor) -> Result<Tensor> {
                record(self, $body)
            }
        }
    };
}

/// `nn.ReLU`: `max(x, 0)`. In a [`super::Sequential`] right after a
/// `Linear`, it is applied inside the `Linear`'s fused op.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Module)]
pub struct ReLU;

impl Module for ReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        record(self, x.relu())
    }

    fn as_activation(&self) -> Option<LinearActivation> {
        Some(LinearActivation::Relu)
    }
}

activation_layer!(
    /// `nn.ReLU6`: `min(max(x, 0), 6)`.
    ReLU6, |x| x.relu6()
);
activation_layer!(
    /// `nn.SiLU`: `x · σ(x)`.
    SiLU, |x| x.silu()
);
activation_layer!(
    /// `nn.Sigmoid`: `1 / (1 + e^−x)`.
    Sigmoid, |x| x.sigmoid()
);
activation_layer!(
    /// `nn.Tanh`.
    Tanh, |x| x.tanh()
);

/// `nn.LeakyReLU`: `x` for `x > 0`, else `negative_slope · x`.
#[derive(Debug, Clone, Copy, PartialEq, Module)]
pub struct LeakyReLU {
    /// Slope for negative inputs (default 0.01).
    pub negative_slope: f32,
}

impl LeakyReLU {
    /// `nn.LeakyReLU(negative_slope)`.
    pub fn new(negative_slope: f32) -> LeakyReLU {
        LeakyReLU { negative_slope }
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU {
            negative_slope: 0.01,
        }
    }
}

impl Module for LeakyReLU {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, input.leaky_relu(self.negative_slope))
    }

    fn extra_repr(&self) -> String {
        format!("negative_slope={}", py_float(self.negative_slope))
    }
}

/// `nn.ELU`: `x` for `x > 0`, else `alpha · (e^x − 1)`.
#[allow(clippy::upper_case_acronyms)] // PyTorch's name.
#[derive(Debug, Clone, Copy, PartialEq, Module)]
pub struct ELU {
    /// Scale of the negative part (default 1).
    pub alpha: f32,
}

impl ELU {
    /// `nn.ELU(alpha)`.
    pub fn new(alpha: f32) -> ELU {
        ELU { alpha }
    }
}

impl Default for ELU {
    fn default() -> Self {
        ELU { alpha: 1.0 }
    }
}

impl Module for ELU {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, input.elu(self.alpha))
    }

    fn extra_repr(&self) -> String {
        format!("alpha={}", py_float(self.alpha))
    }
}

/// Which GELU formula [`GELU`] uses (PyTorch's `approximate` argument).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GeluApproximate {
    /// The exact `x · Φ(x)` with the error function (default).
    #[default]
    None,
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    Tanh,
}

/// `nn.GELU`: `x · Φ(x)`, exact by default.
#[allow(clippy::upper_case_acronyms)] // PyTorch's name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Module)]
pub struct GELU {
    /// The formula (default exact).
    #[module(skip)]
    pub approximate: GeluApproximate,
}

impl GELU {
    /// `nn.GELU(approximate=...)`.
    pub fn new(approximate: GeluApproximate) -> GELU {
        GELU { approximate }
    }
}

impl Module for GELU {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = match self.approximate {
            GeluApproximate::None => input.gelu(),
            GeluApproximate::Tanh => gelu_tanh(input),
        };
        record(self, y)
    }

    fn extra_repr(&self) -> String {
        match self.approximate {
            GeluApproximate::None => "approximate='none'".into(),
            GeluApproximate::Tanh => "approximate='tanh'".into(),
        }
    }
}

/// `nn.Softplus`: `log(1 + e^(β x)) / β`, and `x` itself where
/// `β x > threshold` (where the two agree to float precision).
#[derive(Debug, Clone, Copy, PartialEq, Module)]
pub struct Softplus {
    /// `β` (default 1): larger is closer to ReLU. Must be finite and non-zero.
    pub beta: f32,
    /// Above this `β x` the output is `x` (default 20).
    pub threshold: f32,
}

impl Softplus {
    /// `nn.Softplus(beta, threshold)`.
    pub fn new(beta: f32, threshold: f32) -> Softplus {
        Softplus { beta, threshold }
    }
}

impl Default for Softplus {
    fn default() -> Self {
        Softplus {
            beta: 1.0,
            threshold: 20.0,
        }
    }
}

impl Module for Softplus {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, softplus(input, self.beta, self.threshold))
    }

    fn extra_repr(&self) -> String {
        format!(
            "beta={}, threshold={}",
            py_float(self.beta),
            py_float(self.threshold)
        )
    }
}

/// `nn.Softmax(dim)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Module)]
pub struct Softmax {
    /// The dim that sums to one (negative counts from the end).
    pub dim: isize,
}

impl Softmax {
    /// `nn.Softmax(dim)`.
    pub fn new(dim: isize) -> Softmax {
        Softmax { dim }
    }
}

impl Module for Softmax {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, input.softmax(self.dim))
    }

    fn extra_repr(&self) -> String {
        format!("dim={}", self.dim)
    }
}

/// `nn.LogSoftmax(dim)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Module)]
pub struct LogSoftmax {
    /// The dim normalised over (negative counts from the end).
    pub dim: isize,
}

impl LogSoftmax {
    /// `nn.LogSoftmax(dim)`.
    pub fn new(dim: isize) -> LogSoftmax {
        LogSoftmax { dim }
    }
}

impl Module for LogSoftmax {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, input.log_softmax(self.dim))
    }

    fn extra_repr(&self) -> String {
        format!("dim={}", self.dim)
    }
}

/// `nn.PReLU`: `max(0, x) + w · min(0, x)` with a learned slope `w`, one
/// shared or one per channel (dim 1 of the input).
#[derive(Module)]
pub struct PReLU {
    /// `[num_parameters]`, initialised to `init` (PyTorch's 0.25).
    #[module(param)]
    pub weight: Tensor,
}

impl PReLU {
    /// `nn.PReLU(num_parameters)` with the default initial slope 0.25.
    pub fn new(num_parameters: usize, device: &Device) -> Result<PReLU> {
        PReLU::with_init(num_parameters, 0.25, device)
    }

    /// `nn.PReLU(num_parameters, init)`.
    pub fn with_init(num_parameters: usize, init: f32, device: &Device) -> Result<PReLU> {
        if num_parameters == 0 {
            return Err(Error::invalid("PReLU", "num_parameters must be positive"));
        }
        Ok(PReLU {
            weight: Tensor::full(&[num_parameters], init, device)?.requires_grad_()?,
        })
    }
}

impl Module for PReLU {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        record(self, prelu(input, &self.weight))
    }

    fn extra_repr(&self) -> String {
        format!("num_parameters={}", self.weight.numel())
    }
}

/// `torch.nn.functional.prelu(input, weight)`: `weight` has one element, or
/// one per channel (dim 1 of `input`).
pub fn prelu(input: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let input = &input.float32("prelu")?;
    let n = weight.numel();
    weight.rank_in(
        "prelu",
        &[(0, "one weight"), (1, "weight [num_parameters]")],
    )?;
    let slope = if n == 1 {
        weight.reshape_exact(&[])?
    } else {
        if input.rank() < 2 || input.dims()[1] != n {
            return Err(Error::shape(
                "prelu",
                format!("an input with {n} channels in dim 1 (one per slope)"),
                input.dims(),
            ));
        }
        let mut shape = vec![1; input.rank()];
        shape[1] = n;
        weight.reshape_exact(&shape)?
    };
    // `where` rather than relu(x) + w·min(0, x) so that x = 0 gets slope w,
    // as PyTorch's kernel gives it. The slope multiplies x with its positive
    // part selected away (not multiplied by a 0 mask), so the slope's
    // gradient never meets 0·inf.
    let positive = input.gt_scalar(0.0)?;
    let negative_part = Tensor::where_cond(&positive, &Tensor::zeros_like(input)?, input)?;
    Tensor::where_cond(&positive, input, &negative_part.mul(&slope)?)
}

/// GELU with the tanh approximation (`F.gelu(x, approximate="tanh")`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    let c = (2.0 / std::f32::consts::PI).sqrt();
    // x³ as x·x² rather than pow: pow of a negative base is undefined in WGSL.
    let cube = x.square()?.mul(x)?;
    let inner = x.add(&cube.mul_scalar(0.044715)?)?.mul_scalar(c)?;
    x.mul(&inner.tanh()?.add_scalar(1.0)?)?.mul_scalar(0.5)
}

/// `F.softplus(x, beta, threshold)`: `log(1 + e^(β x)) / β`, and `x` where
/// `β x > threshold` (its gradient there is 1, as PyTorch's). An error for
/// a `beta` that is zero or not finite, or a NaN `threshold`.
pub fn softplus(x: &Tensor, beta: f32, threshold: f32) -> Result<Tensor> {
    let op = "softplus";
    let x = &x.float32(op)?;
    if beta == 0.0 || !beta.is_finite() || threshold.is_nan() {
        return Err(Error::invalid(
            op,
            format!("beta must be finite and non-zero and threshold a number, found beta {beta} and threshold {threshold}"),
        ));
    }
    let scaled = if beta == 1.0 {
        x.clone()
    } else {
        x.mul_scalar(beta)?
    };
    let smooth = scaled.softplus()?;
    let smooth = if beta == 1.0 {
        smooth
    } else {
        smooth.div_scalar(beta)?
    };
    // Selected rather than blended, so the linear side's gradient is exactly
    // 1 and the other side's never meets it.
    Tensor::where_cond(&scaled.gt_scalar(threshold)?, x, &smooth)
}

/// `F.relu`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.relu()
}

/// `F.leaky_relu(x, negative_slope)`.
pub fn leaky_relu(x: &Tensor, negative_slope: f32) -> Result<Tensor> {
    x.leaky_relu(negative_slope)
}

/// `F.relu6`.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    x.relu6()
}

/// `F.elu(x, alpha)`.
pub fn elu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    x.elu(alpha)
}

/// `F.gelu` (exact).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.gelu()
}

/// `F.silu`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    x.silu()
}

/// `torch.sigmoid`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    x.sigmoid()
}

/// `torch.tanh`.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    x.tanh()
}

/// `F.softmax(x, dim)`.
pub fn softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    x.softmax(dim)
}

/// `F.log_softmax(x, dim)`.
pub fn log_softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    x.log_softmax(dim)
}
