//! `MultiheadAttention` without weights (the fused path) against the same
//! layer with weights (the composite), masks of every kind included, and a
//! batch whose keys are all padding (uniform attention on both paths).

use lam::nn::{AttnMask, Module, MultiheadAttention, MultiheadAttentionConfig};
use lam::prelude::*;

use crate::common::fixture;
use crate::conformance;

use super::rnd;

/// `MultiheadAttention` outputs and gradients without weights (fused) and
/// with them (composite) for the given masks.
fn mha_paths_agree(
    m: &MultiheadAttention,
    x: &Tensor,
    kpm: Option<AttnMask<'_>>,
    attn: Option<AttnMask<'_>>,
) -> lam::Result<()> {
    let run = |fused: bool| -> lam::Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let x = x.detach().requires_grad_()?;
        for p in m.parameters() {
            p.zero_grad();
        }
        let out = if fused {
            m.forward(&x, &x, &x, kpm, attn, false)?.0
        } else {
            m.forward_with_weights(&x, &x, &x, kpm, attn, true)?.0
        };
        out.mul(&out)?.sum_all()?.backward()?;
        let mut grads = vec![x
            .grad()
            .map(|g| g.to_vec())
            .transpose()?
            .unwrap_or_default()];
        for p in m.parameters() {
            grads.push(
                p.grad()
                    .map(|g| g.to_vec())
                    .transpose()?
                    .unwrap_or_default(),
            );
        }
        Ok((out.to_vec()?, grads))
    };
    let (fused, fused_grads) = run(true)?;
    let (composed, composed_grads) = run(false)?;
    fixture::close("MultiheadAttention output", &fused, &composed, 1e-5, 1e-4)?;
    for (i, (a, b)) in fused_grads.iter().zip(&composed_grads).enumerate() {
        fixture::close(&format!("gradient {i}"), a, b, 1e-5, 1e-4)?;
    }
    Ok(())
}

attention_conformance!(mha_fused_path_equals_composite, |dev| {
    let (l, b, e, h) = (5, 3, 8, 2);
    let x = rnd(&[l, b, e], 11, dev);
    let m = MultiheadAttention::new(e, h, dev)?;
    mha_paths_agree(&m, &x, None, None)?;
    // Key padding: batch 2's keys are all padding (uniform attention).
    let mut pad = vec![0.0; b * l];
    pad[3] = 1.0;
    pad[2 * l..].fill(1.0);
    let pad = Tensor::from_vec(pad, &[b, l], dev)?;
    let causal = lam::nn::causal_mask(l, dev)?;
    mha_paths_agree(
        &m,
        &x,
        Some(AttnMask::Bool(&pad)),
        Some(AttnMask::Bool(&causal)),
    )?;
    // The causal mask as 0/-∞ (on the CPU, the kernel's causal flag).
    let hidden = causal.to_vec()?;
    let causal_additive = hidden
        .iter()
        .map(|&x| if x != 0.0 { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    let causal_additive = Tensor::from_vec(causal_additive, &[l, l], dev)?;
    mha_paths_agree(&m, &x, None, Some(AttnMask::Additive(&causal_additive)))?;
    let additive = rnd(&[b * h, l, l], 12, dev);
    mha_paths_agree(
        &m,
        &x,
        Some(AttnMask::Bool(&pad)),
        Some(AttnMask::Additive(&additive)),
    )?;
    // Extra key positions (bias_k/bias_v, a zero key) widen the masks.
    let config = MultiheadAttentionConfig {
        add_bias_kv: true,
        add_zero_attn: true,
        batch_first: true,
        ..MultiheadAttentionConfig::default()
    };
    let m = MultiheadAttention::with_config(e, h, config, dev)?;
    let xb = rnd(&[b, l, e], 13, dev);
    mha_paths_agree(
        &m,
        &xb,
        Some(AttnMask::Bool(&pad)),
        Some(AttnMask::Bool(&causal)),
    )?;
    // Unbatched.
    let m = MultiheadAttention::new(e, h, dev)?;
    mha_paths_agree(
        &m,
        &rnd(&[l, e], 14, dev),
        None,
        Some(AttnMask::Bool(&causal)),
    )?;
    // The Module forward (self-attention, no weights) is the fused path.
    let y = Module::forward(&m, &rnd(&[l, e], 15, dev))?;
    if y.dims() != [l, e] {
        return Err(Error::invalid("mha", format!("shape {:?}", y.dims())));
    }
    Ok(())
});
