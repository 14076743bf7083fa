//! PyTorch's options of tensor ops, convolutions and pooling, against
//! `fixtures/options/tensor.json` (written in float64 by
//! `fixtures/make_options_tensor_fixtures.py`), on every backend:
//!
//! - `Tensor::std` / `var` with dim lists, `keepdim` and `correction`
//!   (NaN and `inf` where no degrees of freedom are left);
//! - strided slicing `x[a:b:k]` (`Tensor::slice_step`), a view;
//! - `squeeze(d)` of a dim that is not size 1 (the input, unchanged);
//! - softmax, log-softmax, mean, sum, logsumexp, var and std over zero-size dims;
//! - `F.pad` in its four modes (`functional::pad`, `pad_constant`);
//! - Conv1d/Conv2d `padding_mode` and `padding="same"` (even kernels,
//!   dilation, groups, unbatched input);
//! - MaxPool2d `ceil_mode` and `return_indices`, MaxUnpool2d, AvgPool2d
//!   `ceil_mode` and `divisor_override`.
//!
//! Each case checks the outputs and the gradients of the inputs and of every
//! parameter; the bad-argument tests expect errors naming the problem.

mod common;

use common::fixture::{self, load_state, Options};
use lam::nn::functional as F;
use lam::nn::{
    AvgPool2d, AvgPool2dConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, MaxPool2d,
    MaxPool2dConfig, MaxUnpool2d, Module, Padding, PaddingMode, Size2,
};
use lam::prelude::*;
use lam::testing::{gradcheck, GradCheck};
use serde_json::Value;

const FILE: &str = "options/tensor.json";

conformance!(tensor_op_options_match_pytorch, |dev| {
    let cases: Vec<Value> = fixture::file_cases(FILE, 60)
        .into_iter()
        .filter(|c| c["kind"] == "op")
        .collect();
    assert!(cases.len() >= 35, "{} op cases", cases.len());
    fixture::run_cases(&cases, dev, run_op_case)
});

conformance!(layer_options_match_pytorch, |dev| {
    let cases: Vec<Value> = fixture::file_cases(FILE, 60)
        .into_iter()
        .filter(|c| c["kind"] == "layer")
        .collect();
    assert!(cases.len() >= 29, "{} layer cases", cases.len());
    fixture::run_cases(&cases, dev, run_layer_case)
});

conformance!(slice_step_is_a_view, |dev| {
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[3, 4], dev)?;
    let y = x.slice_step(1, 1, 4, 2)?;
    assert_eq!(y.dims(), [3, 2]);
    assert_eq!(y.layout().strides, [4, 2]);
    assert_eq!(y.layout().offset, 1);
    assert!(std::sync::Arc::ptr_eq(&x.storage(), &y.storage()));
    assert_eq!(y.to_vec()?, [1., 3., 5., 7., 9., 11.]);
    Ok(())
});

conformance!(bad_option_arguments_are_errors, |dev| {
    let x = Tensor::ones(&[1, 2, 4, 4], dev)?;
    let expect = |r: lam::Result<Tensor>, words: &[&str]| {
        let e = r.expect_err("an error").to_string();
        for w in words {
            assert!(e.contains(w), "{e:?} does not name {w:?}");
        }
    };
    expect(x.slice_step(2, 0, 4, 0), &["step"]);
    expect(x.slice_step(2, 3, 1, 1), &["before start"]);
    expect(x.slice_step(2, 0, 5, 2), &["exceeds"]);
    expect(x.std(&[1], false, f64::NAN), &["correction"]);
    expect(F::pad(&x, &[4, 0], PaddingMode::Reflect), &["reflect", "4"]);
    expect(F::pad(&x, &[5, 0], PaddingMode::Circular), &["circular"]);
    expect(F::pad(&x, &[1], PaddingMode::Replicate), &["pairs"]);
    expect(
        F::pad(&x, &[usize::MAX, 1], PaddingMode::Zeros),
        &["overflows"],
    );
    let same_strided = Conv2dConfig::default().padding_same().stride(2);
    assert!(Conv2d::with_config(2, 2, 3, same_strided, dev).is_err());
    assert!(Conv1d::with_config(
        2,
        2,
        3,
        Conv1dConfig::default().padding_same().stride(2),
        dev
    )
    .is_err());
    let reflect = Conv2dConfig::default()
        .padding(4)
        .padding_mode(PaddingMode::Reflect);
    expect(
        Conv2d::with_config(2, 2, 3, reflect, dev)?.forward(&x),
        &["reflect"],
    );
    assert!(AvgPool2d::with_config(2, AvgPool2dConfig::default().divisor_override(0)).is_err());
    let (values, indices) = MaxPool2d::new(2)?.forward_with_indices(&x)?;
    let unpool = MaxUnpool2d::new(2)?;
    expect(unpool.forward(&values, &values), &["I32"]);
    expect(
        unpool.forward_with_size(&values, &indices, Some(Size2::new(9, 4))),
        &["output size"],
    );
    let wild = Tensor::from_vec_i32(vec![99; 8], &[1, 2, 2, 2], dev)?;
    let r = unpool
        .forward(&values, &wild)
        .and_then(|y| y.to_vec().map(|_| y));
    let _ = dev.synchronize();
    assert!(r.is_err(), "an index past the output plane is an error");
    Ok(())
});

