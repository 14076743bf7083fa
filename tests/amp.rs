//! Automatic mixed precision: autocast runs products in `F16` with `F32`
//! master weights and gradients, and is a no-op where half precision is not
//! native; a small MLP trained under autocast with a `GradScaler` reaches
//! the loss of `F32` training; the scaler skips the steps whose gradients
//! overflow and follows PyTorch's scale sequence exactly.

mod common;
#[path = "amp/conv.rs"]
mod conv;

use std::collections::BTreeMap;

use lam::amp::{self, GradScaler, GradScalerState};
use lam::nn::{Linear, LinearActivation, Module};
use lam::optim::{Adam, Optimizer, Sgd};
use lam::{DType, Device, Generator, Result, Tensor};

conformance!(autocast_runs_products_in_f16_and_the_rest_in_f32, |dev| {
    let gen = Generator::new(4);
    let layer = lam::rng::with_generator(&gen, || Linear::new(6, 5, dev))?;
    let x = Tensor::randn_with(&[4, 6], dev, &gen)?;
    let w = Tensor::randn_with(&[6, 3], dev, &gen)?.requires_grad_()?;
    let plain = layer.forward(&x)?.to_vec()?;
    {
        let guard = amp::autocast_forced(dev, DType::F16)?;
        assert!(guard.enabled());
        assert_eq!(amp::autocast_dtype(dev), Some(DType::F16));
        let p = x.matmul(&w)?;
        assert_eq!(p.dtype(), DType::F16);
        // A Linear's product is F16, its bias added in F32, its output
        // rounded to F16 (PyTorch's autocast Linear returns half too).
        let y = layer.forward(&x)?;
        assert_eq!(y.dtype(), DType::F16);
        // Within f16 rounding of the inputs and the product (|y| < 8 here).
        common::close(&y.to_vec()?, &plain, 2e-2);
        // Softmax, reductions and losses stay F32.
        assert_eq!(p.softmax(-1)?.dtype(), DType::F32);
        assert_eq!(p.sum_all()?.dtype(), DType::F32);
        // Elementwise ops follow their operands: F16 stays F16 except on
        // autocast's float32 list and in comparisons; F16 with F32 is F32.
        assert_eq!(p.gelu()?.dtype(), DType::F16);
        assert_eq!(p.relu()?.mul(&p)?.dtype(), DType::F16);
        assert_eq!(p.exp()?.dtype(), DType::F32);
        assert_eq!(p.gt(&p)?.dtype(), DType::F32);
        assert_eq!(p.add(&p.to_dtype(DType::F32)?)?.dtype(), DType::F32);
        // An F32 region inside turns it off.
        {
            let _off = amp::autocast(dev, DType::F32)?;
            assert_eq!(x.matmul(&w)?.dtype(), DType::F32);
        }
        assert_eq!(x.matmul(&w)?.dtype(), DType::F16);
        // Gradients reach the F32 weights as F32.
        p.square()?.sum_all()?.backward()?;
        let g = w.grad().expect("a gradient");
        assert_eq!(g.dtype(), DType::F32);
        let want = x.t()?.matmul(&x.matmul(&w.detach())?)?.mul_scalar(2.0)?;
        common::close(&g.to_vec()?, &want.to_vec()?, 5e-2);
    }
    assert_eq!(amp::autocast_dtype(dev), None);
    assert_eq!(x.matmul(&w)?.dtype(), DType::F32);
    // The plain guard follows the device: on only where f16 is native.
    let guard = amp::autocast(dev, DType::F16)?;
    assert_eq!(guard.enabled(), dev.backend().native_f16());
    let want = if guard.enabled() {
        DType::F16
    } else {
        DType::F32
    };
    assert_eq!(x.matmul(&w)?.dtype(), want);
    drop(guard);
    let closure = amp::with_autocast(dev, DType::F16, || x.matmul(&w).map(|t| t.dtype()))??;
    assert_eq!(closure, want);
    assert!(amp::autocast(dev, DType::I32).is_err());
    // A backward pass inside a region runs the rules as recorded: a Linear
    // used outside autocast gets F32 gradients equal to plain ones.
    let out = layer.forward(&x)?.square()?.sum_all()?;
    {
        let _ac = amp::autocast_forced(dev, DType::F16)?;
        out.backward()?;
    }
    let grads: Vec<Tensor> = layer.parameters().iter().filter_map(|p| p.grad()).collect();
    assert_eq!(grads.len(), 2);
    for p in layer.parameters() {
        let g = p.grad().expect("a gradient");
        assert_eq!(g.dtype(), DType::F32);
        p.zero_grad();
    }
    layer.forward(&x)?.square()?.sum_all()?.backward()?;
    for (p, g) in layer.parameters().iter().zip(&grads) {
        common::close(&g.to_vec()?, &p.grad().expect("a gradient").to_vec()?, 1e-5);
    }
    Ok(())
});

