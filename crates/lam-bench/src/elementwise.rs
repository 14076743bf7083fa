//! Memory bandwidth of elementwise work: `a + b` over `n` floats (reading 8n
//! bytes and writing 4n), reported in GB/s. Elementwise kernels are bound by
//! memory, so GB/s against the device's bandwidth is the number that matters.

use std::time::Instant;

use lam_core::{Device, Tensor};

use crate::{arg, Outcome};

/// `elementwise N ITERS`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let n: usize = arg(args, 0, "N")?;
    let iters: usize = arg(args, 1, "ITERS")?;
    let a = Tensor::randn(&[n], device)?;
    let b = Tensor::randn(&[n], device)?;
    for _ in 0..2 {
        a.add(&b)?;
    }
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..iters {
        a.add(&b)?;
    }
    device.synchronize()?;
    let dt = start.elapsed().as_secs_f64();
    let gbs = 12.0 * n as f64 * iters as f64 / dt / 1e9;
    println!("lam elementwise add n={n} iters={iters}: {gbs:.2} GB/s ({dt:.3} s)");
    Ok(())
}
