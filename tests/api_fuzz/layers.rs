//! The layers of the fuzz (`lam::nn`), built with random sizes (0
//! included) and options, and the functional forms with gradients of their
//! own (layer norm, the recurrent gates).

use lam::nn::{
    AdaptiveAvgPool2d, AvgPool2d, AvgPool2dConfig, BatchNorm1d, BatchNorm2d, Conv1d, Conv1dConfig,
    Conv2d, Conv2dConfig, Dropout, Embedding, EmbeddingConfig, GRUCell, LSTMCell, LayerNorm,
    Linear, MaxPool2d, MaxPool2dConfig, MaxUnpool2d, Module, MultiheadAttention,
    MultiheadAttentionConfig, PReLU, RNNCell, RnnConfig, Softmax, Softplus,
    TransformerEncoderLayer, GRU, LSTM, RNN,
};
use lam::prelude::*;

use super::{Call, Rng, MODES};

/// Every layer call.
pub(super) const CALLS: &[(&str, Call)] = &[
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
