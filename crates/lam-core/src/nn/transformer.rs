//! [`TransformerEncoderLayer`] (PyTorch's `nn.TransformerEncoderLayer`):
//! self-attention then a two-layer feed-forward block, each wrapped in a
//! residual connection and a LayerNorm — after the residual by default
//! (post-norm), or before the block with `norm_first` (pre-norm).
//!
//! Submodules carry PyTorch's names (`self_attn`, `linear1`, `linear2`,
//! `norm1`, `norm2`), so `state_dict` keys such as
//! `self_attn.in_proj_weight` and `linear1.bias` match PyTorch's and weights
//! interchange through safetensors checkpoints.

use super::summary::record;
use super::{
    AttnMask, Dropout, LayerNorm, LayerNormConfig, Linear, LinearConfig, Module,
    MultiheadAttention, MultiheadAttentionConfig,
};
use crate::{Device, Error, Result, Tensor};

/// The feed-forward block's activation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransformerActivation {
    /// ReLU (PyTorch's default).
    #[default]
    Relu,
    /// Exact GELU.
    Gelu,
}

/// Options of [`TransformerEncoderLayer`] beyond `d_model` and `nhead`
/// (PyTorch's keyword arguments and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerEncoderLayerConfig {
    /// Width of the feed-forward block (default 2048).
    pub dim_feedforward: usize,
    /// Dropout after attention, inside and after the feed-forward block,
    /// and on the attention weights, in training mode (default 0.1).
    pub dropout: f32,
    /// Feed-forward activation (default ReLU).
    pub activation: TransformerActivation,
    /// LayerNorm epsilon (default 1e-5).
    pub layer_norm_eps: f32,
    /// Input and output are `[B, T, E]` (default false: `[T, B, E]`).
    pub batch_first: bool,
    /// LayerNorm before each block instead of after each residual (default false).
    pub norm_first: bool,
    /// Biases in the linear layers and LayerNorms (default true).
    pub bias: bool,
}

impl Default for TransformerEncoderLayerConfig {
    fn default() -> Self {
        TransformerEncoderLayerConfig {
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: TransformerActivation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
        }
    }
}

/// One Transformer encoder block. The fields are in PyTorch's order of
/// registration, which is the order of its `state_dict` and its printout.
#[derive(Module)]
pub struct TransformerEncoderLayer {
    /// Self-attention.
    pub self_attn: MultiheadAttention,
    /// `d_model → dim_feedforward`.
    pub linear1: Linear,
    dropout: Dropout,
    /// `dim_feedforward → d_model`.
    pub linear2: Linear,
    /// LayerNorm of the attention block.
    pub norm1: LayerNorm,
    /// LayerNorm of the feed-forward block.
    pub norm2: LayerNorm,
    dropout1: Dropout,
    dropout2: Dropout,
    #[module(skip)]
    config: TransformerEncoderLayerConfig,
}

impl TransformerEncoderLayer {
    /// `nn.TransformerEncoderLayer(d_model, nhead)`.
    pub fn new(d_model: usize, nhead: usize, device: &Device) -> Result<Self> {
        Self::with_config(
            d_model,
            nhead,
            TransformerEncoderLayerConfig::default(),
            device,
        )
    }

    /// `nn.TransformerEncoderLayer` with options.
    pub fn with_config(
        d_model: usize,
        nhead: usize,
        config: TransformerEncoderLayerConfig,
        device: &Device,
    ) -> Result<Self> {
        if config.dim_feedforward == 0 {
            return Err(Error::invalid(
                "TransformerEncoderLayer",
                "dim_feedforward must be positive",
            ));
        }
        let attn_config = MultiheadAttentionConfig {
            dropout: config.dropout,
            bias: config.bias,
            batch_first: config.batch_first,
            ..MultiheadAttentionConfig::default()
        };
        let linear_config = LinearConfig { bias: config.bias };
        let norm_config = LayerNormConfig {
            eps: config.layer_norm_eps,
            elementwise_affine: true,
            bias: config.bias,
        };
        Ok(TransformerEncoderLayer {
            self_attn: MultiheadAttention::with_config(d_model, nhead, attn_config, device)?,
            linear1: Linear::with_config(d_model, config.dim_feedforward, linear_config, device)?,
            dropout: Dropout::new(config.dropout)?,
            linear2: Linear::with_config(config.dim_feedforward, d_model, linear_config, device)?,
            norm1: LayerNorm::with_config(&[d_model], norm_config, device)?,
            norm2: LayerNorm::with_config(&[d_model], norm_config, device)?,
            dropout1: Dropout::new(config.dropout)?,
            dropout2: Dropout::new(config.dropout)?,
            config,
        })
    }

    /// The block applied to `src` (`[T, B, E]`, `[B, T, E]` with
    /// `batch_first`, or `[T, E]`), with an optional `src_mask` (`[T, T]` or
    /// `[B·nhead, T, T]`) and `src_key_padding_mask` (`[B, T]`).
    pub fn forward(
        &self,
        src: &Tensor,
        src_mask: Option<AttnMask<'_>>,
        src_key_padding_mask: Option<AttnMask<'_>>,
    ) -> Result<Tensor> {
        let attend = |x: &Tensor| -> Result<Tensor> {
            let (y, _) = self
                .self_attn
                .forward(x, x, x, src_key_padding_mask, src_mask, false)?;
            self.dropout1.forward(&y)
        };
        let y = if self.config.norm_first {
            let x = src.add(&attend(&self.norm1.forward(src)?)?)?;
            x.add(&self.feed_forward(&self.norm2.forward(&x)?)?)
        } else {
            let x = self.norm1.forward(&src.add(&attend(src)?)?)?;
            self.norm2.forward(&x.add(&self.feed_forward(&x)?)?)
        };
        record(self, y)
    }

    /// The options it was built with.
    pub fn config(&self) -> TransformerEncoderLayerConfig {
        self.config
    }

    /// `dropout2(linear2(dropout(activation(linear1(x)))))`.
    fn feed_forward(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = self.linear1.forward(x)?;
        let hidden = match self.config.activation {
            TransformerActivation::Relu => hidden.relu()?,
            TransformerActivation::Gelu => hidden.gelu()?,
        };
        let y = self.linear2.forward(&self.dropout.forward(&hidden)?)?;
        self.dropout2.forward(&y)
    }
}

impl Module for TransformerEncoderLayer {
    /// The block without masks.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        TransformerEncoderLayer::forward(self, input, None, None)
    }
}
