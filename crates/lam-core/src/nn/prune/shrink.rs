//! Structured pruning for real: a layer pair rebuilt without the pruned
//! output channels (or neurons) of the first layer and the matching inputs
//! of the second, so both matrix products are smaller.

use crate::nn::{Conv2d, Conv2dConfig, Linear, LinearConfig, Module};
use crate::optim::state::fresh_copy;
use crate::{Error, Result, Tensor};

/// The slices along `dim` of `mask` that are not all zero: the channels a
/// structured mask keeps.
pub fn kept_channels(mask: &Tensor, dim: usize) -> Result<Vec<usize>> {
    if dim >= mask.rank() {
        return Err(Error::invalid(
            "kept_channels",
            format!(
                "dim {dim} is out of range for a mask of shape {:?}",
                mask.dims()
            ),
        ));
    }
    let shape = mask.shape();
    let inner: usize = shape[dim + 1..].iter().product();
    let mut kept = vec![false; shape[dim]];
    for (i, &m) in mask.to_vec()?.iter().enumerate() {
        if m != 0.0 {
            kept[(i / inner.max(1)) % shape[dim]] = true;
        }
    }
    Ok((0..shape[dim]).filter(|&c| kept[c]).collect())
}

/// `first` with only the output neurons `keep`, and `next` with only those
/// inputs: the same function where the dropped neurons were zero.
pub fn shrink_linear(first: &Linear, next: &Linear, keep: &[usize]) -> Result<(Linear, Linear)> {
    const OP: &str = "shrink_linear";
    check_pair(OP, first.out_features(), next.in_features(), keep)?;
    let (w1, b1) = (
        first.weight.detach(),
        first.bias.as_ref().map(Tensor::detach),
    );
    let (w2, b2) = (next.weight.detach(), next.bias.as_ref().map(Tensor::detach));
    let index = index_of(keep, &w1)?;
    let dev = w1.device();
    let a = Linear::with_config(
        first.in_features(),
        keep.len(),
        LinearConfig { bias: b1.is_some() },
        &dev,
    )?;
    let b = Linear::with_config(
        keep.len(),
        next.out_features(),
        LinearConfig { bias: b2.is_some() },
        &dev,
    )?;
    copy_into(
        &a,
        &w1.index_select(0, &index)?,
        b1.map(|b| b.index_select(0, &index)).transpose()?,
    )?;
    copy_into(&b, &w2.index_select(1, &index)?, b2)?;
    Ok((a, b))
}

/// `first` with only the output channels `keep`, and `next` with only
/// those input channels (both ungrouped).
pub fn shrink_conv2d(first: &Conv2d, next: &Conv2d, keep: &[usize]) -> Result<(Conv2d, Conv2d)> {
    const OP: &str = "shrink_conv2d";
    if first.groups() != 1 || next.groups() != 1 {
        return Err(Error::invalid(OP, "grouped convolutions cannot be shrunk"));
    }
    let (w1, b1) = (
        first.weight.detach(),
        first.bias.as_ref().map(Tensor::detach),
    );
    let (w2, b2) = (next.weight.detach(), next.bias.as_ref().map(Tensor::detach));
    check_pair(OP, w1.dims()[0], w2.dims()[1], keep)?;
    let index = index_of(keep, &w1)?;
    let dev = w1.device();
    let rebuild = |conv: &Conv2d, inputs: usize, outputs: usize, bias: bool| {
        let w = conv.window();
        let config = Conv2dConfig::default()
            .stride(w.stride)
            .padding(w.padding)
            .dilation(w.dilation)
            .bias(bias);
        Conv2d::with_config(inputs, outputs, w.kernel, config, &dev)
    };
    let a = rebuild(first, w1.dims()[1], keep.len(), b1.is_some())?;
    let b = rebuild(next, keep.len(), w2.dims()[0], b2.is_some())?;
    copy_into(
        &a,
        &w1.index_select(0, &index)?,
        b1.map(|b| b.index_select(0, &index)).transpose()?,
    )?;
    copy_into(&b, &w2.index_select(1, &index)?, b2)?;
    Ok((a, b))
}

fn check_pair(op: &'static str, outputs: usize, next_inputs: usize, keep: &[usize]) -> Result<()> {
    if outputs != next_inputs {
        return Err(Error::invalid(
            op,
            format!(
                "the first layer has {outputs} outputs but the next takes {next_inputs} inputs"
            ),
        ));
    }
    let sorted = keep.windows(2).all(|w| w[0] < w[1]);
    if keep.is_empty() || !sorted || keep.iter().any(|&k| k >= outputs) {
        return Err(Error::invalid(
            op,
            format!(
                "keep must be increasing indices below {outputs}, at least one, found {keep:?}"
            ),
        ));
    }
    Ok(())
}

/// Copies of `value` (and `bias`) written into `layer`'s freshly made
/// parameters. Copies, since `set_data` would share a dense value's buffer
/// (an unpruned bias is the original layer's own), and the optimizers
/// update parameters in place: fine-tuning the shrunk layers would then
/// change the original model too.
fn copy_into(layer: &dyn Module, weight: &Tensor, bias: Option<Tensor>) -> Result<()> {
    let copy = |t: &Tensor| fresh_copy(t, &t.device());
    for (name, t) in layer.named_parameters() {
        match (name.as_str(), &bias) {
            ("weight", _) => t.set_data(&copy(weight)?)?,
            ("bias", Some(b)) => t.set_data(&copy(b)?)?,
            _ => {}
        }
    }
    Ok(())
}

fn index_of(keep: &[usize], like: &Tensor) -> Result<Tensor> {
    let index: Vec<i32> = keep.iter().map(|&k| k as i32).collect();
    let t = Tensor::from_vec_i32(index, &[keep.len()], &like.device())?;
    Ok(t)
}