conformance!(option_gradients_match_finite_differences, |dev| {
    let check = |f: &dyn Fn(&[Tensor]) -> lam::Result<Tensor>, x: &Tensor| {
        gradcheck(f, std::slice::from_ref(x), GradCheck::default())
    };
    // Well-separated values: no ties for max pooling, no kinks crossed.
    let x = Tensor::from_vec(
        (0..60)
            .map(|i| ((i * 37) % 60) as f32 * 0.05 - 1.4)
            .collect(),
        &[1, 2, 5, 6],
        dev,
    )?;
    check(&|a| a[0].std(&[1, 3], false, 1), &x)?;
    check(&|a| a[0].std(&[-1], true, 0.5), &x)?;
    check(&|a| a[0].slice_step(3, 1, 6, 2)?.slice_step(2, 0, 5, 3), &x)?;
    for mode in [
        PaddingMode::Reflect,
        PaddingMode::Replicate,
        PaddingMode::Circular,
    ] {
        check(&|a| F::pad(&a[0], &[2, 1, 1, 3], mode), &x)?;
    }
    check(&|a| F::pad_constant(&a[0], &[0, 2, 1, 0], 0.25), &x)?;
    let w = Tensor::from_vec(
        (0..32).map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5).collect(),
        &[2, 2, 4, 2],
        dev,
    )?;
    check(
        &|a| F::conv2d(&a[0], &w, None, 1, Padding::Same, (1, 2), 1),
        &x,
    )?;
    let ceil = MaxPool2dConfig::default()
        .stride(2)
        .padding(1)
        .ceil_mode(true);
    check(&|a| Ok(F::max_pool2d_with_indices(&a[0], 3, ceil)?.0), &x)?;
    let avg = AvgPool2dConfig::default()
        .stride(2)
        .padding(1)
        .ceil_mode(true)
        .divisor_override(4);
    check(&|a| F::avg_pool2d_with(&a[0], 3, avg), &x)?;
    let (values, indices) = MaxPool2d::new(2)?.forward_with_indices(&x)?;
    let unpool = MaxUnpool2d::new(2)?;
    check(&|a| unpool.forward(&a[0], &indices), &values)
});

/// A fixture tensor with "nan"/"inf"/"-inf" strings decoded.
fn decode(v: &Value) -> (Vec<usize>, Vec<f32>) {
    let data = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| match x {
            Value::String(s) => match s.as_str() {
                "nan" => f32::NAN,
                "inf" => f32::INFINITY,
                "-inf" => f32::NEG_INFINITY,
                other => panic!("unknown special value {other}"),
            },
            n => n.as_f64().expect("a number") as f32,
        })
        .collect();
    (fixture::shape(v), data)
}

fn tensor(v: &Value, dev: &Device) -> lam::Result<Tensor> {
    let (shape, data) = decode(v);
    Tensor::from_vec(data, &shape, dev)
}

/// An error unless `actual` has the fixture tensor's shape and values
/// (NaN where it has NaN, the same infinities).
fn expect(what: &str, actual: &Tensor, want: &Value) -> lam::Result<()> {
    let (shape, data) = decode(want);
    if actual.dims() != shape {
        return Err(Error::invalid(
            "fixture",
            format!("{what}: shape {:?}, expected {shape:?}", actual.dims()),
        ));
    }
    fixture::close(what, &actual.to_vec()?, &data, fixture::ATOL, fixture::RTOL)
}

fn isizes(v: &Value) -> Vec<isize> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|d| d.as_i64().expect("an integer") as isize)
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|d| d.as_u64().expect("a size") as usize)
        .collect()
}

