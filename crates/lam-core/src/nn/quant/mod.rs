//! Dynamic int8 quantization, as `torch.ao.quantization.quantize_dynamic`:
//! [`QuantizedLinear`] stores a `Linear`'s weights as int8 with one
//! symmetric scale per output channel (`w ≈ q · scale`, `q ∈ [-127, 127]`)
//! and quantizes its input on every call, with a scale for each input row
//! (`max |x| / 127`, computed by the backend as it quantizes the row: per-token dynamic quantization,
//! finer than PyTorch's one scale per batch, so that a prediction does not
//! depend on what else is in its batch), so the product is int8 × int8
//! accumulated in `i32` (the `matmul_i8` primitive: AVX-512 VNNI or AVX2 on
//! the CPU, `dot4I8Packed` on GPUs) and scaled back to `f32`.
//!
//! Weights are packed four to a word (`I32` `[out, ⌈in/4⌉]`, lowest byte
//! first); a quantized checkpoint ([`save_quantized`]: safetensors with
//! the weights as `I8` beside their scales) is a quarter of the `f32` one. Quantized
//! layers are for inference: they record no gradient and cannot be
//! exported to ONNX (export the `f32` model).
//!
//! [`sharing`] is the other compression of the deployment chapter:
//! weight sharing, each tensor's values clustered by k-means into `2^b`
//! shared values.

mod file;
pub mod sharing;

pub use file::{load_quantized, save_quantized};

use super::{Linear, Module};
use crate::{DType, Device, Error, Result, Tensor};

/// A `Linear` layer with int8 weights (see the module doc).
#[derive(Module)]
pub struct QuantizedLinear {
    /// `I32` `[out_features, ⌈in_features / 4⌉]`: four int8 values a word.
    #[module(buffer)]
    pub weight: Tensor,
    /// `[out_features]`: each output channel's scale.
    #[module(buffer)]
    pub scale: Tensor,
    /// `[out_features]`, as the `Linear`'s.
    #[module(buffer)]
    pub bias: Option<Tensor>,
    in_features: usize,
    out_features: usize,
}

impl QuantizedLinear {
    /// `linear`'s weights quantized per output channel.
    pub fn from_linear(linear: &Linear) -> Result<QuantizedLinear> {
        let (out_f, in_f) = linear.weight.dims2("QuantizedLinear", "weight [out, in]")?;
        let (packed, scales) = quantize_rows(&linear.weight.to_vec()?, out_f, in_f);
        let dev = linear.weight.device();
        Ok(QuantizedLinear {
            weight: Tensor::from_vec_i32(packed, &[out_f, in_f.div_ceil(4)], &dev)?,
            scale: Tensor::from_vec(scales, &[out_f], &dev)?,
            bias: linear.bias.as_ref().map(Tensor::detach),
            in_features: in_f,
            out_features: out_f,
        })
    }

    /// An all-zero layer of these sizes, to load a quantized checkpoint into.
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        device: &Device,
    ) -> Result<QuantizedLinear> {
        Ok(QuantizedLinear {
            weight: Tensor::zeros(&[out_features, in_features.div_ceil(4)], device)?
                .to_dtype(DType::I32)?,
            scale: Tensor::zeros(&[out_features], device)?,
            bias: bias
                .then(|| Tensor::zeros(&[out_features], device))
                .transpose()?,
            in_features,
            out_features,
        })
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The weights the layer computes with, as `f32` (`q · scale`).
    pub fn dequantized_weight(&self) -> Result<Tensor> {
        let words = self.weight.to_vec_i32()?;
        let scales = self.scale.to_vec()?;
        let row = self.in_features.div_ceil(4);
        let values = (0..self.out_features)
            .flat_map(|o| {
                let bytes: Vec<i8> = words[o * row..(o + 1) * row]
                    .iter()
                    .flat_map(|w| w.to_le_bytes())
                    .map(|b| b as i8)
                    .collect();
                let s = scales[o];
                bytes
                    .into_iter()
                    .take(self.in_features)
                    .map(move |q| f32::from(q) * s)
            })
            .collect();
        Tensor::from_vec(
            values,
            &[self.out_features, self.in_features],
            &self.weight.device(),
        )
    }
}

impl Module for QuantizedLinear {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        linear_int8(
            input,
            &self.weight,
            &self.scale,
            self.bias.as_ref(),
            self.in_features,
        )
    }

    fn extra_repr(&self) -> String {
        format!(
            "in_features={}, out_features={}, dtype=qint8, bias={}",
            self.in_features,
            self.out_features,
            super::py_bool(self.bias.is_some())
        )
    }
}

