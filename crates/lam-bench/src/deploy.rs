//! The deployment paths against the `f32` ones, forward only (no grad):
//!
//! - `int8 IN OUT ITERS`: a `QuantizedLinear` against the `Linear` it came
//!   from, at batch sizes 1 to 32 — time per call and the ratio;
//!   both paths take turns in rounds, and each time is the median round;
//! - `shrink IN HIDDEN ITERS`: a `Linear(IN, HIDDEN) → ReLU → Linear(HIDDEN,
//!   10)` pair against the same pair with half its hidden neurons removed
//!   by structured pruning (`prune::shrink`), at batch sizes 1 to 256.

use std::time::Instant;

use lam_core::nn::prune::shrink::{kept_channels, shrink_linear};
use lam_core::nn::prune::{Norm, Pruning};
use lam_core::nn::quant::QuantizedLinear;
use lam_core::nn::{Linear, Module};
use lam_core::{no_grad, Device, Result, Tensor};

use crate::{arg, Outcome};

/// Rounds in which two paths take turns (see [`per_call_pair`]).
const ROUNDS: usize = 7;

/// Seconds per call of `a` and of `b`: the median over [`ROUNDS`] rounds
/// in which each runs `iters / ROUNDS` calls in turn, so that a noisy,
/// shared machine slows both alike (after two warm-up calls each).
fn per_call_pair(
    iters: usize,
    device: &Device,
    a: impl Fn() -> Result<Tensor>,
    b: impl Fn() -> Result<Tensor>,
) -> Result<(f64, f64)> {
    let calls = (iters / ROUNDS).max(1);
    let time = |f: &dyn Fn() -> Result<Tensor>| -> Result<f64> {
        device.synchronize()?;
        let start = Instant::now();
        for _ in 0..calls {
            f()?;
        }
        device.synchronize()?;
        Ok(start.elapsed().as_secs_f64() / calls as f64)
    };
    for _ in 0..2 {
        a()?;
        b()?;
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ta.push(time(&a)?);
        tb.push(time(&b)?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(ta), median(tb)))
}

/// `int8 IN OUT ITERS`
pub fn int8(args: &[String], device: &Device) -> Outcome {
    let (inp, out, iters): (usize, usize, usize) = (
        arg(args, 0, "IN")?,
        arg(args, 1, "OUT")?,
        arg(args, 2, "ITERS")?,
    );
    let linear = Linear::new(inp, out, device)?;
    let quant = QuantizedLinear::from_linear(&linear)?;
    for batch in [1, 2, 4, 8, 16, 32] {
        let x = Tensor::randn(&[batch, inp], device)?;
        let (f32_s, i8_s) =
            no_grad(|| per_call_pair(iters, device, || linear.forward(&x), || quant.forward(&x)))?;
        println!(
            "lam int8 linear {inp}x{out} batch={batch}: f32 {:.1} us, int8 {:.1} us, speed-up {:.2}x",
            f32_s * 1e6,
            i8_s * 1e6,
            f32_s / i8_s
        );
    }
    Ok(())
}

/// `shrink IN HIDDEN ITERS`
pub fn shrink(args: &[String], device: &Device) -> Outcome {
    let (inp, hidden, iters): (usize, usize, usize) = (
        arg(args, 0, "IN")?,
        arg(args, 1, "HIDDEN")?,
        arg(args, 2, "ITERS")?,
    );
    let a = Linear::new(inp, hidden, device)?;
    let b = Linear::new(hidden, 10, device)?;
    let mut pruning = Pruning::new();
    pruning.ln_structured(&a, "weight", 0.5, Norm::L1, 0)?;
    let keep = pruning
        .mask("weight")
        .map(|m| kept_channels(m, 0))
        .transpose()?
        .unwrap_or_default();
    let (a2, b2) = shrink_linear(&a, &b, &keep)?;
    for batch in [1, 8, 32, 256] {
        let x = Tensor::randn(&[batch, inp], device)?;
        let (full, small) = no_grad(|| {
            per_call_pair(
                iters,
                device,
                || b.forward(&a.forward(&x)?.relu()?),
                || b2.forward(&a2.forward(&x)?.relu()?),
            )
        })?;
        println!(
            "lam shrink {inp}-{hidden}-10 to {inp}-{}-10 batch={batch}: {:.1} us -> {:.1} us, speed-up {:.2}x",
            keep.len(),
            full * 1e6,
            small * 1e6,
            full / small
        );
    }
    Ok(())
}
