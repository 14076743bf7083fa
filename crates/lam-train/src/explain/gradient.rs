//! The two things every attribution method asks of a model: the output
//! each sample's target selects ([`selected_outputs`]), and its gradient
//! with respect to the inputs ([`input_gradients`]), as captum's
//! `torch.autograd.grad(outputs, inputs)`: the model's parameter gradients
//! stay as they were.

use lam_core::autograd::{is_grad_enabled, no_grad};
use lam_core::nn::Module;
use lam_core::{DType, Error, Result, Tensor};

use super::target::Target;

/// `f(inputs)` at each sample's target, `[N]`, without recording a graph.
pub(crate) fn selected_outputs(
    op: &'static str,
    model: &dyn Module,
    inputs: &Tensor,
    target: &Target,
) -> Result<Tensor> {
    check_inputs(op, inputs)?;
    no_grad(|| {
        let out = model.forward(inputs)?;
        check_batch(op, inputs, &out)?;
        select(op, &out, target)
    })
}

/// `(f(inputs) at each target [N], ∂f/∂inputs)`, the gradient in the inputs' shape.
pub(crate) fn input_gradients(
    op: &'static str,
    model: &dyn Module,
    inputs: &Tensor,
    target: &Target,
) -> Result<(Tensor, Tensor)> {
    check_inputs(op, inputs)?;
    if !is_grad_enabled() {
        return Err(Error::Autograd(format!(
            "{op} needs gradients, but it was called inside no_grad"
        )));
    }
    let x = inputs.detach().requires_grad_()?;
    let _kept = KeptGradients::of(model);
    let out = model.forward(&x)?;
    check_batch(op, inputs, &out)?;
    if !out.requires_grad() {
        return Err(Error::Autograd(format!(
            "{op}: the model's output does not depend on its input through recorded ops \
             (does the model detach it, or read it back to the host?)"
        )));
    }
    let mask = target.mask(op, &out)?;
    out.backward_with(&mask)?;
    let grad = match x.grad() {
        Some(g) => g,
        // An input the output does not depend on has a zero gradient.
        None => Tensor::zeros(&inputs.shape(), &inputs.device())?,
    };
    let selected = no_grad(|| select(op, &out.detach(), target))?;
    Ok((selected, grad))
}

/// Sample `n` of `t` repeated `times` times in a row: `[N·times, ...]`.
pub(crate) fn repeat_each(t: &Tensor, times: usize) -> Result<Tensor> {
    if times == 1 {
        return Ok(t.clone());
    }
    let n = t.dims().first().copied().unwrap_or(0);
    let index: Vec<i32> = (0..n as i32)
        .flat_map(|i| std::iter::repeat_n(i, times))
        .collect();
    let len = index.len();
    t.index_select(0, &Tensor::from_vec_i32(index, &[len], &t.device())?)
}

/// The number of samples of `inputs` (its first dimension).
pub(crate) fn batch_size(inputs: &Tensor) -> usize {
    inputs.dims().first().copied().unwrap_or(0)
}

/// `[N, ...]` with `N ≥ 1`, `F32`.
pub(crate) fn check_inputs(op: &'static str, inputs: &Tensor) -> Result<()> {
    if inputs.rank() == 0 {
        return Err(Error::invalid(
            op,
            "inputs must be a batch [N, ...], found a scalar",
        ));
    }
    if inputs.numel() == 0 {
        return Err(Error::Empty { op });
    }
    if inputs.dtype() != DType::F32 {
        return Err(Error::DTypeMismatch {
            op,
            expected: DType::F32,
            found: inputs.dtype(),
        });
    }
    Ok(())
}

/// `baseline` broadcast to the shape of `inputs` (a batch of baselines, one
/// baseline `[1, ...]` or `[...]`, or a scalar `[]`).
pub(crate) fn broadcast_baseline(
    op: &'static str,
    baseline: Option<&Tensor>,
    inputs: &Tensor,
) -> Result<Tensor> {
    match baseline {
        None => Tensor::zeros(&inputs.shape(), &inputs.device()),
        Some(b) => {
            inputs.device().check_same(&b.device(), op)?;
            b.broadcast_to(&inputs.shape()).map_err(|_| {
                Error::shape(
                    op,
                    format!(
                        "a baseline that broadcasts to the inputs' shape {:?}",
                        inputs.dims()
                    ),
                    b.dims(),
                )
            })
        }
    }
}

fn select(op: &'static str, out: &Tensor, target: &Target) -> Result<Tensor> {
    let mask = target.mask(op, out)?;
    let picked = out.mul(&mask)?;
    if picked.rank() == 2 {
        picked.sum(&[1], false)
    } else {
        Ok(picked)
    }
}

fn check_batch(op: &'static str, inputs: &Tensor, out: &Tensor) -> Result<()> {
    let n = batch_size(inputs);
    if out.dims().first() != Some(&n) {
        return Err(Error::shape(
            op,
            format!("model outputs with the batch size {n} first"),
            out.dims(),
        ));
    }
    Ok(())
}

/// Puts the model's parameter gradients back as they were when dropped, so
/// that explaining a model never changes what its optimizer would do next.
struct KeptGradients(Vec<(Tensor, Option<Tensor>)>);

impl KeptGradients {
    fn of(model: &dyn Module) -> KeptGradients {
        KeptGradients(
            model
                .parameters()
                .into_iter()
                .map(|p| {
                    let g = p.grad();
                    (p, g)
                })
                .collect(),
        )
    }
}

impl Drop for KeptGradients {
    fn drop(&mut self) {
        for (p, g) in self.0.drain(..) {
            // `set_grad` fails only for a gradient of another shape, and
            // each is the parameter's own earlier gradient.
            let _ = p.set_grad(g);
        }
    }
}
