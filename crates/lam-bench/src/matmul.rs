//! Matrix product throughput: `a @ b` for `[n, n]` standard-normal
//! matrices (or `[m, k] x [k, n]` for a size written `MxKxN`, such as a
//! weight gradient's `512x4096x1536`), after 2 warm-up products, reported in
//! GFLOP/s (`2 m k n` per product).
//!
//! On the GPU, `--kernel tile64|tile32|tile128|tile128x64|subgroup|coop|coop128|splitk64|splitk128|auto` runs every
//! product on one matmul kernel (`auto`: the device's own choice, autotuned)
//! and `--precision highest|high` sets the device's matmul precision (`high`
//! allows the f16-input cooperative-matrix kernel for f32 operands); either
//! opens a device of its own with those settings on the adapter
//! `default_gpu` would use. `--dtype f16` multiplies `F16` matrices into an
//! `F16` product (summed in f32), mixed precision's products and PyTorch's
//! `--fp16` counterpart, which the cooperative kernels take at any
//! precision. On a GPU the line ends with the kernel the products ran on.

use std::time::Instant;

use lam_core::{DType, Device, Tensor};
use lam_wgpu::{GpuOptions, MatmulKernel, MatmulOptions, MatmulPrecision};

use crate::{arg, Outcome};

/// Sizes and iteration counts of `matmul-sweep`: roughly 10-50 GFLOP each.
const SWEEP: [(usize, usize); 4] = [(256, 400), (512, 50), (1024, 10), (2048, 3)];

/// `matmul N ITERS [--kernel NAME] [--precision highest|high] [--dtype f32|f16]`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let mut args = args.to_vec();
    let kernel = take_flag(&mut args, "--kernel")?;
    let precision = take_flag(&mut args, "--precision")?;
    let dtype = match take_flag(&mut args, "--dtype")?.as_deref() {
        None | Some("f32") => DType::F32,
        Some("f16") => DType::F16,
        Some(other) => return Err(format!("unknown --dtype {other:?} (known: f32, f16)").into()),
    };
    let [m, k, n] = sizes(args.first().map(String::as_str))?;
    let iters = arg(&args, 1, "ITERS")?;
    let (device, label) = with_matmul_settings(device, kernel.as_deref(), precision.as_deref())?;
    let line = measure([m, k, n], iters, dtype, &device)?;
    if !device.is_gpu() {
        println!("{line}");
    } else {
        // The kernel the products ran on (for `auto`, what autotuning chose).
        let ran = lam_wgpu::matmul_kernel_for(&device, dtype, [1, m, k, n])?;
        let label = if label.is_empty() {
            " [kernel auto".to_string()
        } else {
            label
        };
        // F16 operands: whether the kernels widened their halves by
        // hardware or with lam's integer conversion (a check on the
        // device's first product of halves decides).
        let widened = match lam_wgpu::matmul_widens_halves_by_hardware(&device)? {
            Some(true) => ", halves widened by hardware",
            Some(false) => ", halves widened by lam",
            None => "",
        };
        println!("{line}{label}, ran on {}{widened}]", ran.name());
    }
    Ok(())
}

/// `[m, k, n]` from the size argument: `N` (square) or `MxKxN`.
fn sizes(arg: Option<&str>) -> Result<[usize; 3], Box<dyn std::error::Error>> {
    let arg = arg.ok_or("missing N (a size, or MxKxN)")?;
    let parsed: Result<Vec<usize>, _> = arg.split('x').map(str::parse).collect();
    match parsed.as_deref() {
        Ok(&[n]) => Ok([n, n, n]),
        Ok(&[m, k, n]) => Ok([m, k, n]),
        _ => Err(format!("N must be a size or MxKxN, found {arg:?}").into()),
    }
}

/// `matmul-sweep`: one line per size of [`SWEEP`].
pub fn sweep(_args: &[String], device: &Device) -> Outcome {
    for (n, iters) in SWEEP {
        println!("{}", measure([n, n, n], iters, DType::F32, device)?);
    }
    Ok(())
}

/// Removes `FLAG VALUE` from `args`, returning the value.
fn take_flag(
    args: &mut Vec<String>,
    flag: &str,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) if i + 1 < args.len() => {
            let value = args.remove(i + 1);
            args.remove(i);
            Ok(Some(value))
        }
        Some(_) => Err(format!("{flag} needs a value").into()),
    }
}

/// `device`, or a GPU device of its own with the kernel and precision
/// asked for, and the start of the bracket that says so in the result line
/// (empty for `device` as it is).
fn with_matmul_settings(
    device: &Device,
    kernel: Option<&str>,
    precision: Option<&str>,
) -> Result<(Device, String), Box<dyn std::error::Error>> {
    if kernel.is_none() && precision.is_none() {
        return Ok((device.clone(), String::new()));
    }
    if !device.is_gpu() {
        return Err("--kernel and --precision need --device gpu".into());
    }
    let mut matmul = MatmulOptions::from_env();
    if let Some(name) = precision {
        matmul.precision = MatmulPrecision::from_name(name)
            .ok_or_else(|| format!("unknown --precision {name:?} (known: highest, high)"))?;
    }
    match kernel {
        None | Some("auto") => matmul.kernel = None,
        Some(name) => {
            matmul.kernel = Some(MatmulKernel::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = MatmulKernel::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown --kernel {name:?} (known: {}, auto)",
                    known.join(", ")
                )
            })?);
        }
    }
    let opts = GpuOptions {
        adapter: std::env::var("LAM_ADAPTER").ok().filter(|s| !s.is_empty()),
        matmul: matmul.clone(),
        ..GpuOptions::default()
    };
    let device = lam_wgpu::gpu_device(&opts)?;
    let label = format!(
        " [kernel {}, precision {:?}",
        matmul.kernel.map_or("auto", MatmulKernel::name),
        matmul.precision
    );
    Ok((device, label))
}

/// Times `iters` products of `[m, k] x [k, n]` of `dtype` operands (and
/// result: `F16` products are `F16`, summed in f32) and formats the result
/// line.
fn measure(
    [m, k, n]: [usize; 3],
    iters: usize,
    dtype: DType,
    device: &Device,
) -> Result<String, lam_core::Error> {
    let a = Tensor::randn(&[m, k], device)?.to_dtype(dtype)?;
    let b = Tensor::randn(&[k, n], device)?.to_dtype(dtype)?;
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
    let gflops = 2.0 * (m * k * n) as f64 * iters as f64 / dt / 1e9;
    let size = if m == n && k == n {
        format!("n={n}")
    } else {
        format!("shape={m}x{k}x{n}")
    };
    let dtype = if dtype == DType::F16 { " f16" } else { "" };
    Ok(format!(
        "lam matmul {size}{dtype} iters={iters}: {gflops:.2} GFLOP/s ({dt:.3} s)"
    ))
}
