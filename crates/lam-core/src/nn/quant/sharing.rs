//! Weight sharing: a tensor's values clustered by one-dimensional k-means
//! into `2^bits` shared values (a codebook), each weight stored as the
//! `bits`-bit index of its value (Han et al., *Deep Compression*, linear
//! initialisation of the centroids between the smallest and largest
//! weight, then Lloyd iterations). Zeros left by pruning stay exactly zero.

use crate::nn::Module;
use crate::{no_grad, Error, Result, Tensor};

/// A tensor as a codebook and per-weight indices.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedWeights {
    pub shape: Vec<usize>,
    pub bits: u32,
    /// `2^bits` values (fewer when the tensor has fewer distinct ones).
    pub codebook: Vec<f32>,
    /// One codebook index per weight.
    pub indices: Vec<u16>,
}

impl SharedWeights {
    /// Clusters `t`'s values into at most `2^bits` (1 ≤ bits ≤ 16) shared values.
    pub fn cluster(t: &Tensor, bits: u32) -> Result<SharedWeights> {
        if !(1..=16).contains(&bits) {
            return Err(Error::invalid(
                "weight sharing",
                format!("bits must be 1 to 16, found {bits}"),
            ));
        }
        let values = t.to_vec()?;
        let codebook = kmeans(&values, 1usize << bits, 30);
        let indices = values
            .iter()
            .map(|&v| nearest(&codebook, v) as u16)
            .collect();
        Ok(SharedWeights {
            shape: t.shape(),
            bits,
            codebook,
            indices,
        })
    }

    /// The weights as their shared values.
    pub fn decode(&self, device: &crate::Device) -> Result<Tensor> {
        let values = self
            .indices
            .iter()
            .map(|&i| self.codebook[i as usize])
            .collect();
        Tensor::from_vec(values, &self.shape, device)
    }

    /// Bytes of the compressed form: `bits` per weight plus the codebook.
    pub fn compressed_bytes(&self) -> usize {
        (self.indices.len() * self.bits as usize).div_ceil(8) + 4 * self.codebook.len()
    }

    /// Bytes of the `f32` tensor.
    pub fn original_bytes(&self) -> usize {
        4 * self.indices.len()
    }
}

/// Replaces each of `names` in `model` by its shared values; returns the
/// clustered forms (for their sizes).
pub fn share_weights(model: &dyn Module, names: &[&str], bits: u32) -> Result<Vec<SharedWeights>> {
    let params = model.named_parameters();
    names
        .iter()
        .map(|name| {
            let Some((_, t)) = params.iter().find(|(n, _)| n == name) else {
                return Err(Error::invalid(
                    "share_weights",
                    format!("the model has no parameter {name}"),
                ));
            };
            let shared = SharedWeights::cluster(t, bits)?;
            no_grad(|| t.set_data(&shared.decode(&t.device())?))?;
            Ok(shared)
        })
        .collect()
}

/// Index of the centroid nearest `v` (centroids sorted ascending).
fn nearest(centroids: &[f32], v: f32) -> usize {
    let at = centroids.partition_point(|&c| c < v);
    match (at.checked_sub(1), centroids.get(at)) {
        (Some(lo), Some(&hi)) if (v - centroids[lo]).abs() <= (hi - v).abs() => lo,
        (Some(lo), None) => lo,
        _ => at.min(centroids.len().saturating_sub(1)),
    }
}

/// `k` centroids of `values`, sorted, by Lloyd's algorithm from a linear
/// initialisation; a centroid left without values moves to the value
/// farthest from its own. Exact zeros (pruned weights) are not clustered:
/// 0 is a code of its own, and the others share the remaining `k - 1`.
fn kmeans(values: &[f32], k: usize, iterations: usize) -> Vec<f32> {
    let has_zero = values.contains(&0.0);
    let finite: Vec<f32> = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v != 0.0)
        .collect();
    let k = if has_zero { k.saturating_sub(1) } else { k };
    let mut c = lloyd(&finite, k.min(finite.len()), iterations);
    if has_zero {
        c.push(0.0);
        c.sort_by(f32::total_cmp);
    }
    c.dedup();
    if c.is_empty() {
        c.push(0.0);
    }
    c
}

fn lloyd(values: &[f32], k: usize, iterations: usize) -> Vec<f32> {
    if k == 0 || values.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if lo == hi {
        return vec![lo];
    }
    let mut c: Vec<f32> = (0..k)
        .map(|i| lo + (hi - lo) * i as f32 / (k - 1).max(1) as f32)
        .collect();
    for _ in 0..iterations {
        let mut sum = vec![0.0f64; c.len()];
        let mut count = vec![0usize; c.len()];
        for &v in values {
            let j = nearest(&c, v);
            sum[j] += f64::from(v);
            count[j] += 1;
        }
        let mut next: Vec<f32> = c
            .iter()
            .enumerate()
            .map(|(j, &old)| {
                if count[j] > 0 {
                    (sum[j] / count[j] as f64) as f32
                } else {
                    old
                }
            })
            .collect();
        for j in (0..c.len()).filter(|&j| count[j] == 0) {
            let farthest = values.iter().copied().max_by(|&a, &b| {
                let da = (a - c[nearest(&c, a)]).abs();
                let db = (b - c[nearest(&c, b)]).abs();
                da.total_cmp(&db)
            });
            if let Some(v) = farthest {
                next[j] = v;
            }
        }
        next.sort_by(f32::total_cmp);
        let moved = next != c;
        c = next;
        if !moved {
            break;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_separate_groups_and_keep_zero() {
        let values = [0.0, 0.0, 1.0, 1.1, 0.9, -2.0, -2.1, 5.0];
        let c = kmeans(&values, 4, 30);
        assert!(c.contains(&0.0), "{c:?}");
        assert_eq!(c.len(), 4);
        assert!(
            (c[0] + 2.05).abs() < 1e-6 && (c[2] - 1.0).abs() < 1e-6 && c[3] == 5.0,
            "{c:?}"
        );
        assert_eq!(nearest(&c, 1.04), 2);
        assert_eq!(kmeans(&[3.0; 5], 4, 30), vec![3.0]);
    }
}