/// `x Wᵀ + b` with `W` packed int8 (`[out, ⌈in/4⌉]`) and per-channel
/// `scale`, the input quantized dynamically (each row with its own scale,
/// `max |x| / 127`, computed as the row is quantized): [`QuantizedLinear`]'s
/// forward.
pub fn linear_int8(
    input: &Tensor,
    weight: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    in_features: usize,
) -> Result<Tensor> {
    int8_product(input, None, weight, scale, bias, in_features)
}

/// [`linear_int8`] with the input quantized statically, with a given
/// `input_scale`: a scalar for every row (as PyTorch's static quantization,
/// whose scale a calibration pass chose) or one per row (`[rows]`, rows
/// counting every leading dim of `input`).
pub fn linear_int8_static(
    input: &Tensor,
    input_scale: &Tensor,
    weight: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    in_features: usize,
) -> Result<Tensor> {
    int8_product(input, Some(input_scale), weight, scale, bias, in_features)
}

/// The checks and the call of `matmul_i8` behind [`linear_int8`] and
/// [`linear_int8_static`].
fn int8_product(
    input: &Tensor,
    input_scale: Option<&Tensor>,
    weight: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    in_features: usize,
) -> Result<Tensor> {
    const OP: &str = "linear_int8";
    if crate::capture::hooked() {
        return Err(Error::invalid(
            OP,
            "a quantized layer cannot be captured or exported; export the f32 model",
        ));
    }
    let (out_f, words) = weight.dims2(OP, "packed weight [out, ⌈in/4⌉]")?;
    if weight.dtype() != DType::I32 || words != in_features.div_ceil(4) {
        return Err(Error::invalid(
            OP,
            format!(
                "expected an I32 packed weight [{out_f}, {}], found {:?} {:?}",
                in_features.div_ceil(4),
                weight.dtype(),
                weight.dims()
            ),
        ));
    }
    if input.rank() == 0 || input.dims()[input.rank() - 1] != in_features {
        return Err(Error::shape(
            OP,
            format!("an input of shape [*, {in_features}]"),
            input.dims(),
        ));
    }
    scale.expect_shape(OP, "per-channel scales", &[out_f])?;
    if let Some(b) = bias {
        b.expect_shape(OP, "a bias", &[out_f])?;
    }
    crate::tensor::check_operands(
        OP,
        DType::F32,
        [input, scale].into_iter().chain(bias).chain(input_scale),
    )?;
    weight.device().check_same(&input.device(), OP)?;
    let lead = &input.dims()[..input.rank() - 1];
    let rows: usize = lead.iter().product();
    let input_scale = match input_scale {
        Some(s) if s.rank() == 0 => Some(s.detach().expand(&[rows as isize])?),
        Some(s) => {
            s.expect_shape(OP, "input scales (a scalar or one per row)", &[rows])?;
            Some(s.detach())
        }
        None => None,
    };
    let x = input.detach().reshape_exact(&[rows, in_features])?;
    let weight = weight.contiguous()?;
    let (xs, ws, cs) = (x.storage(), weight.storage(), scale.storage());
    let scale_storage = input_scale.as_ref().map(|s| s.storage());
    let bias_storage = bias.map(|b| b.storage());
    let out = x.backend().matmul_i8(
        (&xs, x.layout()),
        scale_storage
            .as_ref()
            .zip(input_scale.as_ref())
            .map(|(st, s)| (st, s.layout())),
        (&ws, weight.layout()),
        (&cs, scale.layout()),
        bias_storage
            .as_ref()
            .zip(bias)
            .map(|(s, b)| (s, b.layout())),
    )?;
    let mut shape = lead.to_vec();
    shape.push(out_f);
    Tensor::from_storage(out, crate::Layout::contiguous(&[rows, out_f]), &x.device())
        .reshape_exact(&shape)
}

/// Each row of `w` (`[rows, cols]`) as int8 with its own symmetric scale
/// (`max |w| / 127`, 1 for an all-zero row), packed four to a word.
fn quantize_rows(w: &[f32], rows: usize, cols: usize) -> (Vec<i32>, Vec<f32>) {
    let words = cols.div_ceil(4);
    let mut packed = vec![0i32; rows * words];
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        let mut bytes = vec![0u8; words * 4];
        for (b, &v) in bytes.iter_mut().zip(row) {
            *b = (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8 as u8;
        }
        for (k, chunk) in bytes.chunks(4).enumerate() {
            packed[r * words + k] = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
    (packed, scales)
}
