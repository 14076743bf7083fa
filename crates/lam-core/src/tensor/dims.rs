//! The words shape checks are written in, so that an op or layer states
//! what it accepts in a line and gets the error that names the op, what
//! was expected and what was found:
//!
//! - [`Tensor::dims2`], [`Tensor::dims3`], [`Tensor::dims4`]: the sizes of a
//!   tensor of that rank, or [`Error::RankMismatch`]
//!   (`let (o, i) = weight.dims2(op, "weight [out, in]")?`);
//! - [`Tensor::batched`]: a batch (rank `r`) or one sample (rank `r - 1`),
//!   as layers that accept both ask; any of a few ranks
//!   ([`Tensor::rank_in`]), exactly one ([`Tensor::expect_rank`]) or at
//!   least one ([`Tensor::expect_min_rank`]);
//! - [`Tensor::expect_shape`]: exactly one shape, or
//!   [`Error::ShapeMismatch`] (`bias.expect_shape(op, "a bias", &[o])?`);
//! - [`check_operands`]: one dtype and one device for several tensors.

use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// The sizes of a rank-2 tensor; `what` names it and its dims in the
    /// error ("weight [out, in]").
    pub(crate) fn dims2(&self, op: &'static str, what: &str) -> Result<(usize, usize)> {
        let [a, b] = self.dims_n(op, what)?;
        Ok((a, b))
    }

    /// The sizes of a rank-3 tensor (see [`Tensor::dims2`]).
    pub(crate) fn dims3(&self, op: &'static str, what: &str) -> Result<(usize, usize, usize)> {
        let [a, b, c] = self.dims_n(op, what)?;
        Ok((a, b, c))
    }

    /// The sizes of a rank-4 tensor (see [`Tensor::dims2`]).
    pub(crate) fn dims4(
        &self,
        op: &'static str,
        what: &str,
    ) -> Result<(usize, usize, usize, usize)> {
        let [a, b, c, d] = self.dims_n(op, what)?;
        Ok((a, b, c, d))
    }

    /// True for a batch of rank `rank`, false for one sample of rank
    /// `rank - 1`; any other rank is an error naming both layouts (`batch`,
    /// `sample`: "[N, C, H, W]", "[C, H, W]").
    pub(crate) fn batched(
        &self,
        op: &'static str,
        rank: usize,
        batch: &str,
        sample: &str,
    ) -> Result<bool> {
        let found = self.rank_in(op, &[(rank, batch), (rank.saturating_sub(1), sample)])?;
        Ok(found == rank)
    }

    /// The rank, if it is one of `accepted` (each with the layout it
    /// means, for the error: `[(2, "[N, C]"), (3, "[N, C, L]")]`).
    pub(crate) fn rank_in(&self, op: &'static str, accepted: &[(usize, &str)]) -> Result<usize> {
        let rank = self.rank();
        if accepted.iter().any(|&(r, _)| r == rank) {
            return Ok(rank);
        }
        let mut expected: Vec<String> = accepted
            .iter()
            .map(|(r, what)| format!("{r} ({what})"))
            .collect();
        let last = expected.pop().unwrap_or_default();
        let expected = if expected.is_empty() {
            last
        } else {
            format!("{} or {last}", expected.join(", "))
        };
        Err(Error::RankMismatch {
            op,
            expected,
            found: rank,
            shape: self.shape(),
        })
    }

    /// An error unless the rank is `rank`; `what` names the operand or its
    /// layout ("[N, C, H, W]").
    pub(crate) fn expect_rank(&self, op: &'static str, what: &str, rank: usize) -> Result<()> {
        self.layout().expect_rank(op, what, rank)
    }

    /// An error unless the rank is at least `rank`; `what` names the
    /// accepted layout ("[N, C, *]").
    pub(crate) fn expect_min_rank(&self, op: &'static str, what: &str, rank: usize) -> Result<()> {
        if self.rank() >= rank {
            return Ok(());
        }
        Err(Error::RankMismatch {
            op,
            expected: format!("at least {rank} ({what})"),
            found: self.rank(),
            shape: self.shape(),
        })
    }

    /// An error unless the shape is `want`; `what` names the operand ("a
    /// bias" gives "expected a bias of shape [3]").
    pub(crate) fn expect_shape(&self, op: &'static str, what: &str, want: &[usize]) -> Result<()> {
        self.layout().expect_shape(op, what, want)
    }

    fn dims_n<const N: usize>(&self, op: &'static str, what: &str) -> Result<[usize; N]> {
        self.expect_rank(op, what, N)?;
        let mut dims = [0; N];
        dims.copy_from_slice(self.dims());
        Ok(dims)
    }
}

/// An error naming `op` unless every operand has element type `dtype` and
/// lives on the first operand's device. Optional operands chain in:
/// `check_operands(op, DType::F32, [x, w].into_iter().chain(bias))`.
pub(crate) fn check_operands<'a>(
    op: &'static str,
    dtype: DType,
    operands: impl IntoIterator<Item = &'a Tensor>,
) -> Result<()> {
    let mut operands = operands.into_iter();
    let Some(first) = operands.next() else {
        return Ok(());
    };
    let device = first.device();
    for t in std::iter::once(first).chain(operands) {
        if t.dtype() != dtype {
            return Err(Error::DTypeMismatch {
                op,
                expected: dtype,
                found: t.dtype(),
            });
        }
        device.check_same(&t.device(), op)?;
    }
    Ok(())
}
