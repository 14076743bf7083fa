//! Family `layers`: the layers of `lam::nn` outside the sequence models, as
//! functions and as modules. A module case builds the layer from the case's
//! options, loads its parameters and buffers by PyTorch's `state_dict`
//! names (lam must have exactly PyTorch's parameter names), runs it, and
//! compares outputs, buffers and parameter gradients.

use lam::nn::functional as F;
use lam::nn::*;
use lam::prelude::*;

use super::check::Tol;
use super::fixture::Args;
use super::runner::{Inputs, Outcome};

pub fn tol(_op: &str, grad: bool) -> Tol {
    let base = Tol::new(1e-6, 2e-5, 1e-5);
    if grad {
        base.times(4.0)
    } else {
        base
    }
}

pub fn layers(op: &str, a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let d = x.data();
    let opt = |i: usize| d.get(i);
    let one = |r: lam::Result<Tensor>| r.map(Outcome::from);
    match op {
        "linear" => one(F::linear(&d[0], &d[1], opt(2))),
        "linear_relu" => one(F::linear_act(&d[0], &d[1], opt(2), LinearActivation::Relu)),
        "conv2d" => one(F::conv2d(
            &d[0],
            &d[1],
            opt(2),
            size2(a, "stride"),
            size2(a, "padding"),
            size2(a, "dilation"),
            a.usize("groups"),
        )),
        "conv1d" => one(F::conv1d(
            &d[0],
            &d[1],
            opt(2),
            a.usizes("stride")[0],
            a.usizes("padding")[0],
            a.usizes("dilation")[0],
            a.usize("groups"),
        )),
        "unfold" => one(F::unfold(&d[0], &window(a)?, a.f32("pad_value"))),
        "fold" => one(F::fold(&d[0], &window(a)?, &a.usizes("image"))),
        "max_pool2d" => one(F::max_pool2d(
            &d[0],
            size2(a, "kernel"),
            size2(a, "stride"),
            size2(a, "padding"),
            size2(a, "dilation"),
        )),
        "avg_pool2d" => one(F::avg_pool2d(
            &d[0],
            size2(a, "kernel"),
            size2(a, "stride"),
            size2(a, "padding"),
            a.bool("count_include_pad"),
        )),
        "adaptive_avg_pool2d" => one(F::adaptive_avg_pool2d(&d[0], size2(a, "output"))),
        "pad" => one(match a.str("mode") {
            "constant" => F::pad_constant(&d[0], &a.usizes("pad"), a.f32("value")),
            mode => F::pad(
                &d[0],
                &a.usizes("pad"),
                match mode {
                    "reflect" => PaddingMode::Reflect,
                    "replicate" => PaddingMode::Replicate,
                    _ => PaddingMode::Circular,
                },
            ),
        }),
        "conv2d_same" => one(F::conv2d(
            &d[0],
            &d[1],
            None,
            1,
            Padding::Same,
            size2(a, "dilation"),
            1,
        )),
        "conv1d_same" => one(F::conv1d(
            &d[0],
            &d[1],
            None,
            1,
            Padding::Same,
            a.usizes("dilation")[0],
            1,
        )),
        "max_pool2d_ceil" => {
            let config = MaxPool2dConfig::default()
                .stride(size2(a, "stride"))
                .padding(size2(a, "padding"))
                .dilation(size2(a, "dilation"))
                .ceil_mode(true);
            let (values, indices) = F::max_pool2d_with_indices(&d[0], size2(a, "kernel"), config)?;
            Ok(vec![values, indices].into())
        }
        "avg_pool2d_ceil" => {
            let mut config = AvgPool2dConfig::default()
                .stride(size2(a, "stride"))
                .padding(size2(a, "padding"))
                .count_include_pad(a.bool("count_include_pad"))
                .ceil_mode(true);
            if let Some(d) = a.opt_usize("divisor_override") {
                config = config.divisor_override(d);
            }
            one(F::avg_pool2d_with(&d[0], size2(a, "kernel"), config))
        }
        "max_unpool2d" => {
            let unpool = MaxUnpool2d::with_options(
                size2(a, "kernel"),
                size2(a, "stride"),
                size2(a, "padding"),
            )?;
            one(unpool.forward_with_size(&d[0], &d[1], Some(size2(a, "output"))))
        }
        "batch_norm" => {
            let (rm, rv) = (&d[1], &d[2]);
            let (w, b) = if a.bool("affine") {
                (Some(&d[3]), Some(&d[4]))
            } else {
                (None, None)
            };
            let y = F::batch_norm(
                &d[0],
                Some(rm),
                Some(rv),
                w,
                b,
                a.bool("training"),
                a.f32("momentum"),
                a.f32("eps"),
            )?;
            Ok(vec![y, rm.clone(), rv.clone()].into())
        }
        "layer_norm" => one(F::layer_norm(
            &d[0],
            &a.usizes("shape"),
            opt(1),
            opt(2),
            a.f32("eps"),
        )),
        "embedding" => one(F::embedding(&d[0], &d[1], a.opt_usize("padding_idx"))),
        "prelu" => one(F::prelu(&d[0], &d[1])),
        "dropout" => one(F::dropout(&d[0], a.f32("p"), a.bool("training"))),
        "Embedding_new" => {
            one(Embedding::new(a.usize("num"), a.usize("dim"), dev).map(|e| e.weight))
        }
        _ => module(op, a, x, dev),
    }
}

