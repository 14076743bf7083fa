//! Autocast's Linear (on a GPU the fused kernel, Backend
//! `fused_linear_f16`) against the composed ops, bit for bit: output and
//! every gradient, with and without bias and ReLU, `F16` inputs, values
//! past f16's range and NaN.

use lam::amp;
use lam::nn::LinearActivation;
use lam::{DType, Device, Generator, Result, Tensor};

use crate::common;
use crate::conformance;

// Autocast's Linear: on a GPU one kernel (Backend `fused_linear_f16`) rounds
// the F16 product, adds the F32 bias and applies the ReLU as it writes the
// output; elsewhere (the CPU, unfused twins) the ops run one by one. Either
// way the output and every gradient are bit for bit those of the composed
// ops: the F16 product, the F32 add, the ReLU, the cast to F16.
conformance!(autocast_linear_is_the_composed_ops_bit_for_bit, |dev| {
    let gen = Generator::new(11);
    // (input shape, out features): sizes 1, 3, 17, 65 and a rank-3 batch.
    let cases: [(&[usize], usize); 5] = [
        (&[1, 1], 1),
        (&[3, 17], 3),
        (&[17, 3], 65),
        (&[2, 3, 65], 17),
        (&[4, 17], 5),
    ];
    for (k, &(shape, out_f)) in cases.iter().enumerate() {
        let in_f = shape[shape.len() - 1];
        let mut x = Tensor::randn_with(shape, dev, &gen)?.to_vec()?;
        let mut w = Tensor::randn_with(&[out_f, in_f], dev, &gen)?.to_vec()?;
        let b = Tensor::randn_with(&[out_f], dev, &gen)?.to_vec()?;
        if k == 4 {
            // Products beyond f16's range (both signs: inf and -inf, the
            // latter through the ReLU) and a NaN.
            x.iter_mut().for_each(|v| *v *= 300.0);
            w.iter_mut().for_each(|v| *v = v.signum() * 300.0);
            x[5] = f32::NAN;
        }
        // An F16 input too (the output of a Linear without bias is one).
        for (with_bias, half_input) in [(true, false), (false, false), (true, true)] {
            for act in [LinearActivation::Identity, LinearActivation::Relu] {
                let what = format!(
                    "{shape:?} x [{out_f}, {in_f}] bias {with_bias} {act:?} F16 input {half_input}"
                );
                let bias = with_bias.then_some(&b[..]);
                let run = |composed| {
                    let x = Input {
                        shape,
                        x: &x,
                        half: half_input,
                    };
                    autocast_linear(dev, x, &w, bias, act, composed)
                };
                let (got, calls) = run(false)?;
                let want = run(true)?.0;
                for (part, (g, e)) in got.iter().zip(&want).enumerate() {
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(g), bits(e), "{what}: part {part} (output, dx, dw, db)");
                }
                if k == 4 {
                    let y = &got[0];
                    assert!(y.iter().any(|v| v.is_nan()), "{what}: a NaN");
                    assert!(y.contains(&f32::INFINITY), "{what}: inf");
                }
                // On a GPU the layer is the fused kernel: no separate add.
                let gpu = dev.kind() == lam::DeviceKind::Gpu && !common::is_unfused(dev);
                assert_eq!(
                    calls.contains_key("binary"),
                    !gpu && with_bias,
                    "{what}: {calls:?}"
                );
                // And it writes halves itself, so the only casts are the
                // operands' (the input's to F16, here or as the test makes
                // an F16 input, and the weight's), unless a ReLU's rule
                // needs the F32 output, which one cast rounds.
                if gpu && with_bias {
                    let output = u64::from(act == LinearActivation::Relu);
                    assert_eq!(calls.get("cast"), Some(&(2 + output)), "{what}: {calls:?}");
                }
            }
        }
    }
    Ok(())
});

/// The input of [`autocast_linear`]: its shape, values and whether it is
/// an `F16` tensor.
#[derive(Clone, Copy)]
struct Input<'a> {
    shape: &'a [usize],
    x: &'a [f32],
    half: bool,
}

/// The output and the gradients of x, W and b (a loss weighting each
/// output differently) of `linear_act` under autocast to F16, or of the
/// composed ops it stands for when `composed`, with the backend calls the
/// forward made.
#[allow(clippy::type_complexity)]
fn autocast_linear(
    dev: &Device,
    input: Input,
    w: &[f32],
    b: Option<&[f32]>,
    act: LinearActivation,
    composed: bool,
) -> Result<(Vec<Vec<f32>>, std::collections::BTreeMap<&'static str, u64>)> {
    let (rec, recorder) = lam::testing::Recorder::device(dev);
    let shape = input.shape;
    let in_f = shape[shape.len() - 1];
    let out_f = w.len() / in_f;
    let dtype = if input.half { DType::F16 } else { DType::F32 };
    let x = Tensor::from_slice(input.x, shape, &rec)?.requires_grad_()?;
    // An F16 input is an op's output (F16 leaves take no gradient).
    let xin = x.to_dtype(dtype)?;
    let w = Tensor::from_slice(w, &[out_f, in_f], &rec)?.requires_grad_()?;
    let b = b
        .map(|b| Tensor::from_slice(b, &[out_f], &rec)?.requires_grad_())
        .transpose()?;
    let y = {
        let _ac = amp::autocast_forced(&rec, DType::F16)?;
        if composed {
            let rows = x.numel() / in_f;
            let mut y = xin
                .reshape(&[rows as isize, in_f as isize])?
                .matmul(&w.t()?)?;
            if let Some(b) = &b {
                y = y.add(b)?;
            }
            if act == LinearActivation::Relu {
                y = y.relu()?;
            }
            let mut out = shape.to_vec();
            *out.last_mut().expect("a rank") = out_f;
            y.reshape(&out.iter().map(|&d| d as isize).collect::<Vec<_>>())?
                .to_dtype(DType::F16)?
        } else {
            lam::nn::functional::linear_act(&xin, &w, b.as_ref(), act)?
        }
    };
    let calls = recorder.calls();
    let weights: Vec<f32> = (0..y.numel())
        .map(|i| ((i % 7) as f32 - 3.0) * 0.37)
        .collect();
    let weights = Tensor::from_vec(weights, y.dims(), &rec)?;
    y.mul(&weights)?.sum_all()?.backward()?;
    let mut parts = vec![y.to_vec()?];
    for t in [Some(&x), Some(&w), b.as_ref()].into_iter().flatten() {
        parts.push(t.grad().expect("a gradient").to_vec()?);
    }
    Ok((parts, calls))
}
