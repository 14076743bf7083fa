//! Random arguments never panic: every public `Tensor` op, layer and loss is called with
//! random shapes (rank 0 to 4, sizes 0 to 3), random dims (in and out of
//! range, negative), random index values (in and out of range) and random
//! sizes and counts, and must return a value or an error — a panic fails
//! the test and names the call. Values are not checked here (the view-fuzz
//! and differential suites do that); this suite looks for the arguments no
//! author thought of. It runs on the CPU and on each GPU adapter. A quarter
//! of the float tensors are `F16`, which every op either takes or refuses
//! with an error.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use lam::loss::{CrossEntropyLoss, NllLoss};
use lam::nn::{
    AdaptiveAvgPool2d, AvgPool2d, AvgPool2dConfig, BatchNorm1d, BatchNorm2d, Conv1d, Conv1dConfig,
    Conv2d, Conv2dConfig, Dropout, Embedding, EmbeddingConfig, GRUCell, LSTMCell, LayerNorm,
    Linear, MaxPool2d, MaxPool2dConfig, MaxUnpool2d, Module, MultiheadAttention,
    MultiheadAttentionConfig, PReLU, PaddingMode, RNNCell, RnnConfig, Softmax, Softplus,
    TransformerEncoderLayer, GRU, LSTM, RNN,
};
use lam::prelude::*;
use lam::{SdpaMask, SdpaOptions};

/// SplitMix64, so a failure names a reproducible seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shape(&mut self) -> Vec<usize> {
        let rank = self.below(5);
        (0..rank).map(|_| self.below(4)).collect()
    }

    /// A dim for a tensor of `rank`: usually valid, sometimes not.
    fn dim(&mut self) -> isize {
        self.below(11) as isize - 5
    }

    fn dims(&mut self) -> Vec<isize> {
        (0..self.below(3)).map(|_| self.dim()).collect()
    }

    fn float(&mut self) -> f32 {
        [
            0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            f32::NAN,
            f32::INFINITY,
            -3.5,
            1e30,
        ][self.below(9)]
    }

    fn tensor(&mut self, dev: &Device) -> lam::Result<Tensor> {
        let shape = self.shape();
        let n: usize = shape.iter().product();
        let v = (0..n).map(|_| self.float()).collect();
        let t = Tensor::from_vec(v, &shape, dev)?;
        if self.below(4) == 0 {
            return t.to_dtype(DType::F16);
        }
        Ok(t)
    }

    fn index(&mut self, dev: &Device) -> lam::Result<Tensor> {
        let shape = self.shape();
        let n: usize = shape.iter().product();
        let v = (0..n).map(|_| self.below(6) as i32 - 1).collect();
        Tensor::from_vec_i32(v, &shape, dev)
    }
}

type Call = fn(&mut Rng, &Device) -> lam::Result<()>;

/// Every padding mode, drawn by index.
const MODES: [PaddingMode; 4] = [
    PaddingMode::Zeros,
    PaddingMode::Reflect,
    PaddingMode::Replicate,
    PaddingMode::Circular,
];

