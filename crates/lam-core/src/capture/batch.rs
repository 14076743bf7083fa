//! Which axis of an op's output is the example input's batch dim, from the
//! op and its inputs' batch axes: what lets an exported graph take any
//! batch size.

use super::graph::{Op, Value};

/// The batch axis of output `k` of `op`, or `None` when the output has none
/// (the batch was reduced, sliced, joined or is absent from the inputs).
pub(super) fn batch_axis(
    op: &Op,
    inputs: &[Option<&Value>],
    out_shape: &[usize],
    k: usize,
) -> Option<usize> {
    let first = inputs.first().copied().flatten();
    let from_first = || first.and_then(|v| v.batch_axis.map(|b| (v, b)));
    let axis = match op {
        Op::Reduce { axes, keepdim, .. } | Op::Mean { axes, keepdim } => {
            let (v, b) = from_first()?;
            if axes.is_empty() || axes.contains(&b) {
                return None;
            }
            let _ = v;
            if *keepdim {
                b
            } else {
                b - axes.iter().filter(|&&a| a < b).count()
            }
        }
        Op::Permute(perm) => {
            let (_, b) = from_first()?;
            perm.iter().position(|&p| p == b)?
        }
        Op::Reshape => {
            let (v, b) = from_first()?;
            let before: usize = v.shape[..b].iter().product();
            let mut prefix = 1usize;
            let mut found = None;
            for (a, &d) in out_shape.iter().enumerate() {
                if prefix == before && d == v.shape[b] {
                    found = Some(a);
                    break;
                }
                prefix = prefix.saturating_mul(d);
            }
            found?
        }
        Op::Narrow { axis, .. } | Op::Concat { axis } => {
            let (_, b) = from_first()?;
            if *axis == b {
                return None;
            }
            b
        }
        Op::Embedding => from_first()?.1,
        Op::Recurrent(r) => {
            first?.batch_axis?;
            if !r.batched {
                return None;
            }
            match (k, r.batch_first) {
                (0, true) => 0,
                _ => 1,
            }
        }
        _ => {
            // Right-aligned broadcasting: the first input with a batch axis.
            let (v, b) = inputs
                .iter()
                .flatten()
                .find_map(|v| v.batch_axis.map(|b| (*v, b)))?;
            (b + out_shape.len()).checked_sub(v.shape.len())?
        }
    };
    // Only a dim as large as the input's batch can be it.
    let batch = inputs
        .iter()
        .flatten()
        .find_map(|v| v.batch_axis.map(|b| v.shape[b]))?;
    (out_shape.get(axis) == Some(&batch)).then_some(axis)
}
