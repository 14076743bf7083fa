//! What samples are labelled with: one sample's [`Target`] and the targets
//! of many, stored compactly ([`HostTargets`]), each kind batched in the
//! shape and dtype its losses take:
//!
//! | target | a batch of `B` | for |
//! |--------|----------------|-----|
//! | [`Target::Class`] | `I32 [B]` | `cross_entropy`, `nll_loss` |
//! | [`Target::Values`] of `k` values | `F32 [B, k]` | `mse_loss`; `binary_cross_entropy*` with `k = 1` |
//! | [`Target::ClassArray`] of `shape` | `I32 [B, ...shape]` | `cross_entropy` of `[B, C, ...shape]` logits: next tokens, segmentation masks |

use lam_core::{Device, Error, Result, Tensor};

/// What a sample is labelled with (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class index (classification); batches of these become `I32` `[B]`.
    Class(i32),
    /// A vector of values (regression); batches become `F32` `[B, len]`.
    Values(Vec<f32>),
    /// A class at each position of `shape` (a sequence's next tokens, a
    /// segmentation mask), row-major; batches become `I32 [B, ...shape]`.
    ClassArray {
        /// The classes, `shape`'s element count of them.
        ids: Vec<i32>,
        /// Their shape, e.g. `[T]` or `[H, W]`.
        shape: Vec<usize>,
    },
}

impl Target {
    /// The class, if this is one.
    pub fn class(&self) -> Option<i32> {
        match self {
            Target::Class(c) => Some(*c),
            Target::Values(_) | Target::ClassArray { .. } => None,
        }
    }

    /// What kind of target this is, for error messages.
    fn kind(&self) -> String {
        match self {
            Target::Class(_) => "a class".into(),
            Target::Values(v) => format!("{} values", v.len()),
            Target::ClassArray { shape, .. } => format!("classes of shape {shape:?}"),
        }
    }
}

/// The targets of many samples, stored compactly.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTargets {
    /// One class per sample.
    Classes(Vec<i32>),
    /// `width` values per sample, row-major.
    Values {
        /// `len × width` values.
        data: Vec<f32>,
        /// Values per sample.
        width: usize,
    },
    /// Classes of `shape` per sample, row-major.
    ClassArrays {
        /// `len × shape` classes.
        data: Vec<i32>,
        /// Each sample's shape (no zero dims).
        shape: Vec<usize>,
    },
}

