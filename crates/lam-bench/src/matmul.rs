//! Square matrix product throughput: `a @ b` for `[n, n]` standard-normal
//! matrices, after 2 warm-up products, reported in GFLOP/s (`2 n³` per product).

use std::time::Instant;

use lam_core::{Device, Tensor};

use crate::{arg, Outcome};

/// Sizes and iteration counts of `matmul-sweep`: roughly 10-50 GFLOP each.
const SWEEP: [(usize, usize); 4] = [(256, 400), (512, 50), (1024, 10), (2048, 3)];

/// `matmul N ITERS`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let n = arg(args, 0, "N")?;
    let iters = arg(args, 1, "ITERS")?;
    println!("{}", measure(n, iters, device)?);
    Ok(())
}

/// `matmul-sweep`: one line per size of [`SWEEP`].
pub fn sweep(_args: &[String], device: &Device) -> Outcome {
    for (n, iters) in SWEEP {
        println!("{}", measure(n, iters, device)?);
    }
    Ok(())
}

/// Times `iters` products and formats the result line.
fn measure(n: usize, iters: usize, device: &Device) -> Result<String, lam_core::Error> {
    let a = Tensor::randn(&[n, n], device)?;
    let b = Tensor::randn(&[n, n], device)?;
    for _ in 0..2 {
        a.matmul(&b)?;
    }
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..iters {
        a.matmul(&b)?;
    }
    device.synchronize()?;
    let dt = start.elapsed().as_secs_f64();
    let gflops = 2.0 * (n as f64).powi(3) * iters as f64 / dt / 1e9;
    Ok(format!(
        "lam matmul n={n} iters={iters}: {gflops:.2} GFLOP/s ({dt:.3} s)"
    ))
}
