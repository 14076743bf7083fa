//! Copying a model's state from rank 0 to every replica, and checking
//! first that every replica holds the same model.

use lam_core::nn::{Entry, Module};
use lam_core::{no_grad, DType, Error, Result, Tensor};

use crate::comm::{Communicator, Reduction};

/// Makes every replica's parameters and buffers equal to rank 0's (the
/// start of data-parallel training; after a resume, a safety net). The
/// models must have the same names, shapes and dtypes on every replica
/// (checked first: an error names the difference's fingerprint).
pub fn broadcast_state(model: &dyn Module, comm: &Communicator) -> Result<()> {
    check_same_model(model, comm)?;
    let tensors: Vec<Tensor> = model.state_dict().into_iter().map(|(_, t)| t).collect();
    broadcast_tensors(&tensors, comm, 0, DEFAULT_PIECE)
}

/// The size of one broadcast message when a model's state is copied.
pub(crate) const DEFAULT_PIECE: usize = 25 << 20;

/// Copies rank `root`'s values of `tensors` to every replica, in messages
/// of at most `piece` bytes (all queued before the first is waited for).
pub(crate) fn broadcast_tensors(
    tensors: &[Tensor],
    comm: &Communicator,
    root: usize,
    piece: usize,
) -> Result<()> {
    if comm.world_size() == 1 || tensors.is_empty() {
        return Ok(());
    }
    let mut bytes = Vec::new();
    for t in tensors {
        let before = bytes.len();
        if comm.rank() == root {
            append_bytes(t, &mut bytes)?;
        } else {
            bytes.resize(before + t.numel() * 4, 0);
        }
    }
    let piece = piece.clamp(1, i32::MAX as usize);
    let pending: Vec<_> = bytes
        .chunks(piece)
        .map(|c| comm.broadcast(c.to_vec(), root))
        .collect();
    if comm.rank() == root {
        for p in pending {
            p.wait()?;
        }
        return Ok(());
    }
    let mut received = Vec::with_capacity(bytes.len());
    for p in pending {
        received.extend(p.wait()?);
    }
    no_grad(|| {
        let mut at = 0;
        for t in tensors {
            let n = t.numel() * 4;
            set_from_bytes(t, &received[at..at + n])?;
            at += n;
        }
        Ok(())
    })
}

/// An error unless every replica's model has the same parameter and
/// buffer names, shapes and dtypes (compared by a 64-bit fingerprint).
pub(crate) fn check_same_model(model: &dyn Module, comm: &Communicator) -> Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    let mut text = String::new();
    model.visit("", &mut |name, e| {
        let (kind, t) = match e {
            Entry::Parameter(t) => ("p", t),
            Entry::Buffer(t) => ("b", t),
            Entry::Mode(_) => return,
        };
        text.push_str(&format!("{kind} {name} {:?} {:?};", t.dims(), t.dtype()));
    });
    let print = fingerprint(text.as_bytes());
    // 32-bit halves are exact in f64; max(x) = -max(-x) only when all agree.
    let (hi, lo) = ((print >> 32) as f64, (print & 0xffff_ffff) as f64);
    let r = comm.reduce_f64(vec![hi, lo, -hi, -lo], Reduction::Max)?;
    if r[0] != -r[2] || r[1] != -r[3] {
        return Err(Error::Distributed(format!(
            "rank {}: the replicas' models differ (parameter and buffer names, shapes or dtypes; \
             this model's fingerprint is {print:016x}): build the same model on every replica",
            comm.rank()
        )));
    }
    Ok(())
}

/// FNV-1a, 64 bits: stable across processes and builds.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Appends `t`'s values as little-endian 4-byte words (`F16` values as
/// their `f32`, which is exact).
fn append_bytes(t: &Tensor, out: &mut Vec<u8>) -> Result<()> {
    match t.dtype() {
        DType::F32 | DType::F16 => out.extend(t.to_vec()?.iter().flat_map(|v| v.to_le_bytes())),
        DType::I32 => out.extend(t.to_vec_i32()?.iter().flat_map(|v| v.to_le_bytes())),
    }
    Ok(())
}

/// Replaces `t`'s data (identity kept) with little-endian 4-byte words.
fn set_from_bytes(t: &Tensor, bytes: &[u8]) -> Result<()> {
    let words = bytes.chunks_exact(4).map(|w| [w[0], w[1], w[2], w[3]]);
    let value = match t.dtype() {
        DType::F32 => Tensor::from_vec(
            words.map(f32::from_le_bytes).collect(),
            t.dims(),
            &t.device(),
        )?,
        DType::I32 => Tensor::from_vec_i32(
            words.map(i32::from_le_bytes).collect(),
            t.dims(),
            &t.device(),
        )?,
        DType::F16 => Tensor::from_vec(
            words.map(f32::from_le_bytes).collect(),
            t.dims(),
            &t.device(),
        )?
        .to_dtype(DType::F16)?,
    };
    t.set_data(&value)
}
