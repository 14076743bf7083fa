//! Matrix products with `torch.matmul` semantics: vector·vector, matrix ×
//! vector, and batched products with broadcast batch dims. Transposed inputs
//! reach the backend as strided views, never as copies.
//!
//! Operands are both `F32` or both `F16`. An `F16` product is `F16`, as
//! PyTorch's, with the sums accumulated in `f32` (the product of two halves
//! is exact in `f32`) and rounded to `F16` once at the end: the backend's
//! `fused_matmul_f16` where it has one (the GPU kernels read the halves
//! directly), else its `f32` product of the operands cast to `F32`. Under
//! [`crate::amp::autocast`] float operands are cast to the autocast dtype
//! first.

use crate::layout::broadcast_shapes;
use crate::{Backend, DType, Error, Layout, Result, Storage, Tensor};

impl Tensor {
    /// Matrix product following `torch.matmul`'s rules.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::MatMul,
                &[Some(self), Some(rhs)],
                || self.matmul(rhs),
            );
        }
        self.device().check_same(&rhs.device(), "matmul")?;
        self.check_float("matmul")?;
        rhs.check_float("matmul")?;
        if let Some(to) = crate::amp::autocast_dtype(&self.device()) {
            if self.dtype() != to || rhs.dtype() != to {
                return self.to_dtype(to)?.matmul(&rhs.to_dtype(to)?);
            }
        }
        if rhs.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "matmul",
                expected: self.dtype(),
                found: rhs.dtype(),
            });
        }
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::RankMismatch {
                op: "matmul",
                expected: "at least 1".into(),
                found: 0,
                shape: if self.rank() == 0 {
                    self.shape()
                } else {
                    rhs.shape()
                },
            });
        }
        // `[.., M, K] × [K, N]` is one `[(..·M), K] × [K, N]` product, as
        // PyTorch folds it: the batch of products against one matrix (an
        // RNN's input projection over every time step, say) becomes a single
        // larger one, and the matrix's gradient one product rather than a
        // product per batch element summed afterwards.
        let r = self.rank();
        if r > 2 && rhs.rank() == 2 && self.dims()[r - 1] == rhs.dims()[0] {
            let k = self.dims()[r - 1];
            let rows: usize = self.dims()[..r - 1].iter().product();
            let out = self
                .reshape(&[rows as isize, k as isize])?
                .matmul_nd(rhs, self.dtype())?;
            let mut shape = self.shape();
            shape[r - 1] = rhs.dims()[1];
            return out.reshape_exact(&shape);
        }
        // Promote vectors to matrices, multiply, then drop the added dims.
        let a = if self.rank() == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rhs.rank() == 1 {
            rhs.unsqueeze(-1)?
        } else {
            rhs.clone()
        };
        let mut out = a.matmul_nd(&b, self.dtype())?;
        if self.rank() == 1 {
            out = out.squeeze(-2)?;
        }
        if rhs.rank() == 1 {
            out = out.squeeze(-1)?;
        }
        Ok(out)
    }

    /// The product of two `F16` matrices as `to`: `F16`, or its cast to
    /// `F32` (the values of the `F16` product, widened), in one backend call
    /// where the backend writes either (`fused_matmul_f16`). What a
    /// gradient rule whose leaf is `F32` computes: the product of halves,
    /// then the cast's rule.
    pub(crate) fn matmul_as(&self, rhs: &Tensor, to: DType) -> Result<Tensor> {
        let halves = self.dtype() == DType::F16 && rhs.dtype() == DType::F16;
        if !halves || self.rank() != 2 || rhs.rank() != 2 {
            return self.matmul(rhs)?.to_dtype(to);
        }
        self.device().check_same(&rhs.device(), "matmul")?;
        self.matmul_nd(rhs, to)
    }

    /// `[.., M, K] × [.., K, N]` with broadcast batch dims, as `to` (the
    /// operands' dtype, or `F32` for `F16` operands: their product's cast).
    fn matmul_nd(&self, rhs: &Tensor, to: DType) -> Result<Tensor> {
        let (ra, rb) = (self.rank(), rhs.rank());
        let (m, k) = (self.dims()[ra - 2], self.dims()[ra - 1]);
        let (k2, n) = (rhs.dims()[rb - 2], rhs.dims()[rb - 1]);
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!("[.., {k}, N] to multiply {:?}", self.dims()),
                rhs.dims(),
            ));
        }
        let batch = broadcast_shapes("matmul", &self.dims()[..ra - 2], &rhs.dims()[..rb - 2])?;
        let b: usize = batch.iter().product();
        crate::layout::checked_numel("matmul", &[b, m, n])?;
        let la = batched_layout(self, &batch, m, k, b)?;
        let lb = batched_layout(rhs, &batch, k, n, b)?;
        let dtype = self.dtype();
        let out = product(
            &*self.backend(),
            (&la.0.storage(), &la.1),
            (&lb.0.storage(), &lb.1),
            dtype,
            to,
        )?;
        let mut shape = batch;
        shape.extend([m, n]);
        let (a_shape, b_shape) = (self.shape(), rhs.shape());
        let (req_a, req_b) = (self.requires_grad(), rhs.requires_grad());
        // Each operand is kept only for the other's gradient.
        let ad = req_b.then(|| self.detach());
        let bd = req_a.then(|| rhs.detach());
        let (a_col_major, b_col_major) = (is_col_major(self.layout()), is_col_major(rhs.layout()));
        Ok(Tensor::from_op(
            "matmul",
            out,
            Layout::contiguous(&shape),
            &[self, rhs],
            move |g| {
                // The gradient of an F16 product is an F16 product too (an
                // F32 `g` of its widened output goes through the cast's rule).
                let g = &g.to_dtype(dtype)?;
                // dA = G Bᵀ, dB = Aᵀ G, each summed over broadcast batch dims.
                // An operand that is a transposed view (a Linear weight is
                // used as Wᵀ) gets its gradient computed transposed, as
                // (B Gᵀ)ᵀ or (Gᵀ A)ᵀ: the same product, but the transpose
                // back to the stored layout is then a free view rather than
                // a strided copy when the gradient is accumulated.
                let ga = match &bd {
                    None => None,
                    Some(bd) if a_col_major => {
                        Some(bd.matmul_nd(&g.t()?, dtype)?.t()?.sum_to_shape(&a_shape)?)
                    }
                    Some(bd) => Some(g.matmul_nd(&bd.t()?, dtype)?.sum_to_shape(&a_shape)?),
                };
                let gb = match &ad {
                    None => None,
                    Some(ad) if b_col_major => {
                        Some(g.t()?.matmul_nd(ad, dtype)?.t()?.sum_to_shape(&b_shape)?)
                    }
                    Some(ad) => Some(ad.t()?.matmul_nd(g, dtype)?.sum_to_shape(&b_shape)?),
                };
                Ok(vec![ga, gb])
            },
        ))
    }
}

