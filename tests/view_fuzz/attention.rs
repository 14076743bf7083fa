//! Scaled dot-product attention on random views of queries, keys, values
//! and masks (Backend `fused_attention` and `fused_attention_grad`, or the
//! composite on the unfused devices): broadcast batch dims, causal, bool and
//! additive masks, and an additive mask that takes a gradient (the
//! composite backward on every device).

use lam::{SdpaMask, SdpaOptions};

use super::harness::{index, normal, Case, Rng};

pub const COVERS: &[&str] = &["scaled_dot_product_attention"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    (0..3).flat_map(|_| one_round(rng)).collect()
}

fn one_round(rng: &mut Rng) -> Vec<Case> {
    let batch = rng.shape(0, 2);
    let (l, s, e, ev) = (rng.size(), rng.size(), rng.size(), rng.size());
    let causal = rng.chance(0.5);
    let with = |tail: [usize; 2], drop_lead: bool| {
        let lead = if drop_lead && !batch.is_empty() {
            &batch[1..]
        } else {
            &batch[..]
        };
        let mut shape = lead.to_vec();
        shape.extend(tail);
        shape
    };
    // Keys and values may leave out the first batch dim (broadcast).
    let short = rng.chance(0.5);
    let (qs, ks, vs) = (
        with([l, e], false),
        with([s, e], short),
        with([s, ev], short),
    );
    vec![
        Case::new(
            "scaled_dot_product_attention",
            vec![normal(&qs), normal(&ks), normal(&vs)],
            move |t| {
                let out = lam::Tensor::scaled_dot_product_attention(
                    &t[0],
                    &t[1],
                    &t[2],
                    options(None, causal),
                )?;
                Ok(vec![out])
            },
        )
        .tol(1e-5),
        Case::new(
            "scaled_dot_product_attention bool mask",
            vec![normal(&qs), normal(&ks), normal(&vs), index(&[l, s], 2)],
            move |t| {
                let mask = Some(SdpaMask::Bool(&t[3]));
                let out = lam::Tensor::scaled_dot_product_attention(
                    &t[0],
                    &t[1],
                    &t[2],
                    options(mask, causal),
                )?;
                Ok(vec![out])
            },
        )
        .tol(1e-5),
        Case::new(
            "scaled_dot_product_attention additive mask",
            vec![
                normal(&qs),
                normal(&ks),
                normal(&vs),
                normal(&with([l, s], true)),
            ],
            move |t| {
                let mask = Some(SdpaMask::Additive(&t[3]));
                let out = lam::Tensor::scaled_dot_product_attention(
                    &t[0],
                    &t[1],
                    &t[2],
                    options(mask, causal),
                )?;
                Ok(vec![out])
            },
        )
        .tol(1e-5),
    ]
}

fn options(mask: Option<SdpaMask<'_>>, causal: bool) -> SdpaOptions<'_> {
    SdpaOptions {
        mask,
        causal,
        scale: None,
        dropout_p: 0.0,
    }
}
