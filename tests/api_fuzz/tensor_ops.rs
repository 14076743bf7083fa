//! The `Tensor` ops of the fuzz: views, reductions, attention, elementwise
//! and index ops, constructors and readback, on random tensors, dims and
//! index values.

use lam::prelude::*;
use lam::{SdpaMask, SdpaOptions};

use super::{Call, Rng, MODES};

/// Every `Tensor` call: a name and a use of the op with random arguments.
pub(super) const CALLS: &[(&str, Call)] = &[
    ("reshape", |r, d| r.tensor(d)?.reshape(&r.dims()).map(drop)),
    ("permute", |r, d| {
        let x = r.tensor(d)?;
        let p: Vec<usize> = (0..r.below(5)).map(|_| r.below(5)).collect();
        x.permute(&p).map(drop)
    }),
    ("transpose", |r, d| {
        r.tensor(d)?.transpose(r.dim(), r.dim()).map(drop)
    }),
    ("t", |r, d| r.tensor(d)?.t().map(drop)),
    ("unsqueeze", |r, d| {
        r.tensor(d)?.unsqueeze(r.dim()).map(drop)
    }),
    ("squeeze", |r, d| r.tensor(d)?.squeeze(r.dim()).map(drop)),
    ("flatten", |r, d| {
        r.tensor(d)?.flatten(r.dim(), r.dim()).map(drop)
    }),
    ("expand", |r, d| r.tensor(d)?.expand(&r.dims()).map(drop)),
    ("broadcast_to", |r, d| {
        r.tensor(d)?.broadcast_to(&r.shape()).map(drop)
    }),
    ("narrow", |r, d| {
        r.tensor(d)?
            .narrow(r.dim(), r.below(4), r.below(4))
            .map(drop)
    }),
    ("slice", |r, d| {
        r.tensor(d)?
            .slice(r.dim(), r.below(4), r.below(4))
            .map(drop)
    }),
    ("slice_step", |r, d| {
        r.tensor(d)?
            .slice_step(r.dim(), r.below(4), r.below(4), r.below(3))
            .map(drop)
    }),
    ("get", |r, d| r.tensor(d)?.get(r.below(4)).map(drop)),
    ("chunk", |r, d| {
        r.tensor(d)?.chunk(r.below(4), r.dim()).map(drop)
    }),
    ("split", |r, d| {
        r.tensor(d)?.split(r.below(4), r.dim()).map(drop)
    }),
    ("cat", |r, d| {
        Tensor::cat(&[r.tensor(d)?, r.tensor(d)?], r.dim())?
            .to_vec()
            .map(drop)
    }),
    ("stack", |r, d| {
        Tensor::stack(&[r.tensor(d)?, r.tensor(d)?], r.dim()).map(drop)
    }),
    ("sum", |r, d| {
        r.tensor(d)?
            .sum(&r.dims(), r.below(2) == 0)?
            .to_vec()
            .map(drop)
    }),
    ("mean", |r, d| {
        r.tensor(d)?
            .mean(&r.dims(), r.below(2) == 0)?
            .to_vec()
            .map(drop)
    }),
    ("var", |r, d| {
        r.tensor(d)?
            .var(&r.dims(), false, r.below(2) == 0)
            .map(drop)
    }),
    ("std", |r, d| {
        let correction = [0.0, 1.0, 2.5, f64::NAN][r.below(4)];
        r.tensor(d)?
            .std(&r.dims(), r.below(2) == 0, correction)?
            .to_vec()
            .map(drop)
    }),
    ("pad", |r, d| {
        let pad: Vec<usize> = (0..r.below(5)).map(|_| r.below(4)).collect();
        let mode = MODES[r.below(4)];
        lam::nn::functional::pad(&r.tensor(d)?, &pad, mode)?
            .to_vec()
            .map(drop)
    }),
    ("max", |r, d| r.tensor(d)?.max(&r.dims(), false).map(drop)),
    ("argmax", |r, d| {
        r.tensor(d)?.argmax(r.dim(), r.below(2) == 0).map(drop)
    }),
    ("logsumexp", |r, d| {
        r.tensor(d)?.logsumexp(&r.dims(), false).map(drop)
    }),
    ("sum_to_shape", |r, d| {
        r.tensor(d)?.sum_to_shape(&r.shape()).map(drop)
    }),
    ("softmax", |r, d| {
        r.tensor(d)?.softmax(r.dim())?.to_vec().map(drop)
    }),
    ("scaled_dot_product_attention", |r, d| {
        let (q, k, v, m) = (r.tensor(d)?, r.tensor(d)?, r.tensor(d)?, r.tensor(d)?);
        let mask = [None, Some(SdpaMask::Bool(&m)), Some(SdpaMask::Additive(&m))][r.below(3)];
        let options = SdpaOptions {
            mask,
            causal: r.below(2) == 0,
            scale: [None, Some(r.float())][r.below(2)],
            dropout_p: [0.0, r.float()][r.below(2)],
        };
        Tensor::scaled_dot_product_attention(&q, &k, &v, options)?
            .to_vec()
            .map(drop)
    }),
    ("scaled_dot_product_attention fitting", |r, d| {
        // Shapes that mostly fit, with sizes 0 and 1, values with NaN, inf
        // and 1e30, and gradients.
        let (b, l, s, e, ev) = (r.below(3), r.below(4), r.below(4), r.below(3), r.below(3));
        let values = |shape: &[usize], r: &mut Rng| {
            let n: usize = shape.iter().product();
            Tensor::from_vec((0..n).map(|_| r.float()).collect(), shape, d)?.requires_grad_()
        };
        let q = values(&[b, l, e], r)?;
        let k = values(&[b, s, e], r)?;
        let v = values(&[b, s, ev], r)?;
        let m = values(&[[1, b][r.below(2)], l, [1, s][r.below(2)]], r)?;
        let mask = [None, Some(SdpaMask::Bool(&m)), Some(SdpaMask::Additive(&m))][r.below(3)];
        let options = SdpaOptions {
            mask,
            causal: r.below(2) == 0,
            ..SdpaOptions::default()
        };
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, options)?;
        y.to_vec()?;
        y.sum_all()?.backward()
    }),
    ("log_softmax", |r, d| {
        r.tensor(d)?.log_softmax(r.dim()).map(drop)
    }),
    ("add", |r, d| r.tensor(d)?.add(&r.tensor(d)?).map(drop)),
    ("pow", |r, d| r.tensor(d)?.pow(&r.tensor(d)?).map(drop)),
    ("where_cond", |r, d| {
        Tensor::where_cond(&r.tensor(d)?, &r.tensor(d)?, &r.tensor(d)?).map(drop)
    }),
    ("matmul", |r, d| {
        r.tensor(d)?.matmul(&r.tensor(d)?).map(drop)
    }),
    ("clamp", |r, d| {
        r.tensor(d)?.clamp(r.float(), r.float()).map(drop)
    }),
    ("index_select", |r, d| {
        let out = r.tensor(d)?.index_select(r.dim(), &r.index(d)?)?;
        out.to_vec().map(drop)
    }),
    ("gather", |r, d| {
        r.tensor(d)?
            .gather(r.dim(), &r.index(d)?)?
            .to_vec()
            .map(drop)
    }),
    ("scatter_add", |r, d| {
        let i = r.index(d)?;
        let src = Tensor::ones(i.dims(), d)?;
        r.tensor(d)?
            .scatter_add(r.dim(), &i, &src)?
            .to_vec()
            .map(drop)
    }),
    ("cross_entropy", |r, d| {
        r.tensor(d)?.cross_entropy(&r.index(d)?)?.to_vec().map(drop)
    }),
    ("to_dtype", |r, d| {
        r.tensor(d)?
            .to_dtype(lam::DType::I32)?
            .to_vec_i32()
            .map(drop)
    }),
    ("zeros", |r, d| Tensor::zeros(&r.shape(), d).map(drop)),
    ("arange", |r, d| {
        Tensor::arange(r.float(), r.float(), r.float(), d).map(drop)
    }),
    ("eye", |r, d| Tensor::eye(r.below(4), d).map(drop)),
    ("randint", |r, d| {
        Tensor::randint(r.below(4) as i32 - 1, r.below(4) as i32 - 1, &r.shape(), d).map(drop)
    }),
    ("bernoulli", |r, d| {
        Tensor::bernoulli(&r.shape(), r.float(), d).map(drop)
    }),
    ("item", |r, d| r.tensor(d)?.item().map(drop)),
    ("to_vec2", |r, d| r.tensor(d)?.to_vec2().map(drop)),
    ("dim", |r, d| r.tensor(d)?.dim(r.dim()).map(drop)),
];
