//! [`Target`]: which output of each sample an attribution explains
//! (captum's `target=` argument).

use lam_core::{Error, Result, Tensor};

/// The output each sample's attribution explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The model gives one value per sample (`[N]` or `[N, 1]` outputs):
    /// explain that value (captum's `target=None`).
    Output,
    /// Column `c` of `[N, C]` outputs for every sample (`target=c`).
    Class(usize),
    /// Column `classes[n]` for sample `n` (`target=[...]`).
    PerSample(Vec<usize>),
}

impl Target {
    /// The selection as a 0/1 tensor of `output`'s shape: one 1 per sample.
    pub(crate) fn mask(&self, op: &'static str, output: &Tensor) -> Result<Tensor> {
        let dims = output.dims().to_vec();
        let n = dims.first().copied().unwrap_or(0);
        let columns = match dims.len() {
            1 => 1,
            2 => dims[1],
            _ => {
                return Err(Error::invalid(
                    op,
                    format!(
                        "attribution explains [N] or [N, C] model outputs, found {dims:?}: \
                         reshape the output in the model (a Flatten layer)"
                    ),
                ))
            }
        };
        let column_of = |i: usize| -> Result<usize> {
            let c = match self {
                Target::Output if columns == 1 => 0,
                Target::Output => {
                    return Err(Error::invalid(
                        op,
                        format!(
                            "the model gives {columns} outputs per sample (shape {dims:?}): \
                             say which to explain with Target::Class or Target::PerSample"
                        ),
                    ))
                }
                Target::Class(c) => *c,
                Target::PerSample(cs) => cs[i],
            };
            if c >= columns {
                return Err(Error::invalid(
                    op,
                    format!("target class {c} is out of range for outputs of shape {dims:?}"),
                ));
            }
            Ok(c)
        };
        if let Target::PerSample(cs) = self {
            if cs.len() != n {
                return Err(Error::invalid(
                    op,
                    format!("{} targets for a batch of {n} samples", cs.len()),
                ));
            }
        }
        let mut mask = vec![0.0f32; n * columns];
        for i in 0..n {
            mask[i * columns + column_of(i)?] = 1.0;
        }
        Tensor::from_slice(&mask, &dims, &output.device())
    }

    /// The targets of a batch that holds the original batch `times` times
    /// over, one copy after another (`[b₀, b₁, b₀, b₁, ...]`).
    pub(crate) fn tile(&self, times: usize) -> Target {
        match self {
            Target::PerSample(cs) => Target::PerSample(cs.repeat(times)),
            other => other.clone(),
        }
    }

    /// The targets of a batch that holds each original sample `times` times
    /// in a row (`[b₀, b₀, b₁, b₁, ...]`).
    pub(crate) fn repeat_each(&self, times: usize) -> Target {
        match self {
            Target::PerSample(cs) => Target::PerSample(
                cs.iter()
                    .flat_map(|&c| std::iter::repeat_n(c, times))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}