/// Two layers, ReLU between.
struct Mlp {
    a: Linear,
    b: Linear,
}

impl Mlp {
    fn new(dev: &Device) -> Result<Mlp> {
        lam::rng::with_generator(&Generator::new(11), || {
            Ok(Mlp {
                a: Linear::new(8, 16, dev)?,
                b: Linear::new(16, 3, dev)?,
            })
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.b.forward(&self.a.forward(x)?.relu()?)
    }

    fn parameters(&self) -> Vec<Tensor> {
        let mut p = self.a.parameters();
        p.extend(self.b.parameters());
        p
    }
}

/// The loss after each of `steps` Adam steps on a fixed batch, in F32 or
/// under autocast with a GradScaler.
fn train(dev: &Device, mixed: bool, steps: usize) -> Result<Vec<f32>> {
    let gen = Generator::new(2);
    let x = Tensor::randn_with(&[32, 8], dev, &gen)?;
    let rule = Tensor::randn_with(&[8, 3], dev, &gen)?;
    let y = x.matmul(&rule)?.argmax(-1, false)?;
    let model = Mlp::new(dev)?;
    let mut opt = Adam::new(model.parameters(), 0.02)?;
    let mut scaler = GradScaler::new().enabled(mixed);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = {
            let _ac = amp::autocast_forced(dev, if mixed { DType::F16 } else { DType::F32 })?;
            lam::loss::cross_entropy(&model.forward(&x)?, &y)?
        };
        assert_eq!(loss.dtype(), DType::F32);
        scaler.scale(&loss)?.backward()?;
        assert!(scaler.step(&mut opt)?, "no gradient overflows here");
        scaler.update()?;
        opt.zero_grad();
        losses.push(loss.item()?);
    }
    Ok(losses)
}

conformance!(autocast_training_reaches_the_f32_loss, |dev| {
    let full = train(dev, false, 40)?;
    let mixed = train(dev, true, 40)?;
    let (first, last32, last16) = (full[0], full[39], mixed[39]);
    assert!(last32 < first / 3.0, "f32 training did not learn: {full:?}");
    let gap = (last16 - last32).abs();
    assert!(
        gap <= 0.02 + 0.1 * last32,
        "mixed precision ended at {last16}, f32 at {last32} (from {first})\n{mixed:?}\n{full:?}"
    );
    Ok(())
});

conformance!(
    grad_scaler_follows_pytorch_and_skips_overflowed_steps,
    |dev| {
        let case = common::fixture::read("f16/f16.json")["scaler"].clone();
        let num = |v: &serde_json::Value| -> f32 {
            match v.as_str() {
                Some("inf") => f32::INFINITY,
                Some("nan") => f32::NAN,
                _ => v.as_f64().expect("a number") as f32,
            }
        };
        let list = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array().expect("a list").iter().map(num).collect()
        };
        let p = Tensor::from_slice(&list(&case["p0"]), &[3], dev)?.requires_grad_()?;
        let mut opt = Sgd::new(vec![p.clone()], num(&case["lr"]))?;
        let mut scaler = GradScaler::new()
            .init_scale(num(&case["init_scale"]))
            .growth_interval(case["growth_interval"].as_u64().expect("an int") as u32);
        let coeffs = case["coeffs"].as_array().expect("coeffs");
        assert_eq!(coeffs.len(), 10);
        for (t, c) in coeffs.iter().enumerate() {
            opt.zero_grad();
            let c = Tensor::from_slice(&list(c), &[3], dev)?;
            let loss = c.mul(&p)?.sum_all()?;
            scaler.scale(&loss)?.backward()?;
            let stepped = scaler.step(&mut opt)?;
            scaler.update()?;
            assert_eq!(
                stepped,
                case["stepped"][t].as_bool().expect("a bool"),
                "step {t}"
            );
            assert_eq!(
                scaler.get_scale(),
                num(&case["scales"][t]),
                "scale after step {t}"
            );
            common::close(&p.to_vec()?, &list(&case["params"][t]), 1e-6);
        }
        let state = scaler.state_dict();
        let torch = &case["state_dict"];
        assert_eq!(
            state,
            GradScalerState {
                scale: num(&torch["scale"]),
                growth_factor: num(&torch["growth_factor"]),
                backoff_factor: num(&torch["backoff_factor"]),
                growth_interval: torch["growth_interval"].as_u64().expect("an int") as u32,
                growth_tracker: torch["_growth_tracker"].as_u64().expect("an int") as u32,
            }
        );
        // The state round-trips; impossible states are refused, changing nothing.
        let mut other = GradScaler::new();
        other.load_state_dict(&state)?;
        assert_eq!(other.state_dict(), state);
        for bad in [
            GradScalerState {
                scale: f32::INFINITY,
                ..state
            },
            GradScalerState {
                scale: 0.0,
                ..state
            },
            GradScalerState {
                backoff_factor: 1.5,
                ..state
            },
            GradScalerState {
                growth_factor: 0.5,
                ..state
            },
            GradScalerState {
                growth_interval: 0,
                ..state
            },
            GradScalerState {
                growth_tracker: 3,
                ..state
            },
        ] {
            assert!(other.load_state_dict(&bad).is_err(), "{bad:?}");
            assert_eq!(other.state_dict(), state);
        }
        // Unscaling twice before an update, or updating with nothing stepped, is an error.
        scaler.scale(&p.sum_all()?)?.backward()?;
        scaler.unscale_(&opt)?;
        assert!(scaler.unscale_(&opt).is_err());
        assert!(scaler.step(&mut opt)?);
        scaler.update()?;
        assert!(scaler.update().is_err());
        // A disabled scaler passes everything through.
        let mut off = GradScaler::new().enabled(false);
        let loss = p.sum_all()?;
        assert_eq!(off.scale(&loss)?.item()?, loss.item()?);
        assert_eq!(off.get_scale(), 1.0);
        assert!(off.step(&mut opt)?);
        off.update()?;
        Ok(())
    }
);