/// Module cases: build, load by name, run.
fn module(op: &str, a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let d = x.data();
    match op {
        "BatchNorm1d" | "BatchNorm2d" => batch_norm_module(op, a, x, dev),
        "MaxPool2d" => {
            let mut cfg = MaxPool2dConfig::default();
            if a.has("stride") {
                cfg = cfg.stride(size2(a, "stride"));
            }
            run(&MaxPool2d::with_config(size2(a, "kernel"), cfg)?, x, &d[0])
        }
        "AvgPool2d" => {
            let cfg = AvgPool2dConfig::default()
                .padding(size2(a, "padding"))
                .count_include_pad(a.bool("count_include_pad"));
            run(&AvgPool2d::with_config(size2(a, "kernel"), cfg)?, x, &d[0])
        }
        "AdaptiveAvgPool2d" => run(&AdaptiveAvgPool2d::new(size2(a, "output"))?, x, &d[0]),
        "Dropout_eval" => {
            let m = Dropout::new(a.f32("p"))?;
            m.eval();
            run(&m, x, &d[0])
        }
        "Dropout_p0" | "Dropout_p1" => run(&Dropout::new(a.f32("p"))?, x, &d[0]),
        _ => {
            let m = build(op, a, dev)?;
            run(m.as_ref(), x, &d[0])
        }
    }
}

/// The layers whose forward is `Module::forward` of one input.
fn build(op: &str, a: &Args, dev: &Device) -> lam::Result<Box<dyn Module>> {
    Ok(match op {
        "Linear" => Box::new(Linear::with_config(
            a.usize("in"),
            a.usize("out"),
            LinearConfig {
                bias: a.bool("bias"),
            },
            dev,
        )?),
        "Sequential_linear_relu" => Box::new(
            Sequential::new()
                .add(Linear::new(a.usize("in"), a.usize("hidden"), dev)?)
                .add(ReLU)
                .add(Linear::new(a.usize("hidden"), a.usize("out"), dev)?),
        ),
        "Conv2d" => {
            let cfg = Conv2dConfig::default()
                .stride(size2(a, "stride"))
                .padding(size2(a, "padding"))
                .dilation(size2(a, "dilation"))
                .groups(a.usize("groups"))
                .bias(a.bool("bias"));
            Box::new(Conv2d::with_config(
                a.usize("in"),
                a.usize("out"),
                size2(a, "kernel"),
                cfg,
                dev,
            )?)
        }
        "Conv1d" => {
            let cfg = Conv1dConfig::default()
                .stride(a.usizes("stride")[0])
                .padding(a.usizes("padding")[0])
                .dilation(a.usizes("dilation")[0])
                .groups(a.usize("groups"))
                .bias(a.bool("bias"));
            Box::new(Conv1d::with_config(
                a.usize("in"),
                a.usize("out"),
                a.usizes("kernel")[0],
                cfg,
                dev,
            )?)
        }
        "LayerNorm" => Box::new(LayerNorm::with_config(
            &a.usizes("shape"),
            LayerNormConfig {
                eps: a.f32("eps"),
                elementwise_affine: a.bool("affine"),
                bias: a.bool("bias"),
            },
            dev,
        )?),
        "Embedding" => Box::new(Embedding::with_config(
            a.usize("num"),
            a.usize("dim"),
            EmbeddingConfig {
                padding_idx: a.opt_usize("padding_idx"),
                ..Default::default()
            },
            dev,
        )?),
        "PReLU" => Box::new(PReLU::new(a.usize("num"), dev)?),
        "ReLU" => Box::new(ReLU),
        "ReLU6" => Box::new(ReLU6),
        "SiLU" => Box::new(SiLU),
        "Sigmoid" => Box::new(Sigmoid),
        "Tanh" => Box::new(Tanh),
        "LeakyReLU" => Box::new(LeakyReLU::new(a.f32("slope"))),
        "ELU" => Box::new(ELU::new(a.f32("alpha"))),
        "GELU" => Box::new(GELU::default()),
        "GELU_tanh" => Box::new(GELU::new(GeluApproximate::Tanh)),
        "Softmax" => Box::new(Softmax::new(a.isize("dim"))),
        "LogSoftmax" => Box::new(LogSoftmax::new(a.isize("dim"))),
        "Flatten" => Box::new(Flatten::with_dims(a.isize("start"), a.isize("end"))),
        other => panic!("unknown layers op {other}"),
    })
}

