//! Training throughput of a decoder-only transformer language model, the
//! `gpt` of `bench/torch_bench.py`: token embedding plus a learned position
//! embedding, `layers` pre-norm blocks (LayerNorm, causally masked
//! self-attention, residual; LayerNorm, `d_model → 4·d_model` GELU MLP,
//! residual — `TransformerEncoderLayer` with `norm_first`, GELU, no dropout),
//! a final LayerNorm and a linear head over the vocabulary; cross-entropy on
//! every position, AdamW (lr 3e-4, weight decay 0.01). One fixed batch of
//! random tokens `[batch, seq]` in `0..vocab` and random next tokens.
//! Reported in tokens/s (`batch · seq` per step).
//!
//! Sizes: `--layers`, `--d-model`, `--heads`, `--seq`, `--vocab`. The
//! defaults are the GPU configuration (6 layers, d_model 512, 8 heads,
//! seq 256, vocab 8192); the CPU configuration of the README is
//! `--layers 2 --d-model 128 --heads 4 --seq 64 --vocab 256`.

use lam_core::nn::{
    causal_mask, AttnMask, Embedding, LayerNorm, Linear, Module, TransformerActivation,
    TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use lam_core::optim::AdamW;
use lam_core::{manual_seed, Device, Result, Tensor};

use crate::training::{self, Workload};
use crate::{arg, take_option, Outcome};

/// The model's sizes.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    layers: usize,
    d_model: usize,
    heads: usize,
    seq: usize,
    vocab: usize,
}

/// `gpt BATCH STEPS [--layers N] [--d-model N] [--heads N] [--seq N] [--vocab N]`
pub fn run(args: &[String], device: &Device) -> Outcome {
    let mut args = args.to_vec();
    let sizes = Sizes {
        layers: take_option(&mut args, "--layers", 6)?,
        d_model: take_option(&mut args, "--d-model", 512)?,
        heads: take_option(&mut args, "--heads", 8)?,
        seq: take_option(&mut args, "--seq", 256)?,
        vocab: take_option(&mut args, "--vocab", 8192)?,
    };
    let batch: usize = arg(&args, 0, "BATCH")?;
    let steps: usize = arg(&args, 1, "STEPS")?;
    if sizes.vocab == 0 || sizes.vocab > i32::MAX as usize {
        return Err(format!("--vocab must be in 1..=2^31-1, found {}", sizes.vocab).into());
    }
    manual_seed(0);
    let model = Gpt::new(sizes, device)?;
    let vocab = sizes.vocab as i32;
    let x = Tensor::randint(0, vocab, &[batch, sizes.seq], device)?;
    let y = Tensor::randint(0, vocab, &[batch * sizes.seq], device)?;
    let mut opt = AdamW::new(model.parameters(), 3e-4)?;
    let workload = Workload {
        name: "gpt",
        batch,
        items_per_step: batch * sizes.seq,
        unit: "tokens",
        model: &model,
    };
    eprintln!(
        "lam-bench gpt: {} layers, d_model {}, {} heads, seq {}, vocab {}, {} parameters",
        sizes.layers,
        sizes.d_model,
        sizes.heads,
        sizes.seq,
        sizes.vocab,
        model.num_parameters()
    );
    training::bench_with(&workload, &mut opt, steps, device, || {
        let logits = model.forward(&x)?;
        logits
            .reshape(&[-1, sizes.vocab as isize])?
            .cross_entropy(&y)
    })
}

/// The language model; field names are those of the PyTorch counterpart.
#[derive(lam_core::nn::Module)]
#[module(crate = "lam_core")]
struct Gpt {
    tokens: Embedding,
    positions: Embedding,
    blocks: Vec<TransformerEncoderLayer>,
    norm: LayerNorm,
    head: Linear,
    /// `[seq, seq]`: 1 above the diagonal (no attending to later tokens).
    #[module(skip)]
    mask: Tensor,
    /// `0..seq` (`I32`), the positions' indices.
    #[module(skip)]
    position_ids: Tensor,
}

impl Gpt {
    fn new(s: Sizes, device: &Device) -> Result<Gpt> {
        let config = TransformerEncoderLayerConfig {
            dim_feedforward: 4 * s.d_model,
            dropout: 0.0,
            activation: TransformerActivation::Gelu,
            batch_first: true,
            norm_first: true,
            ..TransformerEncoderLayerConfig::default()
        };
        let blocks = (0..s.layers)
            .map(|_| TransformerEncoderLayer::with_config(s.d_model, s.heads, config, device))
            .collect::<Result<_>>()?;
        Ok(Gpt {
            tokens: Embedding::new(s.vocab, s.d_model, device)?,
            positions: Embedding::new(s.seq, s.d_model, device)?,
            blocks,
            norm: LayerNorm::new(&[s.d_model], device)?,
            head: Linear::new(s.d_model, s.vocab, device)?,
            mask: causal_mask(s.seq, device)?,
            position_ids: Tensor::from_vec_i32((0..s.seq as i32).collect(), &[s.seq], device)?,
        })
    }
}

impl Module for Gpt {
    /// Tokens `[B, seq]` (`I32`) → next-token logits `[B, seq, vocab]`.
    fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let mut x = self
            .tokens
            .forward(tokens)?
            .add(&self.positions.forward(&self.position_ids)?)?;
        for block in &self.blocks {
            x = block.forward(&x, Some(AttnMask::Bool(&self.mask)), None)?;
        }
        self.head.forward(&self.norm.forward(&x)?)
    }
}