/// Every call: a name and a use of the op with random arguments. The
/// result is dropped (read back where an error could surface late).
const CALLS: &[(&str, Call)] = &[
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
    // Layers built with random sizes (0 included), run on inputs that half
    // of the time fit the layer (so the call gets past the shape checks)
    // and otherwise have a random shape.
    ("Linear", |r, d| {
        let (i, o) = (r.below(4), r.below(4));
        run(&Linear::new(i, o, d)?, &[r.below(3), i], r, d)
    }),
    ("Conv2d", |r, d| {
        let (i, o, k) = (r.below(3), r.below(3), r.below(3));
        let shape = [r.below(3), i, r.below(5), r.below(5)];
        run(&Conv2d::new(i, o, k, d)?, &shape, r, d)
    }),
    ("Conv1d", |r, d| {
        let (i, o, k) = (r.below(3), r.below(3), r.below(3));
        run(
            &Conv1d::new(i, o, k, d)?,
            &[r.below(3), i, r.below(5)],
            r,
            d,
        )
    }),
    ("Conv2d options", |r, d| {
        let (i, o, k) = (r.below(3), r.below(3), r.below(4));
        let shape = [r.below(3), i, r.below(5), r.below(5)];
        let mut config = Conv2dConfig::default()
            .padding(r.below(4))
            .dilation(1 + r.below(2))
            .padding_mode(MODES[r.below(4)]);
        if r.below(2) == 0 {
            config = config.padding_same();
        }
        run(&Conv2d::with_config(i, o, k, config, d)?, &shape, r, d)
    }),
    ("Conv1d options", |r, d| {
        let (i, o, k) = (r.below(3), r.below(3), r.below(4));
        let mut config = Conv1dConfig::default()
            .padding(r.below(4))
            .padding_mode(MODES[r.below(4)]);
        if r.below(2) == 0 {
            config = config.padding_same();
        }
        let shape = [r.below(3), i, r.below(5)];
        run(&Conv1d::with_config(i, o, k, config, d)?, &shape, r, d)
    }),
    ("MaxPool2d", |r, d| {
        let shape = [r.below(3), r.below(3), r.below(5), r.below(5)];
        run(&MaxPool2d::new(r.below(3))?, &shape, r, d)
    }),
    ("MaxPool2d options", |r, d| {
        let shape = [r.below(3), r.below(3), r.below(5), r.below(5)];
        let config = MaxPool2dConfig::default()
            .stride(1 + r.below(3))
            .padding(r.below(2))
            .ceil_mode(r.below(2) == 0);
        let pool = MaxPool2d::with_config(1 + r.below(3), config)?;
        run(&pool, &shape, r, d)?;
        let x = r.tensor(d)?;
        let (values, indices) = pool.forward_with_indices(&x)?;
        let unpool = MaxUnpool2d::with_options(1 + r.below(3), r.below(3), r.below(2))?;
        let indices = if r.below(2) == 0 {
            indices
        } else {
            r.index(d)?
        };
        unpool.forward(&values, &indices)?.to_vec().map(drop)
    }),
    ("AvgPool2d", |r, d| {
        let shape = [r.below(3), r.below(3), r.below(5), r.below(5)];
        run(&AvgPool2d::new(r.below(3))?, &shape, r, d)
    }),
    ("AvgPool2d options", |r, d| {
        let shape = [r.below(3), r.below(3), r.below(5), r.below(5)];
        let mut config = AvgPool2dConfig::default()
            .stride(1 + r.below(3))
            .padding(r.below(2))
            .ceil_mode(r.below(2) == 0)
            .count_include_pad(r.below(2) == 0);
        if r.below(2) == 0 {
            config = config.divisor_override(r.below(3));
        }
        run(&AvgPool2d::with_config(r.below(4), config)?, &shape, r, d)
    }),
    ("AdaptiveAvgPool2d", |r, d| {
        let shape = [r.below(3), r.below(3), r.below(5), r.below(5)];
        run(&AdaptiveAvgPool2d::new(r.below(3))?, &shape, r, d)
    }),
    ("Embedding", |r, d| {
        let e = Embedding::new(r.below(4), r.below(4), d)?;
        e.forward(&r.index(d)?)?.to_vec().map(drop)
    }),
    ("LayerNorm", |r, d| {
        let norm = r.shape();
        let mut shape = vec![r.below(3)];
        shape.extend(&norm);
        run(&LayerNorm::new(&norm, d)?, &shape, r, d)
    }),
    ("layer_norm", |r, d| {
        let x = r.tensor(d)?.requires_grad_()?;
        let norm = r.shape();
        let (w, b) = (r.tensor(d)?, r.tensor(d)?);
        let use_w = (r.below(2) == 0).then_some(&w);
        let use_b = (r.below(2) == 0).then_some(&b);
        let y = lam::nn::functional::layer_norm(&x, &norm, use_w, use_b, r.float())?;
        y.to_vec()?;
        y.sum_all()?.backward()
    }),
    ("BatchNorm1d", |r, d| {
        let c = r.below(4);
        run(&BatchNorm1d::new(c, d)?, &[r.below(4), c], r, d)
    }),
    ("BatchNorm2d", |r, d| {
        let c = r.below(4);
        run(
            &BatchNorm2d::new(c, d)?,
            &[r.below(3), c, r.below(3), r.below(3)],
            r,
            d,
        )
    }),
    ("RNN", |r, d| {
        let i = r.below(3);
        run(
            &RNN::new(i, r.below(3), d)?,
            &[r.below(3), r.below(3), i],
            r,
            d,
        )
    }),
    ("LSTM", |r, d| {
        let i = r.below(3);
        run(
            &LSTM::new(i, r.below(3), d)?,
            &[r.below(3), r.below(3), i],
            r,
            d,
        )
    }),
    ("GRU", |r, d| {
        let i = r.below(3);
        run(
            &GRU::new(i, r.below(3), d)?,
            &[r.below(3), r.below(3), i],
            r,
            d,
        )
    }),
    ("MultiheadAttention", |r, d| {
        let (e, h) = (r.below(5), r.below(3));
        let m = MultiheadAttention::new(e, h, d)?;
        run(&m, &[r.below(3), r.below(3), e], r, d)
    }),
    ("Embedding options", |r, d| {
        let config = EmbeddingConfig {
            padding_idx: None,
            max_norm: Some(r.float()),
            norm_type: r.float(),
            scale_grad_by_freq: r.below(2) == 0,
        };
        let e = Embedding::with_config(r.below(4), r.below(4), config, d)?;
        let y = e.forward(&r.index(d)?)?;
        y.to_vec()?;
        y.sum_all()?.backward()
    }),
    ("LSTM proj_size", |r, d| {
        let i = r.below(3);
        let config = RnnConfig::default().proj_size(r.below(4));
        run(
            &LSTM::with_config(i, r.below(4), config, d)?,
            &[r.below(3), r.below(3), i],
            r,
            d,
        )
    }),
    ("lstm_gates", |r, d| {
        let (x, y, c) = (r.tensor(d)?, r.tensor(d)?, r.tensor(d)?);
        let (h, c) = lam::nn::functional::lstm_gates(&x, &y, &c)?;
        h.to_vec()?;
        c.to_vec().map(drop)
    }),
    ("gru_gates", |r, d| {
        let (x, y, h) = (r.tensor(d)?, r.tensor(d)?, r.tensor(d)?);
        lam::nn::functional::gru_gates(&x, &y, &h)?
            .to_vec()
            .map(drop)
    }),
    ("lstm_gates backward", |r, d| {
        // Matching shapes often enough that the gradient runs too.
        let (b, h) = (r.below(3), r.below(3));
        let pick = |r: &mut Rng, shape: &[usize]| -> lam::Result<Tensor> {
            if r.below(4) == 0 {
                r.tensor(d)
            } else {
                let n: usize = shape.iter().product();
                Tensor::from_vec((0..n).map(|_| r.float()).collect(), shape, d)
            }
        };
        let x = pick(r, &[b, 4 * h])?.requires_grad_()?;
        let y = pick(r, &[b, 4 * h])?;
        let c = pick(r, &[b, h])?.requires_grad_()?;
        let (h1, c1) = lam::nn::functional::lstm_gates(&x, &y, &c)?;
        h1.add(&c1)?.sum_all()?.backward()
    }),
    ("RNNCell", |r, d| {
        let i = r.below(3);
        run(&RNNCell::new(i, r.below(3), d)?, &[r.below(3), i], r, d)
    }),
    ("LSTMCell", |r, d| {
        let i = r.below(3);
        run(&LSTMCell::new(i, r.below(3), d)?, &[r.below(3), i], r, d)
    }),
    ("GRUCell", |r, d| {
        let i = r.below(3);
        run(&GRUCell::new(i, r.below(3), d)?, &[r.below(3), i], r, d)
    }),
    ("Softplus", |r, d| {
        run(&Softplus::new(r.float(), r.float()), &[r.below(3)], r, d)
    }),
    ("MultiheadAttention options", |r, d| {
        let (e, h) = (r.below(5), r.below(3));
        let config = MultiheadAttentionConfig {
            kdim: Some(r.below(4)),
            vdim: Some(r.below(4)),
            add_bias_kv: r.below(2) == 0,
            add_zero_attn: r.below(2) == 0,
            ..Default::default()
        };
        let m = MultiheadAttention::with_config(e, h, config, d)?;
        let (q, k, v) = (r.tensor(d)?, r.tensor(d)?, r.tensor(d)?);
        let (out, w) = m.forward_with_weights(&q, &k, &v, None, None, r.below(2) == 0)?;
        out.to_vec()?;
        w.to_vec().map(drop)
    }),
    ("TransformerEncoderLayer", |r, d| {
        let (e, h) = (r.below(5), r.below(3));
        let m = TransformerEncoderLayer::new(e, h, d)?;
        run(&m, &[r.below(3), r.below(3), e], r, d)
    }),
    ("Dropout", |r, d| {
        run(&Dropout::new(r.float())?, &[r.below(4)], r, d)
    }),
    ("PReLU", |r, d| {
        let c = r.below(3);
        run(&PReLU::new(c, d)?, &[r.below(3), c], r, d)
    }),
    ("Softmax", |r, d| {
        run(&Softmax::new(r.dim()), &[r.below(3)], r, d)
    }),
    // Losses on random inputs and targets.
    ("CrossEntropyLoss", |r, d| {
        let loss = CrossEntropyLoss::new()
            .ignore_index(r.below(3) as i32 - 1)
            .label_smoothing(r.float());
        let target = if r.below(2) == 0 {
            r.index(d)?
        } else {
            r.tensor(d)?
        };
        loss.forward(&r.tensor(d)?, &target)?.to_vec().map(drop)
    }),
    ("NllLoss", |r, d| {
        NllLoss::new()
            .forward(&r.tensor(d)?, &r.index(d)?)?
            .to_vec()
            .map(drop)
    }),
    ("mse_loss", |r, d| {
        lam::loss::mse_loss(&r.tensor(d)?, &r.tensor(d)?).map(drop)
    }),
    ("huber_loss", |r, d| {
        lam::loss::huber_loss(&r.tensor(d)?, &r.tensor(d)?, r.float()).map(drop)
    }),
    ("binary_cross_entropy", |r, d| {
        lam::loss::binary_cross_entropy(&r.tensor(d)?, &r.tensor(d)?).map(drop)
    }),
];