// The scaler's unscale is one backend call for every gradient (Backend
// `fused_unscale`) where the device has it, with the bits and the verdict
// of the composed ops: gradients of several shapes and views, with and
// without an infinity or a NaN among them.
conformance!(unscale_is_one_call_with_the_composed_bits, |dev| {
    for poison in [
        None,
        Some(f32::INFINITY),
        Some(f32::NEG_INFINITY),
        Some(f32::NAN),
    ] {
        let run = |dev: &Device| -> Result<(Vec<Vec<u32>>, bool, u64)> {
            let gen = Generator::new(21);
            let (rec, recorder) = lam::testing::Recorder::device(dev);
            let grads = [
                Tensor::randn_with(&[3, 5], &rec, &gen)?.mul_scalar(1e4)?,
                Tensor::randn_with(&[4, 6], &rec, &gen)?.t()?,
                Tensor::randn_with(&[7], &rec, &gen)?.narrow(0, 2, 4)?,
            ];
            let mut params = Vec::new();
            for (k, g) in grads.iter().enumerate() {
                let p = Tensor::zeros(g.dims(), &rec)?.requires_grad_()?;
                let g = match poison {
                    Some(v) if k == 1 => g.mul(&Tensor::full(&[1], v, &rec)?)?,
                    _ => g.clone(),
                };
                p.set_grad(Some(g))?;
                params.push(p);
            }
            let mut opt = Sgd::new(params.clone(), 0.1)?;
            let before = recorder.calls();
            let mut scaler = GradScaler::new().init_scale(1024.0);
            scaler.unscale_(&opt)?;
            let calls = recorder.calls();
            // Elementwise ops run only where the backend declined.
            let count = |m: &BTreeMap<&str, u64>| m.get("unary").copied().unwrap_or(0);
            let composed = count(&calls) - count(&before);
            let stepped = scaler.step(&mut opt)?;
            let bits = params
                .iter()
                .map(|p| -> Result<Vec<u32>> {
                    let g = p.grad().expect("a gradient").to_vec()?;
                    Ok(g.iter().map(|v| v.to_bits()).collect())
                })
                .collect::<Result<_>>()?;
            Ok((bits, stepped, composed))
        };
        let (got, stepped, composed) = run(dev)?;
        let (want, want_stepped, _) = run(&common::unfused(dev))?;
        assert_eq!(got, want, "{poison:?}");
        assert_eq!(stepped, want_stepped, "{poison:?}");
        assert_eq!(stepped, poison.is_none(), "{poison:?}");
        assert_eq!(composed > 0, common::is_unfused(dev), "{poison:?}");
    }
    Ok(())
});

