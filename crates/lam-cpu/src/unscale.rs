//! Loss scaling's unscale (Backend `fused_unscale`, PyTorch's
//! `_amp_foreach_non_finite_check_and_unscale_`): a gradient times
//! `1 / scale`, and a flag set where any value was infinite or NaN, in one
//! pass over the gradient instead of the five ops that compose it.

use lam_core::backend::View;
use lam_core::{DType, Result, Storage};

use crate::storage::{cpu, dtype_error, same_buffer, Data, ReadLocks};
use crate::strided::gather;

/// The gradient (any strides) times `inv_scale`, as contiguous values;
/// `found` (an `F32` `[1]`) becomes 1 where any value is infinite or NaN.
pub(crate) fn unscale(grad: View, inv_scale: f32, found: &Storage) -> Result<Vec<f32>> {
    const OP: &str = "fused_unscale";
    if same_buffer(grad.0, found) {
        return Err(lam_core::Error::invalid(
            OP,
            "the flag must not be the gradient's buffer",
        ));
    }
    let (scaled, finite) = {
        let locks = ReadLocks::new(OP, &[grad.0])?;
        let values = gather(locks.f32(0, grad.1)?, grad.1)?;
        // The same product as `unary`'s MulScalar, value by value.
        let scaled: Vec<f32> = values.iter().map(|&g| g * inv_scale).collect();
        (scaled, values.iter().all(|g| g.is_finite()))
    };
    let mut flag = cpu(found)?.write();
    let Data::F32(flag) = &mut *flag else {
        return Err(dtype_error(OP, DType::F32, DType::I32));
    };
    let Some(first) = flag.first_mut() else {
        return Err(lam_core::Error::invalid(OP, "an empty flag buffer"));
    };
    if !finite {
        *first = 1.0;
    }
    Ok(scaled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lam_core::{Backend, Layout};

    use crate::CpuBackend;

    #[test]
    fn a_gradient_is_scaled_and_a_non_finite_value_sets_the_flag() {
        let b = CpuBackend::new();
        let g = b.from_f32(&[1.0, -2.0, 4.0, 8.0, 0.5, 3.0]).unwrap();
        let found = b.from_f32(&[0.0]).unwrap();
        let flag = |b: &CpuBackend| b.read_f32((&found, &Layout::contiguous(&[1]))).unwrap();
        // A transposed view of [2, 3] and a narrowed one.
        let t = Layout::contiguous(&[3, 2]).permute(&[1, 0]).unwrap();
        let n = Layout::contiguous(&[6]).narrow(0, 1, 2).unwrap();
        let scaled = unscale((&g, &t), 0.5, &found).unwrap();
        assert_eq!(scaled, vec![0.5, 2.0, 0.25, -1.0, 4.0, 1.5]);
        assert_eq!(unscale((&g, &n), 0.5, &found).unwrap(), vec![-1.0, 2.0]);
        assert_eq!(flag(&b), [0.0]);
        let two = Layout::contiguous(&[2]);
        for bad in [f32::NAN, f32::NEG_INFINITY] {
            let s = b.from_f32(&[1.0, bad]).unwrap();
            unscale((&s, &two), 0.5, &found).unwrap();
            assert_eq!(flag(&b), [1.0]);
            // A finite gradient after leaves it set.
            unscale((&g, &n), 0.5, &found).unwrap();
            assert_eq!(flag(&b), [1.0]);
        }
        assert!(unscale((&g, &n), 0.5, &g).is_err());
    }
}
