//! One SGD step in place (Backend `fused_sgd`), in the order of
//! `torch.optim.SGD` and of lam-core's composed update, so the two agree
//! exactly: one vectorised loop over each chunk (its branches test flags
//! fixed for the step), with rayon over chunks of large parameters.

use lam_core::backend::SgdStep;
use lam_core::{Error, Layout, Result, Storage};
use rayon::prelude::*;

use crate::elementwise::vectorised;
use crate::parallel::{CHUNK, PAR_MIN_WORK};
use crate::storage::{cpu, dtype_error, same_buffer, Data, ReadLocks};

/// One SGD step in place:
///
/// ```text
/// g = grad + weight_decay * p                     (when weight_decay != 0)
/// b = g  (first step)  or  momentum * b + (1 - dampening) * g
/// g = g + momentum * b  (Nesterov)  or  b         (when momentum != 0)
/// p = p - lr * g
/// ```
pub(crate) fn sgd(
    param: &Storage,
    grad: &Storage,
    momentum_buffer: Option<&Storage>,
    s: &SgdStep,
) -> Result<()> {
    const OP: &str = "fused_sgd";
    if momentum_buffer.is_some() != (s.momentum != 0.0) {
        return Err(Error::invalid(
            OP,
            "a momentum buffer exactly when the momentum is not 0",
        ));
    }
    let all: Vec<&Storage> = [param, grad].into_iter().chain(momentum_buffer).collect();
    for (i, a) in all.iter().enumerate() {
        if all[i + 1..].iter().any(|b| same_buffer(a, b)) {
            return Err(Error::invalid(
                OP,
                "param, grad and the momentum buffer must be distinct buffers",
            ));
        }
    }
    let grad_lock = ReadLocks::new(OP, &[grad])?;
    let g = grad_lock.f32(0, &Layout::contiguous(&[grad.len()]))?;
    let mut p = cpu(param)?.write();
    let Data::F32(p) = &mut *p else {
        return Err(dtype_error(OP, lam_core::DType::F32, lam_core::DType::I32));
    };
    let mut b_guard = momentum_buffer
        .map(|b| cpu(b).map(|b| b.write()))
        .transpose()?;
    let mut b: Option<&mut Vec<f32>> = match b_guard.as_deref_mut() {
        Some(Data::F32(b)) => Some(b),
        Some(_) => return Err(dtype_error(OP, lam_core::DType::F32, lam_core::DType::I32)),
        None => None,
    };
    let b_len = b.as_ref().map_or(g.len(), |b| b.len());
    if p.len() != g.len() || b_len != g.len() {
        return Err(Error::invalid(
            OP,
            format!(
                "buffers of unequal length: param {}, grad {}, momentum buffer {b_len}",
                p.len(),
                g.len()
            ),
        ));
    }
    let update = |p: &mut [f32], g: &[f32], b: Option<&mut [f32]>| {
        vectorised(
            #[inline(always)]
            || sgd_chunk(p, g, b, s),
        )
    };
    match (&mut b, p.len() >= PAR_MIN_WORK) {
        (Some(b), true) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(b.par_chunks_mut(CHUNK))
            .for_each(|((p, g), b)| update(p, g, Some(b))),
        (None, true) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(p, g)| update(p, g, None)),
        (b, false) => update(p, g, b.as_deref_mut().map(|b| &mut b[..])),
    }
    Ok(())
}

/// The update of one chunk. The branches in the loops test flags fixed for
/// the whole step, which the compiler hoists out before vectorising.
#[inline(always)]
fn sgd_chunk(p: &mut [f32], grad: &[f32], b: Option<&mut [f32]>, s: &SgdStep) {
    let (lr, wd, m) = (s.lr, s.weight_decay, s.momentum);
    let keep = 1.0 - s.dampening;
    // The penalised gradient of element i.
    let penalised = |p: f32, g: f32| if wd != 0.0 { g + p * wd } else { g };
    let Some(b) = b else {
        for (p, &g) in p.iter_mut().zip(grad) {
            *p -= penalised(*p, g) * lr;
        }
        return;
    };
    for ((p, &g), b) in p.iter_mut().zip(grad).zip(b.iter_mut()) {
        let g = penalised(*p, g);
        *b = if s.first { g } else { *b * m + g * keep };
        let step = if s.nesterov { g + *b * m } else { *b };
        *p -= step * lr;
    }
}

#[cfg(test)]
mod tests {
    use lam_core::backend::SgdStep;
    use lam_core::Backend;

    use crate::test_util::*;

    #[test]
    fn buffers_must_be_distinct_and_match_the_momentum() {
        let b = backend();
        let (p, _) = f32s(&[1.0; 4], &[4]);
        let (g, _) = f32s(&[1.0; 4], &[4]);
        let (m, _) = f32s(&[0.0; 4], &[4]);
        let plain = SgdStep {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            first: true,
        };
        let with = SgdStep {
            momentum: 0.9,
            ..plain
        };
        assert!(b.fused_sgd(&p, &p, None, &plain).is_err());
        assert!(b.fused_sgd(&p, &g, Some(&m), &plain).is_err());
        assert!(b.fused_sgd(&p, &g, None, &with).is_err());
        assert!(b.fused_sgd(&p, &g, Some(&g), &with).is_err());
        let (short, _) = f32s(&[0.0; 3], &[3]);
        assert!(b.fused_sgd(&p, &g, Some(&short), &with).is_err());
        assert!(b.fused_sgd(&p, &g, Some(&m), &with).unwrap());
        assert_eq!(read(&p, &[4]), vec![0.9; 4]);
        assert_eq!(read(&m, &[4]), vec![1.0; 4]);
    }
}