/// Forward output and parameter gradients of `layer` on `x` (loss: the mean
/// square of the output), under autocast to `dtype`; backward inside the
/// region when `backward_inside` (it runs in the recorded dtypes either way).
fn run_layer(
    layer: &dyn Module,
    x: &Tensor,
    dtype: DType,
    backward_inside: bool,
    output: DType,
) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
    let dev = x.device();
    for p in layer.parameters() {
        p.zero_grad();
    }
    let loss = {
        let _ac = amp::autocast_forced(&dev, dtype)?;
        let y = layer.forward(x)?;
        assert_eq!(y.dtype(), output, "{}: a layer's output", layer.type_name());
        let loss = y.square()?.mean_all()?;
        if backward_inside {
            loss.backward()?;
        }
        (y, loss)
    };
    let (y, loss) = loss;
    if !backward_inside {
        loss.backward()?;
    }
    let mut grads = Vec::new();
    for p in layer.parameters() {
        let g = p.grad().expect("every parameter gets a gradient");
        assert_eq!(
            g.dtype(),
            DType::F32,
            "{}: a parameter's gradient",
            layer.type_name()
        );
        grads.push(g.to_vec()?);
    }
    Ok((y.to_vec()?, grads))
}

/// A layer, the shape of the input it is run on and the dtype of its output
/// under autocast.
type LayerCase = (Box<dyn Module>, Vec<usize>, DType);

// Every layer whose products autocast runs in F16 — the recurrent layers,
// attention, the transformer block, convolutions — trains under it on every
// device: F32 outputs and gradients within f16 rounding of plain F32 ones.
conformance!(every_product_layer_runs_under_autocast, |dev| {
    use lam::nn::{
        Conv1d, Conv2d, MultiheadAttention, RnnConfig, TransformerEncoderLayer, GRU, LSTM, RNN,
    };
    let gen = Generator::new(11);
    let build = || -> Result<Vec<LayerCase>> {
        let two = RnnConfig::default().num_layers(2);
        Ok(vec![
            (
                Box::new(LSTM::with_config(5, 6, two, dev)?),
                vec![4, 3, 5],
                DType::F32,
            ),
            (
                Box::new(LSTM::with_config(
                    5,
                    6,
                    two.bidirectional(true).proj_size(3),
                    dev,
                )?),
                vec![4, 3, 5],
                DType::F32,
            ),
            (
                Box::new(GRU::with_config(5, 6, two, dev)?),
                vec![4, 3, 5],
                DType::F32,
            ),
            (Box::new(RNN::new(5, 6, dev)?), vec![4, 3, 5], DType::F32),
            (
                Box::new(MultiheadAttention::new(8, 2, dev)?),
                vec![5, 2, 8],
                DType::F16,
            ),
            (
                Box::new(TransformerEncoderLayer::new(8, 2, dev)?),
                vec![5, 2, 8],
                DType::F32,
            ),
            (
                Box::new(Conv2d::new(3, 4, 3, dev)?),
                vec![2, 3, 6, 6],
                DType::F16,
            ),
            (
                Box::new(Conv1d::new(3, 4, 3, dev)?),
                vec![2, 3, 7],
                DType::F16,
            ),
        ])
    };
    let layers = lam::rng::with_generator(&gen, build)?;
    for (layer, shape, output) in &layers {
        // Dropout off, so both runs compute the same function.
        layer.eval();
        let x = Tensor::randn_with(shape, dev, &gen)?;
        let (y32, g32) = run_layer(layer.as_ref(), &x, DType::F32, false, DType::F32)?;
        let (y16, g16) = run_layer(layer.as_ref(), &x, DType::F16, false, *output)?;
        let inside = run_layer(layer.as_ref(), &x, DType::F16, true, *output)?;
        assert_eq!(
            (&y16, &g16),
            (&inside.0, &inside.1),
            "backward inside the region"
        );
        let name = layer.type_name();
        let scale = |v: &[f32]| v.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        let near = |a: &[f32], b: &[f32], what: &str| {
            let tol = 2e-2 * scale(b);
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= tol,
                    "{name}: {what}[{k}] is {x} under autocast, {y} in f32 (tolerance {tol})"
                );
            }
        };
        near(&y16, &y32, "output");
        for (k, (a, b)) in g16.iter().zip(&g32).enumerate() {
            near(a, b, &format!("gradient {k}"));
        }
    }
    Ok(())
});

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

