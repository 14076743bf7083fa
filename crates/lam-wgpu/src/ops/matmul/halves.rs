//! Whether a device may widen the halves of `F16` operands by hardware.
//!
//! The matmul kernels read `F16` operands as halves and widen them to f32
//! as they stage them. lib/half.wgsl's integer conversion is exact on every
//! adapter but costs a dozen instructions with branches per element; the
//! hardware's (`unpack2x16float`) costs one or two, and WGSL leaves its
//! handling of subnormal halves to the implementation. So the first product
//! of halves on a device runs one small product both ways (the `HALF_HW`
//! constant off and on) and keeps the hardware's only where the bits agree.
//! The operands are subnormal and normal halves times small integers, so
//! every sum is exact in f32: any flushed or rounded half shows; a NaN and
//! infinities among them show a conversion that changes NaN bits.

use std::sync::Arc;

use lam_core::backend::LinearActivation;
use lam_core::{f16, DType, Layout, Result};

use super::{launch, prepare, Job, MatmulKernel};
use crate::context::Gpu;
use crate::ops::copy;

/// Decides, on the device's first product of halves (`job` has an `F16`
/// operand), whether its kernels widen halves by hardware.
pub(crate) fn decide(gpu: &Arc<Gpu>, job: &Job) -> Result<()> {
    if job.halves != [false, false] {
        gpu.matmul.check_half_hw(|| hardware_exact(gpu))?;
    }
    Ok(())
}

/// Whether `unpack2x16float` on `gpu` widens every half as lam's integer
/// conversion does, judged on a 40 x 48 x 24 product (`Tile64`, with edges).
pub(crate) fn hardware_exact(gpu: &Arc<Gpu>) -> Result<bool> {
    let (m, k, n) = (40, 48, 24);
    let halves = |len: usize, value: &dyn Fn(usize) -> f32| {
        let h: Vec<u16> = (0..len)
            .map(|i| f16::from_f32(value(i)).to_bits())
            .collect();
        copy::upload(gpu, bytemuck::cast_slice(&h), DType::F16)
    };
    // A: multiples of 2^-24 up to 2^-14 (subnormal) and of 2^-14 (normal),
    // with both signs, and in three rows a NaN or an infinity, whose
    // products' bits show a conversion that changes a NaN's payload or
    // sign; B: integers of at most 16 (zeros among them).
    let tiny = 2f32.powi(-24);
    let a = halves(m * k, &|i| {
        let units = ((i * 37 + 1) % 1023 + 1) as f32;
        let scale = if i % 3 == 0 { 1024.0 * tiny } else { tiny };
        match i {
            5 => f32::NAN,
            101 => f32::INFINITY,
            203 => f32::NEG_INFINITY,
            _ if i % 2 == 0 => units * scale,
            _ => -units * scale,
        }
    })?;
    let b = halves(k * n, &|i| ((i * 13 + 2) % 33) as f32 - 16.0)?;
    let (la, lb, lc) = (
        Layout::contiguous(&[m, k]),
        Layout::contiguous(&[k, n]),
        Layout::contiguous(&[m, n]),
    );
    let run = |hardware: bool| -> Result<Vec<u32>> {
        let mut job = prepare(
            gpu,
            (&a, &la),
            (&b, &lb),
            None,
            LinearActivation::Identity,
            DType::F32,
        )?;
        job.half_hw = Some(hardware);
        launch(gpu, &job, MatmulKernel::Tile64)?;
        let c = job.out.into_storage();
        let bytes = copy::read(gpu, (&c, &lc), DType::F32)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    };
    let exact = run(false)?;
    let hardware = run(true)?;
    // Not an error, and not worth a line on stderr: only the speed of
    // products of halves differs (`matmul_widens_halves_by_hardware` says
    // which way a device went).
    Ok(exact == hardware)
}
