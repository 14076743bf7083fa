//! Reductions over any set of axes.
//!
//! The input view is split into the kept dims (one output element per
//! combination, in row-major order) and the reduced dims (one "lane" of
//! values per output element). A lane is borrowed as a slice when its
//! elements are contiguous in memory — reducing the last axis, or all axes
//! of a contiguous tensor — and gathered otherwise; the reducer itself only
//! sees `&[f32]`. Sums accumulate in `f64`, so the reference is more
//! accurate than any backend it checks.

use lam_core::backend::{ReduceOp, View};
use lam_core::{Error, Layout, Result};

use crate::parallel::{for_chunks, CHUNK};
use crate::storage::{Data, ReadLocks};
use crate::strided::sub_layout;

/// Reduces `axes` of an `F32` view. The output has the input's shape with
/// those axes set to 1 (contiguous); arg-reductions give `I32` indices.
pub(crate) fn reduce(op: ReduceOp, src: View, axes: &[usize]) -> Result<Data> {
    let locks = ReadLocks::new("reduce", &[src.0])?;
    let x = locks.f32(0, src.1)?;
    let lanes = Lanes::new(src.1, axes)?;
    if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) && axes.len() != 1 {
        return Err(Error::invalid(
            "reduce",
            format!("{op:?} takes exactly one axis, found {axes:?}"),
        ));
    }
    Ok(match op {
        ReduceOp::Sum => Data::F32(lanes.map(x, 0.0, |lane| {
            lane.iter().map(|&v| v as f64).sum::<f64>() as f32
        })),
        ReduceOp::Max => Data::F32(lanes.map(x, 0.0, |lane| {
            lane.iter().fold(
                f32::NEG_INFINITY,
                |m, &v| if v > m || v.is_nan() { v } else { m },
            )
        })),
        ReduceOp::Min => Data::F32(lanes.map(x, 0.0, |lane| {
            lane.iter().fold(
                f32::INFINITY,
                |m, &v| if v < m || v.is_nan() { v } else { m },
            )
        })),
        ReduceOp::ArgMax => Data::I32(lanes.map(x, 0, |lane| first_best(lane, |v, best| v > best))),
        ReduceOp::ArgMin => Data::I32(lanes.map(x, 0, |lane| first_best(lane, |v, best| v < best))),
    })
}

/// The index of the first element no later element beats (`better(v, best)`);
/// a NaN beats everything and is never beaten, as in PyTorch.
fn first_best(lane: &[f32], better: impl Fn(f32, f32) -> bool) -> i32 {
    let mut best = 0;
    for (i, &v) in lane.iter().enumerate().skip(1) {
        let b = lane[best];
        if !b.is_nan() && (v.is_nan() || better(v, b)) {
            best = i;
        }
    }
    best as i32
}

/// How a view splits into output elements and the lanes reduced into them.
struct Lanes {
    /// Storage offset of each lane's first element, one per output element.
    starts: Vec<usize>,
    /// Offsets of a lane's elements relative to its start.
    within: Layout,
    contiguous: bool,
}

impl Lanes {
    fn new(layout: &Layout, axes: &[usize]) -> Result<Lanes> {
        let rank = layout.rank();
        let mut reduced = vec![false; rank];
        for &axis in axes {
            if axis >= rank || reduced[axis] {
                return Err(Error::invalid(
                    "reduce",
                    format!("axes {axes:?} are not distinct axes of a rank-{rank} tensor"),
                ));
            }
            reduced[axis] = true;
        }
        let kept: Vec<usize> = (0..rank).filter(|&d| !reduced[d]).collect();
        let lane: Vec<usize> = (0..rank).filter(|&d| reduced[d]).collect();
        let within = sub_layout(layout, &lane, 0);
        Ok(Lanes {
            starts: sub_layout(layout, &kept, layout.offset).offsets().collect(),
            contiguous: within.is_contiguous(),
            within,
        })
    }