// Under autocast a convolution rounds its image and weight to F16 and
// returns F16 (computed in f32 from the halves, its bias added in f32, the
// output rounded once), as PyTorch's; batch norm and ReLU on halves return
// halves; each keeps halves for its gradient, and the parameters' gradients
// are F32 and close to those of f32 training.
conformance!(autocast_convolution_blocks_run_in_halves, |dev| {
    use lam::nn::functional::{batch_norm, conv2d};
    let gen = Generator::new(5);
    let x = Tensor::randn_with(&[2, 4, 8, 8], dev, &gen)?;
    let w = Tensor::randn_with(&[8, 4, 3, 3], dev, &gen)?.requires_grad_()?;
    let b = Tensor::randn_with(&[8], dev, &gen)?.requires_grad_()?;
    let gamma = Tensor::randn_with(&[8], dev, &gen)?.requires_grad_()?;
    let block = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
        let y = conv2d(x, w, Some(&b), 1, 1, 1, 1)?;
        batch_norm(&y, None, None, Some(&gamma), None, true, 0.1, 1e-5)?.relu()
    };
    let halves = |t: &Tensor| t.detach().to_dtype(DType::F16)?.to_dtype(DType::F32);
    let bits = |t: &Tensor| -> Result<Vec<u16>> {
        Ok(t.to_vec_f16()?.iter().map(|h| h.to_bits()).collect())
    };
    let mut grads = Vec::new();
    for mixed in [false, true] {
        for p in [&w, &b, &gamma] {
            p.zero_grad();
        }
        let _ac = amp::autocast_forced(dev, if mixed { DType::F16 } else { DType::F32 })?;
        let y = conv2d(&x, &w, Some(&b), 1, 1, 1, 1)?;
        let z = block(&x, &w)?;
        if mixed {
            assert_eq!(y.dtype(), DType::F16);
            assert_eq!(z.dtype(), DType::F16);
            // The f32 convolution of the rounded operands, rounded once;
            // batch norm of the halves in f32, rounded once.
            let want = {
                let _off = amp::autocast(dev, DType::F32)?;
                conv2d(&halves(&x)?, &halves(&w)?, Some(&b), 1, 1, 1, 1)?
            };
            // Neighbouring halves where F16 products run on cooperative
            // matrices (see common::assert_same_halves).
            common::assert_same_halves(
                &y.to_dtype(DType::F32)?.to_vec()?,
                &want.to_dtype(DType::F16)?.to_dtype(DType::F32)?.to_vec()?,
                common::f16_products_reassociate(dev),
                "conv2d",
            );
            let bn = |t: &Tensor| batch_norm(t, None, None, Some(&gamma), None, true, 0.1, 1e-5);
            let want = bn(&y.to_dtype(DType::F32)?)?.to_dtype(DType::F16)?;
            assert_eq!(bits(&bn(&y)?)?, bits(&want)?, "batch_norm");
        }
        z.to_dtype(DType::F32)?.square()?.mean_all()?.backward()?;
        let g: Vec<Vec<f32>> = [&w, &b, &gamma]
            .iter()
            .map(|p| {
                let g = p.grad().expect("a gradient");
                assert_eq!(g.dtype(), DType::F32);
                g.to_vec()
            })
            .collect::<Result<_>>()?;
        grads.push(g);
    }
    for (k, (a, e)) in grads[1].iter().zip(&grads[0]).enumerate() {
        let scale = e.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        common::close(a, e, 3e-2 * scale);
        assert!(a.iter().all(|v| v.is_finite()), "gradient {k}");
    }
    Ok(())
});

// What a convolution under autocast keeps: the image and the weight as
// halves. A 1×1 convolution of 512 image elements into 1024 outputs holds
// the halves (1,024 + 64 bytes) and its F16 output (2,048). (What is kept
// is lam-core's choice, the same on every device; a CPU device of its own
// counts exactly, with no other test's buffers.)
#[test]
fn autocast_convolutions_keep_halves() -> Result<()> {
    let dev = Device::new(std::sync::Arc::new(lam_cpu::CpuBackend::new()));
    let x = Tensor::randn(&[2, 4, 8, 8], &dev)?;
    let w = Tensor::randn(&[8, 4, 1, 1], &dev)?.requires_grad_()?;
    let before = dev.stats().bytes_live;
    let _ac = amp::autocast_forced(&dev, DType::F16)?;
    let y = lam::nn::functional::conv2d(&x, &w, None, 1, 0, 1, 1)?;
    assert_eq!(y.dtype(), DType::F16);
    assert_eq!(dev.stats().bytes_live - before, 1024 + 64 + 2048);
    Ok(())
}
