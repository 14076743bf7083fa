//! How the backward walk adds up the gradients an input receives. Most
//! are whole and are summed. A view of part of its input (`narrow`,
//! `slice_step`) records a [`Piece`] instead of a rule that pads: its rule
//! returns the view's own gradient and the walk places it, writing the
//! pieces of one input into one buffer it made itself (copied where no
//! earlier piece wrote, added where one may have), where a zero-filled pad
//! per piece and an add per pair would each have filled or read the whole
//! input.

use std::collections::HashMap;

use crate::{Result, Tensor};

/// Where a view's gradient lies in its input's: the view's gradient placed
/// at `start`, `start + step`, ... along `dim`, zeros elsewhere. The rule
/// of such a view returns the view's gradient as it is and the walk places
/// it (`accumulate`), writing the pieces of one input into one buffer: a
/// packed weight used as three narrowed views (MultiheadAttention's
/// in-projection) then costs one fill and three copies of a third of it,
/// where a zero-filled pad per piece and an add per pair would each have
/// filled or read the whole weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    pub(crate) dim: usize,
    pub(crate) start: usize,
    pub(crate) step: usize,
}

/// The part of an input's gradient one piece covers: `len` entries from
/// `start`, `step` apart, along `dim`.
#[derive(Debug, Clone, Copy)]
struct Region {
    dim: usize,
    start: usize,
    len: usize,
    step: usize,
}

impl Region {
    /// Whether the two may share an entry (only unit-step ranges along the
    /// same dim are told apart; anything else counts as shared).
    fn may_meet(&self, other: &Region) -> bool {
        let unit = self.step == 1 && other.step == 1 && self.dim == other.dim;
        let apart = self.start + self.len <= other.start || other.start + other.len <= self.start;
        !(unit && apart)
    }
}

/// A gradient the walk is accumulating in a buffer it made itself (a pad or
/// a sum, which no rule holds), with the regions pieces have written
/// (`None`: all of it may hold values).
pub(super) struct Owned {
    written: Option<Vec<Region>>,
}

/// Adds `ig`, a gradient for the input keyed `key` (of shape `shape`), to
/// what `grads` holds for it: the whole gradient, or for a view's `piece`
/// the view's part of it, which goes into the input's gradient in place
/// where that is a buffer the walk made (`owned`): copied where no earlier
/// piece wrote, added where one may have.
pub(super) fn accumulate(
    grads: &mut HashMap<u64, Tensor>,
    owned: &mut HashMap<u64, Owned>,
    key: u64,
    shape: &[usize],
    ig: Tensor,
    piece: Option<Piece>,
) -> Result<()> {
    if let Some(p) = piece.filter(|_| ig.numel() == 0) {
        // An empty view: its gradient is all zeros of the input's shape.
        let zeros = ig.pad_into(shape, p.dim, p.start, p.step)?;
        return accumulate(grads, owned, key, shape, zeros, None);
    }
    let prev = grads.remove(&key);
    let Some(p) = piece else {
        let total = match prev {
            Some(prev) => {
                owned.insert(key, Owned { written: None });
                prev.add(&ig)?
            }
            None => {
                // A rule's result, which another input's gradient may share.
                owned.remove(&key);
                ig
            }
        };
        grads.insert(key, total);
        return Ok(());
    };
    let region = Region {
        dim: p.dim,
        start: p.start,
        len: ig.dims()[p.dim],
        step: p.step,
    };
    let total = match (prev, owned.get_mut(&key)) {
        (None, _) => {
            owned.insert(
                key,
                Owned {
                    written: Some(vec![region]),
                },
            );
            ig.pad_into(shape, p.dim, p.start, p.step)?
        }
        (Some(prev), Some(o)) if prev.dtype() == ig.dtype() && prev.layout().is_contiguous() => {
            let met = match &o.written {
                Some(written) => written.iter().any(|w| w.may_meet(&region)),
                None => true,
            };
            let end = region.start + region.len.saturating_sub(1) * region.step + 1;
            let part = prev.slice_step(p.dim as isize, p.start, end, p.step)?;
            let value = if met { part.add(&ig)? } else { ig };
            prev.backend().copy(
                (&value.storage(), value.layout()),
                (&prev.storage(), part.layout()),
            )?;
            if let Some(written) = &mut o.written {
                written.push(region);
            }
            prev
        }
        (Some(prev), _) => {
            owned.insert(key, Owned { written: None });
            prev.add(&ig.pad_into(shape, p.dim, p.start, p.step)?)?
        }
    };
    grads.insert(key, total);
    Ok(())
}