    /// `[outputs]`: `f` of each lane of `x`.
    fn map<T, F>(&self, x: &[f32], zero: T, f: F) -> Vec<T>
    where
        T: Copy + Send,
        F: Fn(&[f32]) -> T + Sync,
    {
        let lane_len = self.within.numel();
        let offsets: Vec<usize> = if self.contiguous {
            Vec::new()
        } else {
            self.within.offsets().collect()
        };
        let mut out = vec![zero; self.starts.len()];
        // Enough outputs per chunk that each chunk reduces ~CHUNK elements.
        let per_chunk = CHUNK.div_ceil(lane_len.max(1));
        for_chunks(
            &mut out,
            per_chunk,
            self.starts.len() * lane_len,
            |first, chunk| {
                let mut buf = Vec::with_capacity(if self.contiguous { 0 } else { lane_len });
                for (o, &s) in chunk.iter_mut().zip(&self.starts[first..]) {
                    let lane = if self.contiguous {
                        // (An empty lane may start anywhere, even past the end.)
                        x.get(s..s + lane_len).unwrap_or_default()
                    } else {
                        buf.clear();
                        buf.extend(offsets.iter().map(|&d| x[s + d]));
                        &buf[..]
                    };
                    *o = f(lane);
                }
            },
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use lam_core::backend::ReduceOp::*;
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    #[test]
    fn reduces_each_axis_of_a_matrix() {
        let b = backend();
        // [[1, 5, 3], [4, 2, 6]]
        let (s, l) = f32s(&[1., 5., 3., 4., 2., 6.], &[2, 3]);
        let sum0 = b.reduce(Sum, (&s, &l), &[0]).unwrap();
        assert_eq!(read(&sum0, &[1, 3]), vec![5., 7., 9.]);
        let sum1 = b.reduce(Sum, (&s, &l), &[1]).unwrap();
        assert_eq!(read(&sum1, &[2, 1]), vec![9., 12.]);
        let all = b.reduce(Sum, (&s, &l), &[0, 1]).unwrap();
        assert_eq!(read(&all, &[1, 1]), vec![21.]);
        let max = b.reduce(Max, (&s, &l), &[1]).unwrap();
        assert_eq!(read(&max, &[2, 1]), vec![5., 6.]);
        let min = b.reduce(Min, (&s, &l), &[0]).unwrap();
        assert_eq!(read(&min, &[1, 3]), vec![1., 2., 3.]);
        let arg = b.reduce(ArgMax, (&s, &l), &[1]).unwrap();
        assert_eq!(
            b.read_i32((&arg, &Layout::contiguous(&[2, 1]))).unwrap(),
            vec![1, 2]
        );
        let arg = b.reduce(ArgMin, (&s, &l), &[0]).unwrap();
        assert_eq!(
            b.read_i32((&arg, &Layout::contiguous(&[1, 3]))).unwrap(),
            vec![0, 1, 0]
        );
    }

    #[test]
    fn arg_reductions_pick_the_first_tie_and_nan() {
        let b = backend();
        let (s, l) = f32s(&[2., 7., 7., 1., 1., f32::NAN, 3.], &[7]);
        let idx = |op| {
            let r = b.reduce(op, (&s, &l), &[0]).unwrap();
            b.read_i32((&r, &Layout::contiguous(&[1]))).unwrap()[0]
        };
        assert_eq!(idx(ArgMax), 5);
        assert_eq!(idx(ArgMin), 5);
        let head = l.narrow(0, 0, 5).unwrap();
        let r = b.reduce(ArgMax, (&s, &head), &[0]).unwrap();
        assert_eq!(
            b.read_i32((&r, &Layout::contiguous(&[1]))).unwrap(),
            vec![1]
        );
        let r = b.reduce(ArgMin, (&s, &head), &[0]).unwrap();
        assert_eq!(
            b.read_i32((&r, &Layout::contiguous(&[1]))).unwrap(),
            vec![3]
        );
        let r = b.reduce(Max, (&s, &l), &[0]).unwrap();
        assert!(read(&r, &[1])[0].is_nan());
    }

    #[test]
    fn reduces_transposed_and_broadcast_views() {
        let b = backend();
        // [2, 3, 4] = 0..24, permuted to [4, 2, 3]; sum over the middle axis.
        let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let (s, l) = f32s(&data, &[2, 3, 4]);
        let p = l.permute(&[2, 0, 1]).unwrap();
        let r = b.reduce(Sum, (&s, &p), &[1]).unwrap();
        let mut want = vec![0.0; 12];
        for k in 0..4 {
            for j in 0..3 {
                want[k * 3 + j] = (0..2).map(|i| data[i * 12 + j * 4 + k]).sum();
            }
        }
        assert_eq!(read(&r, &[4, 1, 3]), want);
        // A [3] vector broadcast to [5, 3] sums to 5x itself over axis 0.
        let (v, lv) = f32s(&[1., 2., 3.], &[3]);
        let wide = lv.broadcast_to(&[5, 3]).unwrap();
        let r = b.reduce(Sum, (&v, &wide), &[0]).unwrap();
        assert_eq!(read(&r, &[1, 3]), vec![5., 10., 15.]);
    }

    #[test]
    fn large_sums_are_accurate_and_parallel_paths_agree() {
        let b = backend();
        let rows = 300;
        let cols = 1000;
        let data: Vec<f32> = (0..rows * cols).map(|i| ((i % 7) as f32) * 0.1).collect();
        let (s, l) = f32s(&data, &[rows, cols]);
        let r = b.reduce(Sum, (&s, &l), &[1]).unwrap();
        let got = read(&r, &[rows, 1]);
        for (i, g) in got.iter().enumerate() {
            let want: f64 = data[i * cols..(i + 1) * cols]
                .iter()
                .map(|&v| v as f64)
                .sum();
            assert!((*g as f64 - want).abs() < 1e-3);
        }
        let r = b.reduce(Sum, (&s, &l), &[0, 1]).unwrap();
        let want: f64 = data.iter().map(|&v| v as f64).sum();
        assert!((read(&r, &[1, 1])[0] as f64 - want).abs() / want < 1e-7);
    }

    #[test]
    fn bad_axes_are_errors() {
        let b = backend();
        let (s, l) = f32s(&[1., 2.], &[2]);
        assert!(b.reduce(Sum, (&s, &l), &[1]).is_err());
        assert!(b.reduce(Sum, (&s, &l), &[0, 0]).is_err());
        assert!(b.reduce(ArgMax, (&s, &l), &[]).is_err());
    }
}