/// `module` on an input of shape `fits` (or, half of the time, of a random
/// shape), read back; then, if it worked, its gradient.
fn run(module: &dyn Module, fits: &[usize], r: &mut Rng, d: &Device) -> lam::Result<()> {
    let x = if r.below(2) == 0 {
        let n: usize = fits.iter().product();
        Tensor::from_vec((0..n).map(|_| r.float()).collect(), fits, d)?
    } else {
        r.tensor(d)?
    };
    let x = x.to_dtype(DType::F32)?.requires_grad_()?;
    let x = if r.below(4) == 0 {
        x.to_dtype(DType::F16)?
    } else {
        x
    };
    let y = module.forward(&x)?;
    y.to_vec()?;
    y.sum_all()?.backward()
}

/// `rounds` rounds of every call on `dev` (by default: `LAM_FUZZ_ROUNDS`
/// and `LAM_FUZZ_SEED` run more, or others, see `common::fuzz_rounds`).
fn fuzz(dev: &Device, rounds: u64) -> lam::Result<()> {
    let (rounds, base) = (common::fuzz_rounds(rounds), common::fuzz_seed_base());
    let mut failures = Vec::new();
    for round in 0..rounds {
        for (k, (name, call)) in CALLS.iter().enumerate() {
            let seed = base + round * 1000 + k as u64;
            let mut rng = Rng(seed);
            let outcome = catch_unwind(AssertUnwindSafe(|| call(&mut rng, dev)));
            if outcome.is_err() {
                failures.push(format!("{name} (seed {seed})"));
            }
        }
    }
    // A device-side fault from an out-of-range index on a GPU surfaces at
    // the next readback; clear it so other tests on the device are unaffected.
    let _ = dev.synchronize();
    assert!(failures.is_empty(), "panicked on {dev}: {failures:?}");
    Ok(())
}

#[test]
fn random_arguments_never_panic_on_the_cpu() -> lam::Result<()> {
    fuzz(&Device::cpu(), 300)
}

#[test]
fn random_arguments_never_panic_on_gpus() -> lam::Result<()> {
    // Private devices: out-of-range indices fault on the device, which must
    // not reach tests running beside this one on the shared devices.
    for api in ["vulkan", "gl"] {
        if let Some(shared) = common::gpu(api) {
            fuzz(&common::private_device(&shared), 40)?;
        }
    }
    Ok(())
}