impl HostTargets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            HostTargets::Classes(c) => c.len(),
            HostTargets::Values { data, width } => data.len() / (*width).max(1),
            HostTargets::ClassArrays { data, .. } => data.len() / self.per_sample(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Target `i` (caller checks the range).
    pub fn get(&self, i: usize) -> Target {
        let per = self.per_sample();
        match self {
            HostTargets::Classes(c) => Target::Class(c[i]),
            HostTargets::Values { data, .. } => {
                Target::Values(data[i * per..(i + 1) * per].to_vec())
            }
            HostTargets::ClassArrays { data, shape } => Target::ClassArray {
                ids: data[i * per..(i + 1) * per].to_vec(),
                shape: shape.clone(),
            },
        }
    }

    /// The targets of `indices`, in that order (caller checks the range).
    pub fn select(&self, indices: &[usize]) -> HostTargets {
        fn rows<T: Copy>(v: &[T], indices: &[usize], per: usize) -> Vec<T> {
            indices
                .iter()
                .flat_map(|&i| v[i * per..(i + 1) * per].iter().copied())
                .collect()
        }
        let per = self.per_sample();
        match self {
            HostTargets::Classes(c) => HostTargets::Classes(rows(c, indices, 1)),
            HostTargets::Values { data, width } => HostTargets::Values {
                data: rows(data, indices, per),
                width: *width,
            },
            HostTargets::ClassArrays { data, shape } => HostTargets::ClassArrays {
                data: rows(data, indices, per),
                shape: shape.clone(),
            },
        }
    }

    /// Gathers targets one by one; an error if their kinds differ (classes
    /// and values mixed, value widths or class-array shapes that differ),
    /// or if a class array is empty or not of its shape.
    pub fn collect(targets: impl IntoIterator<Item = Target>) -> Result<HostTargets> {
        let mut out: Option<HostTargets> = None;
        for (i, t) in targets.into_iter().enumerate() {
            match &mut out {
                None => out = Some(HostTargets::first(i, t)?),
                Some(all) => all.push(i, t)?,
            }
        }
        Ok(out.unwrap_or(HostTargets::Classes(Vec::new())))
    }

    /// A tensor on `device`: `I32 [N]` for classes, `F32 [N, width]` for
    /// values, `I32 [N, ...shape]` for class arrays.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        match self {
            HostTargets::Classes(c) => Tensor::from_vec_i32(c.clone(), &[c.len()], device),
            HostTargets::Values { data, width } => {
                Tensor::from_slice(data, &[self.len(), *width], device)
            }
            HostTargets::ClassArrays { data, shape } => {
                let dims = [&[self.len()][..], shape].concat();
                Tensor::from_vec_i32(data.clone(), &dims, device)
            }
        }
    }

    /// Class arrays of `shape` per sample; an error if `shape` has a zero
    /// dim or `data` does not split into whole samples.
    pub fn class_arrays(data: Vec<i32>, shape: &[usize]) -> Result<HostTargets> {
        let per = super::numel("HostTargets::class_arrays", shape)?;
        if per == 0 || !data.len().is_multiple_of(per) {
            return Err(Error::invalid(
                "HostTargets::class_arrays",
                format!(
                    "{} classes do not split into samples of shape {shape:?} (no zero dims)",
                    data.len()
                ),
            ));
        }
        Ok(HostTargets::ClassArrays {
            data,
            shape: shape.to_vec(),
        })
    }

    /// Values per sample (at least 1).
    fn per_sample(&self) -> usize {
        match self {
            HostTargets::Classes(_) => 1,
            HostTargets::Values { width, .. } => (*width).max(1),
            HostTargets::ClassArrays { shape, .. } => shape.iter().product::<usize>().max(1),
        }
    }

    /// The targets of one sample, `t` (sample `i`).
    fn first(i: usize, t: Target) -> Result<HostTargets> {
        Ok(match t {
            Target::Class(c) => HostTargets::Classes(vec![c]),
            Target::Values(v) => HostTargets::Values {
                width: v.len(),
                data: v,
            },
            Target::ClassArray { ids, shape } => {
                let one = HostTargets::class_arrays(ids, &shape).map_err(|e| at(i, e))?;
                if one.len() != 1 {
                    return Err(at(
                        i,
                        Error::invalid(
                            "Target::ClassArray",
                            format!(
                                "{} classes for one sample of shape {shape:?}",
                                one.len() * one.per_sample()
                            ),
                        ),
                    ));
                }
                one
            }
        })
    }

    /// Appends sample `i`'s target, which must be of the same kind.
    fn push(&mut self, i: usize, t: Target) -> Result<()> {
        match (&mut *self, t) {
            (HostTargets::Classes(c), Target::Class(v)) => c.push(v),
            (HostTargets::Values { data, width }, Target::Values(v)) if v.len() == *width => {
                data.extend(v)
            }
            (HostTargets::ClassArrays { data, shape }, Target::ClassArray { ids, shape: s })
                if s == *shape && ids.len() == s.iter().product::<usize>() =>
            {
                data.extend(ids)
            }
            (_, t) => {
                let earlier = self.get(0).kind();
                return Err(Error::invalid(
                    "HostTargets::collect",
                    format!(
                        "sample {i} has {} as its target, earlier ones {earlier} (or the \
                         classes do not fill the shape): the samples of a batch need targets \
                         of one kind and size",
                        t.kind()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `e` said of sample `i`.
fn at(i: usize, e: Error) -> Error {
    Error::invalid("HostTargets::collect", format!("sample {i}: {e}"))
}
