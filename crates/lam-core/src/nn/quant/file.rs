//! Quantized checkpoints: a model's `state_dict` as a safetensors file in
//! which each packed int8 weight (an `I32` tensor named `…weight`, four
//! values a word) is stored as what it is, `I8` `[out, 4·⌈in/4⌉]` (rows
//! padded with zeros to whole words), beside its `F32` scales — so any
//! safetensors reader sees int8 weights and their scales, and the file is
//! a quarter of the `f32` one. Everything else is stored as `save_model`
//! stores it, with lam's checksum.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::Dtype;

use crate::checkpoint::file::{self, Host, Parsed, Raw};
use crate::nn::Module;
use crate::{no_grad, DType, Result, Tensor};

/// True for the tensors stored as `I8`: packed int8 weights.
fn is_packed(name: &str, t: &Tensor) -> bool {
    t.dtype() == DType::I32 && t.rank() == 2 && (name == "weight" || name.ends_with(".weight"))
}

/// Writes `model`'s `state_dict` with its int8 weights as `I8`.
pub fn save_quantized(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let mut raw = BTreeMap::new();
    for (name, t) in model.state_dict() {
        let r = if is_packed(&name, &t) {
            let bytes: Vec<u8> = t
                .to_vec_i32()?
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            Raw {
                dtype: Dtype::I8,
                shape: vec![t.dims()[0], t.dims()[1] * 4],
                bytes,
            }
        } else {
            Raw::from_tensor(&t)?
        };
        raw.insert(name, r);
    }
    let metadata = BTreeMap::from([("lam.quantized".to_string(), "int8".to_string())]);
    file::write(path.as_ref(), &raw, metadata)
}

/// Loads a file written by [`save_quantized`] into `model` (all or
/// nothing: every tensor is checked before any is set).
pub fn load_quantized(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let parsed = Parsed::read(path.as_ref())?;
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (name, t) in model.state_dict() {
        let host = if is_packed(&name, &t) {
            packed(&parsed, &name, t.dims())
        } else {
            parsed.values(&name, t.dims(), t.dtype())
        };
        match host {
            Ok(h) => values.push((t, h)),
            Err(why) => problems.push(why),
        }
    }
    if !problems.is_empty() {
        return Err(parsed.error(problems.join("; ")));
    }
    no_grad(|| {
        for (t, host) in values {
            let dev = t.device();
            let v = match host {
                Host::F32(v) => Tensor::from_vec(v, t.dims(), &dev)?,
                Host::I32(v) => Tensor::from_vec_i32(v, t.dims(), &dev)?,
                Host::F16(v) => Tensor::from_f16(&v, t.dims(), &dev)?,
            };
            t.set_data(&v)?;
        }
        Ok(())
    })
}

/// The stored `I8` `[out, 4·words]` of `name`, packed for a `[out, words]` tensor.
fn packed(parsed: &Parsed, name: &str, dims: &[usize]) -> std::result::Result<Host, String> {
    let want = [dims[0], dims[1] * 4];
    match parsed.info(name) {
        Some((Dtype::I8, shape)) if shape == want => {}
        Some((dtype, shape)) => {
            return Err(format!(
                "tensor `{name}` is {dtype:?} {shape:?} in the file, expected I8 {want:?}"
            ))
        }
        None => return Err(format!("tensor `{name}` is missing from the file")),
    }
    let bytes = parsed
        .bytes_of(name)
        .ok_or_else(|| format!("tensor `{name}` is missing from the file"))?;
    Ok(Host::I32(
        bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    ))
}