/// The backend's batched product of two views of `dtype`, as `to`. `F16`
/// operands go to the backend's `fused_matmul_f16`; a backend that declines
/// it (the CPU) multiplies them cast to `F32`, and the result is rounded to
/// `F16` (and for `to` `F32` widened back).
fn product(
    backend: &dyn Backend,
    lhs: (&Storage, &Layout),
    rhs: (&Storage, &Layout),
    dtype: DType,
    to: DType,
) -> Result<Storage> {
    if dtype != DType::F16 {
        return backend.matmul(lhs, rhs);
    }
    if let Some(out) = backend.fused_matmul_f16(lhs, rhs, to)? {
        return Ok(out);
    }
    let (a, b) = (
        backend.cast(lhs, DType::F32)?,
        backend.cast(rhs, DType::F32)?,
    );
    let (la, lb) = (
        Layout::contiguous(&lhs.1.shape),
        Layout::contiguous(&rhs.1.shape),
    );
    let c = backend.matmul((&a, &la), (&b, &lb))?;
    let (batch, m, n) = (lhs.1.shape[0], lhs.1.shape[1], rhs.1.shape[2]);
    let out = Layout::contiguous(&[batch, m, n]);
    let halves = backend.cast((&c, &out), DType::F16)?;
    if to == DType::F16 {
        return Ok(halves);
    }
    backend.cast((&halves, &out), to)
}

/// True when the last two dims of `l` are stored column by column (a
/// transposed matrix): rows are adjacent and columns are not.
fn is_col_major(l: &Layout) -> bool {
    let r = l.rank();
    r >= 2
        && l.shape[r - 2] > 1
        && l.shape[r - 1] > 1
        && l.strides[r - 2] == 1
        && l.strides[r - 1] != 1
}

/// A 3-d `[B, rows, cols]` view of `t` broadcast to `batch`, copying only
/// when the batch dims cannot be merged without one.
fn batched_layout(
    t: &Tensor,
    batch: &[usize],
    rows: usize,
    cols: usize,
    b: usize,
) -> Result<(Tensor, Layout)> {
    let mut full = batch.to_vec();
    full.extend([rows, cols]);
    let view = t.layout().broadcast_to(&full)?;
    let rank = full.len();
    if let Some(l) = merge_batch(&view, rank, b) {
        return Ok((t.clone(), l));
    }
    let dense = t.broadcast_to(&full)?.contiguous()?;
    let l = merge_batch(dense.layout(), rank, b)
        .ok_or_else(|| Error::invalid("matmul", "could not form batched layout"))?;
    Ok((dense, l))
}

/// True when `t`'s leading (batch) dims merge into one stride, so that a
/// product reads `t` as it is (see `batched_layout`): heads split out of a
/// `[B, L, H·E]` projection as `[B, H, L, E]` do not.
pub(crate) fn batch_merges(t: &Tensor) -> bool {
    let r = t.rank();
    r <= 3 || merge_batch(t.layout(), r, t.dims()[..r - 2].iter().product()).is_some()
}

/// Merges the leading `rank - 2` dims of `l` into one batch dim if their
/// strides allow it (each dim's stride = next stride × next size, or all 0).
fn merge_batch(l: &Layout, rank: usize, b: usize) -> Option<Layout> {
    let nb = rank - 2;
    let batch_stride = if nb == 0 {
        0
    } else {
        let dims: Vec<(usize, usize)> = (0..nb)
            .map(|i| (l.shape[i], l.strides[i]))
            .filter(|(d, _)| *d != 1)
            .collect();
        if dims.iter().all(|(_, s)| *s == 0) {
            0
        } else {
            for w in dims.windows(2) {
                if w[0].1 != w[1].0 * w[1].1 {
                    return None;
                }
            }
            dims[dims.len() - 1].1
        }
    };
    Some(Layout {
        shape: vec![b, l.shape[rank - 2], l.shape[rank - 1]],
        strides: vec![batch_stride, l.strides[rank - 2], l.strides[rank - 1]],
        offset: l.offset,
    })
}