fn mode(name: &str) -> PaddingMode {
    match name {
        "reflect" => PaddingMode::Reflect,
        "replicate" => PaddingMode::Replicate,
        "circular" => PaddingMode::Circular,
        _ => PaddingMode::Zeros,
    }
}

/// One `op` case: outputs and input gradients.
fn run_op_case(case: &Value, dev: &Device) -> lam::Result<()> {
    let a = &case["args"];
    let inputs = case["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|v| tensor(v, dev)?.requires_grad_())
        .collect::<lam::Result<Vec<_>>>()?;
    let x = &inputs[0];
    let dims = || isizes(&a["dims"]);
    let keep = || a["keepdim"].as_bool().expect("keepdim");
    let correction = || a["correction"].as_f64().expect("correction");
    let dim = || a["dim"].as_i64().expect("dim") as isize;
    let size = |k: &str| a[k].as_u64().expect("a size") as usize;
    let op = case["op"].as_str().expect("op");
    let y = match op {
        "std" => x.std(&dims(), keep(), correction())?,
        "var" => x.var(&dims(), keep(), correction())?,
        "mean" => x.mean(&dims(), keep())?,
        "sum" => x.sum(&dims(), keep())?,
        "logsumexp" => x.logsumexp(&dims(), keep())?,
        "squeeze" => x.squeeze(dim())?,
        "softmax" => x.softmax(dim())?,
        "log_softmax" => x.log_softmax(dim())?,
        "slice_step" => {
            let y = x.slice_step(dim(), size("start"), size("end"), size("step"))?;
            match a["then"].as_str() {
                Some("matmul") => {
                    let k = y.dims()[y.rank() - 1];
                    let w = Tensor::arange(0.0, (2 * k) as f32, 1.0, dev)?
                        .reshape_exact(&[k, 2])?
                        .div_scalar(7.0)?;
                    y.matmul(&w)?
                }
                Some("slice_again") => {
                    let n = y.dims()[1];
                    y.slice_step(1, 1, n, 2)?
                }
                _ => y,
            }
        }
        "pad" => {
            let pad = usizes(&a["pad"]);
            let value = a["value"].as_f64().expect("value") as f32;
            match a["mode"].as_str().expect("mode") {
                "constant" => F::pad_constant(x, &pad, value)?,
                m => F::pad(x, &pad, mode(m))?,
            }
        }
        other => return Err(Error::invalid("fixture", format!("unknown op {other}"))),
    };
    expect("output", &y, &case["outputs"][0])?;
    let g = tensor(&case["grad_outputs"][0], dev)?;
    y.mul(&g)?.sum_all()?.backward()?;
    for (i, x) in inputs.iter().enumerate() {
        let grad = match x.grad() {
            Some(grad) => grad,
            None => Tensor::zeros(x.dims(), dev)?,
        };
        expect(
            &format!("gradient of input {i}"),
            &grad,
            &case["input_grads"][i],
        )?;
    }
    Ok(())
}

/// One `layer` case: output (and indices), input and parameter gradients.
fn run_layer_case(case: &Value, dev: &Device) -> lam::Result<()> {
    let c = &case["config"];
    let o = Options(c);
    let x = tensor(&case["input"], dev)?.requires_grad_()?;
    let pair = |k: &str, default: usize| -> Size2 {
        match &c[k] {
            Value::Array(v) => Size2::new(
                v[0].as_u64().unwrap() as usize,
                v[1].as_u64().unwrap() as usize,
            ),
            Value::Number(n) => (n.as_u64().unwrap() as usize).into(),
            _ => default.into(),
        }
    };
    let kernel = pair("kernel", 1);
    let mut indices = None;
    let mut module: Option<Box<dyn Module>> = None;
    let mut shown = None;
    let y = match case["layer"].as_str().expect("layer") {
        "Conv2d" => {
            let mut cfg = Conv2dConfig::default()
                .stride(pair("stride", 1))
                .dilation(pair("dilation", 1))
                .groups(o.usize("groups", 1))
                .bias(o.bool("bias", true))
                .padding_mode(mode(c["padding_mode"].as_str().unwrap_or("zeros")));
            cfg = match &c["padding"] {
                Value::String(s) if s == "same" => cfg.padding_same(),
                Value::String(_) => cfg.padding(0),
                _ => cfg.padding(pair("padding", 0)),
            };
            let m = Conv2d::with_config(o.usize("in", 1), o.usize("out", 1), kernel, cfg, dev)?;
            load_state(&m, &case["state"], dev)?;
            let y = m.forward(&x)?;
            shown = Some(m.to_string());
            module = Some(Box::new(m));
            y
        }
        "Conv1d" => {
            let mut cfg = Conv1dConfig::default()
                .stride(o.usize("stride", 1))
                .dilation(o.usize("dilation", 1))
                .groups(o.usize("groups", 1))
                .bias(o.bool("bias", true))
                .padding_mode(mode(c["padding_mode"].as_str().unwrap_or("zeros")));
            cfg = match &c["padding"] {
                Value::String(s) if s == "same" => cfg.padding_same(),
                _ => cfg.padding(o.usize("padding", 0)),
            };
            let m = Conv1d::with_config(o.usize("in", 1), o.usize("out", 1), kernel.w, cfg, dev)?;
            load_state(&m, &case["state"], dev)?;
            let y = m.forward(&x)?;
            shown = Some(m.to_string());
            module = Some(Box::new(m));
            y
        }
        "MaxPool2d" => {
            let mut cfg = MaxPool2dConfig::default()
                .padding(pair("padding", 0))
                .dilation(pair("dilation", 1))
                .ceil_mode(o.bool("ceil_mode", false));
            if !c["stride"].is_null() {
                cfg = cfg.stride(pair("stride", 1));
            }
            let m = MaxPool2d::with_config(kernel, cfg)?;
            shown = Some(m.to_string());
            if o.bool("return_indices", false) {
                let (y, i) = m.forward_with_indices(&x)?;
                // The functional form gives the same.
                let (y2, i2) = F::max_pool2d_with_indices(&x.detach(), kernel, cfg)?;
                assert_eq!(i.to_vec_i32()?, i2.to_vec_i32()?);
                assert_eq!(y.to_vec()?, y2.to_vec()?);
                indices = Some(i);
                y
            } else {
                m.forward(&x)?
            }
        }
        "AvgPool2d" => {
            let mut cfg = AvgPool2dConfig::default()
                .padding(pair("padding", 0))
                .count_include_pad(o.bool("count_include_pad", true))
                .ceil_mode(o.bool("ceil_mode", false));
            if !c["stride"].is_null() {
                cfg = cfg.stride(pair("stride", 1));
            }
            if let Some(d) = c["divisor_override"].as_u64() {
                cfg = cfg.divisor_override(d as usize);
            }
            let y = AvgPool2d::with_config(kernel, cfg)?.forward(&x)?;
            let y2 = F::avg_pool2d_with(&x.detach(), kernel, cfg)?;
            fixture::close("functional form", &y2.to_vec()?, &y.to_vec()?, 0.0, 0.0)?;
            y
        }
        "MaxUnpool2d" => {
            let stride = if c["stride"].is_null() {
                kernel
            } else {
                pair("stride", 1)
            };
            let m = MaxUnpool2d::with_options(kernel, stride, pair("padding", 0))?;
            let i = fixture::tensor(&case["indices"], DType::I32, dev)?;
            let size = (!c["output_size"].is_null()).then(|| pair("output_size", 0));
            m.forward_with_size(&x, &i, size)?
        }
        other => return Err(Error::invalid("fixture", format!("unknown layer {other}"))),
    };
    expect("output", &y, &case["output"])?;
    if let Some(i) = indices {
        let want = &case["output_indices"];
        let got: Vec<f32> = i.to_vec_i32()?.into_iter().map(|v| v as f32).collect();
        if i.dims() != fixture::shape(want) {
            return Err(Error::invalid("fixture", "indices shape"));
        }
        fixture::close("indices", &got, &fixture::floats(want), 0.0, 0.0)?;
    }
    let g = tensor(&case["grad_output"], dev)?;
    y.mul(&g)?.sum_all()?.backward()?;
    let grad = x
        .grad()
        .ok_or_else(|| Error::invalid("fixture", "the input received no gradient"))?;
    expect("input gradient", &grad, &case["input_grad"])?;
    if let Some(m) = module {
        fixture::expect_param_grads(m.as_ref(), &case["grads"])?;
    }
    if let (Some(want), Some(shown)) = (case["repr"].as_str(), shown) {
        if shown != want {
            return Err(Error::invalid(
                "fixture",
                format!("print(model) shows {shown:?}, PyTorch {want:?}"),
            ));
        }
    }
    Ok(())
}