/// A training step then an evaluation step; outputs both, then the
/// running statistics and the batch count when tracked.
fn batch_norm_module(op: &str, a: &Args, x: &Inputs, dev: &Device) -> lam::Result<Outcome> {
    let cfg = BatchNormConfig {
        eps: 1e-5,
        momentum: a.has("momentum").then(|| a.f32("momentum")),
        affine: a.bool("affine"),
        track_running_stats: a.bool("track"),
    };
    let c = a.usize("c");
    let m: Box<dyn Module> = if op == "BatchNorm2d" {
        Box::new(BatchNorm2d::with_config(c, cfg, dev)?)
    } else {
        Box::new(BatchNorm1d::with_config(c, cfg, dev)?)
    };
    load(m.as_ref(), x)?;
    let d = x.data();
    m.train();
    let y1 = m.forward(&d[0])?;
    m.eval();
    let y2 = m.forward(&d[1])?;
    let mut outputs = vec![y1, y2];
    if a.bool("track") {
        let state = m.state_dict();
        for name in ["running_mean", "running_var", "num_batches_tracked"] {
            let t = state
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| Error::invalid("differential", format!("no buffer {name}")))?;
            outputs.push(t);
        }
    }
    Ok(Outcome {
        outputs,
        params: m.named_parameters(),
    })
}

/// Loads the named inputs into `m` and runs `m.forward(input)`.
pub fn run(m: &dyn Module, x: &Inputs, input: &Tensor) -> lam::Result<Outcome> {
    load(m, x)?;
    let y = m.forward(input)?;
    Ok(Outcome {
        outputs: vec![y],
        params: m.named_parameters(),
    })
}

/// Sets every named input into the module tensor of that `state_dict`
/// name, after checking that lam's parameter names are PyTorch's.
pub fn load(m: &dyn Module, x: &Inputs) -> lam::Result<()> {
    let state = m.state_dict();
    let mut ours: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    let mut theirs: Vec<String> = x
        .named()
        .filter(|(n, _)| !matches!(*n, "running_mean" | "running_var" | "num_batches_tracked"))
        .map(|(n, _)| n.to_string())
        .collect();
    ours.sort();
    theirs.sort();
    if ours != theirs {
        return Err(Error::invalid(
            "differential",
            format!("parameter names {ours:?}, PyTorch has {theirs:?}"),
        ));
    }
    for (name, value) in x.named() {
        let (_, t) = state
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::invalid("differential", format!("lam has no {name}")))?;
        t.set_data(value)?;
    }
    Ok(())
}

pub fn size2(a: &Args, key: &str) -> Size2 {
    let v = a.usizes(key);
    match v.as_slice() {
        [h, w] => Size2::new(*h, *w),
        [k] => Size2::new(*k, *k),
        _ => panic!("{key}: not a size pair"),
    }
}

fn window(a: &Args) -> lam::Result<Window> {
    Window::new(
        "differential",
        size2(a, "kernel"),
        size2(a, "stride"),
        size2(a, "padding"),
        size2(a, "dilation"),
    )
}
