//! Moving data on random views (Backend `zeros`, `from_f32`, `from_i32`,
//! `read_f32`, `read_i32`, `copy`, `cast`): contiguous copies, owned copies
//! (`Tensor::copy`), joins, dtype
//! casts (`F16` ones too: casts from views, and half tensors copied, joined
//! and read back), device moves, and every view op chained on a view.

use lam::prelude::*;
use lam::DType;

use super::harness::{index, normal, Case, Rng};

pub const COVERS: &[&str] = &[
    "contiguous",
    "copy",
    "cat",
    "stack",
    "to_dtype",
    "to_vec",
    "to_vec_i32",
    "to_vec_f16",
    "from_f16",
    "to_vec2",
    "item",
    "to_device",
    "reshape",
    "reshape_exact",
    "permute",
    "transpose",
    "t",
    "unsqueeze",
    "squeeze",
    "squeeze_all",
    "flatten",
    "broadcast_to",
    "expand",
    "narrow",
    "slice",
    "slice_step",
    "get",
    "chunk",
    "split",
    "zeros_like",
    "ones_like",
];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let shape = rng.shape(1, 4);
    let rank = shape.len();
    let d = rng.below(rank) as isize;
    let mut other = shape.clone();
    other[d as usize] = rng.size();
    let mut out = vec![
        Case::new("contiguous", vec![normal(&shape)], |t| {
            Ok(vec![t[0].contiguous()?])
        }),
        Case::new("copy", vec![normal(&shape), index(&shape, 9)], |t| {
            Ok(vec![t[0].copy()?, t[1].copy()?.to_dtype(DType::F32)?])
        }),
        Case::new("cat", vec![normal(&shape), normal(&other)], move |t| {
            Ok(vec![Tensor::cat(&t[..2], d)?])
        }),
        Case::new("stack", vec![normal(&shape), normal(&shape)], move |t| {
            Ok(vec![Tensor::stack(&t[..2], d)?])
        }),
        Case::new("cast", vec![normal(&shape), index(&shape, 9)], |t| {
            let as_int = t[0].mul_scalar(4.0)?.to_dtype(DType::I32)?;
            let back = t[1].to_dtype(DType::F32)?;
            Ok(vec![as_int, back, t[1].to_dtype(DType::I32)?])
        })
        .no_grad(),
        Case::new("half", vec![normal(&shape), index(&shape, 9)], move |t| {
            // Casts read the views; the half tensors they make are viewed,
            // joined, copied and read back in turn.
            let dev = t[0].device();
            let h = t[0].to_dtype(DType::F16)?;
            let last = h.rank() as isize - 1;
            let joined = Tensor::cat(&[h.clone(), h.narrow(d, 0, 1)?], d)?;
            let turned = h.transpose(0, last)?.contiguous()?;
            let host = Tensor::from_f16(&turned.to_vec_f16()?, turned.dims(), &dev)?;
            Ok(vec![
                h.to_dtype(DType::F32)?,
                joined.to_dtype(DType::F32)?,
                host.to_dtype(DType::F32)?,
                h.to_dtype(DType::I32)?,
                t[1].to_dtype(DType::F16)?.to_dtype(DType::F32)?,
            ])
        }),
        Case::new("readback", vec![normal(&shape), index(&shape, 5)], |t| {
            // Values read to the host and uploaded again.
            let dev = t[0].device();
            let f = Tensor::from_vec(t[0].to_vec()?, t[0].dims(), &dev)?;
            let i = Tensor::from_vec_i32(t[1].to_vec_i32()?, t[1].dims(), &dev)?;
            let rows = t[0].flatten(0, -1)?.unsqueeze(0)?.to_vec2()?;
            let first = t[0].flatten(0, -1)?.get(0)?.item()?;
            let moved = t[0].to_device(&Device::cpu())?.to_device(&dev)?;
            let extra = Tensor::from_vec(vec![rows[0].len() as f32, first], &[2], &dev)?;
            Ok(vec![
                f,
                i,
                extra,
                moved,
                Tensor::zeros_like(&t[0])?,
                Tensor::ones_like(&t[1])?,
            ])
        })
        .no_grad(),
    ];
    let s2 = shape.clone();
    out.push(Case::new("view chain", vec![normal(&shape)], move |t| {
        let x = &t[0];
        let n = x.numel() as isize;
        let mut outs = vec![
            x.reshape(&[n])?,
            x.reshape(&[-1, 1])?.reshape_exact(&[n as usize])?,
            x.unsqueeze(0)?.squeeze(0)?.squeeze_all()?.contiguous()?,
            x.flatten(0, -1)?,
            x.narrow(d, 0, s2[d as usize])?
                .slice(d, 0, s2[d as usize])?,
            x.slice_step(d, 0, s2[d as usize], 2)?,
            // A step of a step: strides multiply.
            x.slice_step(d, 0, s2[d as usize], 2)?.slice_step(
                d,
                0,
                s2[d as usize].div_ceil(2),
                2,
            )?,
            x.unsqueeze(0)?.broadcast_to(&lead(2, s2.iter().copied()))?,
            x.unsqueeze(0)?.expand(&lead(3, s2.iter().map(|_| -1)))?,
            x.unsqueeze(0)?.get(0)?,
        ];
        outs.extend(x.chunk(2, d)?);
        outs.extend(x.split(2, d)?);
        if rank >= 2 {
            outs.push(x.t()?);
            outs.push(x.transpose(0, -1)?);
            let perm: Vec<usize> = (0..rank).rev().collect();
            outs.push(x.permute(&perm)?.contiguous()?);
        }
        // Each view pushed through an op, so a kernel reads its layout.
        outs.iter().map(|v| v.mul_scalar(2.0)).collect()
    }));
    out
}

/// `first` followed by `rest`.
fn lead<T>(first: T, rest: impl Iterator<Item = T>) -> Vec<T> {
    std::iter::once(first).chain(rest).collect()
}
