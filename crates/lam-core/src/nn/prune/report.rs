//! [`SparsityReport`]: the zeros of each parameter of a model.

use std::fmt;

use crate::nn::Module;
use crate::Result;

/// Zeros per parameter, from [`super::Pruning::report`].
#[derive(Debug, Clone, PartialEq)]
pub struct SparsityReport {
    pub rows: Vec<SparsityRow>,
}

/// One parameter of a [`SparsityReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct SparsityRow {
    pub name: String,
    pub numel: usize,
    pub zeros: usize,
}

impl SparsityRow {
    /// The fraction of zeros, 0 for an empty tensor.
    pub fn sparsity(&self) -> f64 {
        if self.numel == 0 {
            0.0
        } else {
            self.zeros as f64 / self.numel as f64
        }
    }
}

impl SparsityReport {
    /// Zeros and elements over every parameter.
    pub fn total(&self) -> SparsityRow {
        SparsityRow {
            name: "total".into(),
            numel: self.rows.iter().map(|r| r.numel).sum(),
            zeros: self.rows.iter().map(|r| r.zeros).sum(),
        }
    }
}

pub(super) fn report(model: &dyn Module) -> Result<SparsityReport> {
    let rows = model
        .named_parameters()
        .into_iter()
        .map(|(name, t)| {
            let values = t.to_vec()?;
            Ok(SparsityRow {
                name,
                numel: values.len(),
                zeros: values.iter().filter(|&&v| v == 0.0).count(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(SparsityReport { rows })
}

impl fmt::Display for SparsityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(9);
        writeln!(
            f,
            "{:<width$}  {:>10}  {:>10}  {:>8}",
            "parameter", "elements", "zeros", "sparsity"
        )?;
        for r in self.rows.iter().chain(std::iter::once(&self.total())) {
            writeln!(
                f,
                "{:<width$}  {:>10}  {:>10}  {:>7.2}%",
                r.name,
                r.numel,
                r.zeros,
                100.0 * r.sparsity()
            )?;
        }
        Ok(())
    }
}
