//! 2-d convolution and its gradient, fused (Backend `fused_conv2d`,
//! `fused_conv2d_grad`): im2col one image at a time into a buffer that
//! stays in cache, then `gemm` straight into that image's output.
//!
//! The composed path (`unfold` of the whole batch, then one batched
//! `matmul`) writes and reads columns `kh·kw` times the size of the batch:
//! for a 3×3 convolution over 2 MB of activations, 18 MB through memory
//! twice each way. Here the columns of one image (`[C·kh·kw, L]`, rows in
//! the weight's `(c, i, j)` order, `L = out_h·out_w`) are built into a
//! buffer each task reuses for all of its images, and each group's
//! `[O/G, C/G·kh·kw] × [C/G·kh·kw, L]` product is written into the image's
//! `[O, L]` output, which starts as bias rows (gemm adds onto them). A
//! pointwise convolution (1×1, stride 1, no padding) needs no columns:
//! the image itself, `[C, H·W]`, is the right operand.
//!
//! The gradient, per image: the columns' gradient `Wᵀ·dy[n]` into the
//! task's buffer, then col2im into `dx[n]` (for a pointwise convolution,
//! the product lands in `dx[n]` directly); the weight's gradient
//! `dy[n]·colsᵀ` (the columns rebuilt, and computed transposed, as
//! `cols·dy[n]ᵀ`, so that gemm reads both operands row-major) and the bias's (row sums of `dy[n]`)
//! added into the task's partial sums, which are added in task order at
//! the end, so the result does not depend on scheduling.
//!
//! Stride-1 convolutions whose windows span the image's width (a 3×3
//! window padded by 1) build, instead of the columns, one shifted copy of
//! each channel per kernel column and take one product per kernel row
//! (`rows.rs`): a third of the copies for 3×3 windows, and col2im becomes
//! `C·kw` shifted adds instead of `C·kh·kw`.
//!
//! Small stride-1 convolutions (a few taps, one group) with AVX-512 run
//! neither: `direct.rs` reads each tap straight from zero-padded copies of
//! the images, summing in registers (LeNet's convolutions, where gemm's
//! packing and the columns cost more than the arithmetic).
//!
//! Work is split by images ([`Plan`]): consecutive images per rayon task,
//! a few tasks per thread, each task borrowing one of a few sets of
//! scratch buffers ([`Scratch`]) while it runs. A batch smaller than the
//! thread count runs its images in order and lets gemm, im2col and col2im
//! use the threads.
//!
//! Files: this one has the two entry points and the per-image general path;
//! `direct.rs` the direct path and `kernels.rs` its register tiles;
//! `rows.rs` the by-kernel-row path; `plan.rs` the split into tasks and
//! their scratch buffers; `operands.rs` the columns, the strided matrices,
//! the gemm call and col2im.

mod direct;
mod kernels;
mod operands;
mod plan;
#[cfg(test)]
mod reference;
mod rows;

use lam_core::backend::{View, WindowGeometry};
use lam_core::{Error, Layout, Result};

use direct::Direct;
use operands::{col2im, product, Matrix, Source};
use plan::{Plan, Scratch};
use rows::RowTaps;

use crate::pool;
use crate::storage::ReadLocks;
use crate::strided::gather;
use crate::transpose::transpose_into;

/// `input [N, C, H, W]` ⋆ `weight [O, C/G, kh, kw]` (+ `bias [O]`) →
/// contiguous `[N, O, out_h, out_w]`.
pub(crate) fn conv2d(
    input: View,
    weight: View,
    bias: Option<View>,
    g: &WindowGeometry,
    groups: usize,
) -> Result<Vec<f32>> {
    const OP: &str = "fused_conv2d";
    let mut storages = vec![input.0, weight.0];
    storages.extend(bias.map(|b| b.0));
    let locks = ReadLocks::new(OP, &storages)?;
    let s = Shapes::new(OP, input.1, weight.1, g, groups)?;
    let x = locks.f32(0, input.1)?;
    let w = gather(locks.f32(1, weight.1)?, weight.1)?;
    let bias = match bias {
        Some((_, l)) => {
            l.expect_shape(OP, "a bias", &[s.o])?;
            Some(gather(locks.f32(2, l)?, l)?)
        }
        None => None,
    };
    let image = s.o * s.l;
    if let Some(d) = Direct::new(g, input.1, &s) {
        return direct::convolve(&d, x, &w, bias.as_deref(), g, &s);
    }
    if let Some(rt) = RowTaps::new(g, input.1, &s) {
        return rows::convolve(&rt, x, &w, bias.as_deref(), g, &s);
    }
    let mut out = pool::take(g.n * image)?;
    if out.is_empty() {
        return Ok(out);
    }
    let src = Source::new(x, input.1, g, &s);
    let plan = Plan::new(&s, g.n);
    let scratch = Scratch::new(&[src.cols_len(&s)], plan.sets())?;
    let mut states = vec![(); plan.tasks];
    plan.for_tasks(
        &mut out,
        image,
        &mut states,
        &scratch,
        |first, count, dst, _, bufs| {
            for (i, y) in dst.chunks_exact_mut(image).take(count).enumerate() {
                match &bias {
                    Some(b) => fill_bias(y, b, s.l),
                    None if s.k == 0 => y.fill(0.0), // an empty sum is zero
                    None => {}
                }
                if s.k == 0 {
                    continue;
                }
                let cols = src.columns(first + i, &mut bufs[0], &s, plan.work);
                for gi in 0..s.groups {
                    // y[g] [O/G, L] (+)= w[g] [O/G, K] × cols[g] [K, L]
                    let a = Matrix::rows(&w[gi * s.og * s.k..], s.k);
                    let y_g = &mut y[gi * s.og * s.l..(gi + 1) * s.og * s.l];
                    product(
                        y_g,
                        s.l,
                        bias.is_some(),
                        a,
                        cols.group(gi),
                        [s.og, s.l, s.k],
                        plan.gemm,
                    );
                }
            }
        },
    );
    scratch.finish()?;
    Ok(out)
}

/// The gradients of [`conv2d`]'s input, weight and bias from the output's
/// gradient `grad`, each computed where `needs` asks.
pub(crate) fn conv2d_grad(
    grad: View,
    input: View,
    weight: View,
    g: &WindowGeometry,
    groups: usize,
    needs: [bool; 3],
) -> Result<[Option<Vec<f32>>; 3]> {
    const OP: &str = "fused_conv2d_grad";
    let locks = ReadLocks::new(OP, &[grad.0, input.0, weight.0])?;
    let s = Shapes::new(OP, input.1, weight.1, g, groups)?;
    grad.1
        .expect_shape(OP, "grad", &[g.n, s.o, g.out[0], g.out[1]])?;
    let dy = gather(locks.f32(0, grad.1)?, grad.1)?;
    let x = locks.f32(1, input.1)?;
    let w = gather(locks.f32(2, weight.1)?, weight.1)?;
    let [need_dx, need_dw, need_db] = needs;
    let image = g.c * g.h * g.w;
    let src = Source::new(x, input.1, g, &s);
    // A pointwise gradient is written whole by gemm; col2im adds.
    let mut dx = match (need_dx, src.pointwise && s.k > 0) {
        (false, _) => Vec::new(),
        (true, true) => pool::take(g.n * image)?,
        (true, false) => pool::zeroed(g.n * image)?,
    };
    let (mut dw, mut db) = (pool::zeroed(s.o * s.k)?, vec![0.0; s.o]);
    if g.n * s.l == 0 || !needs.contains(&true) {
        return Ok([
            need_dx.then_some(dx),
            need_dw.then_some(dw),
            need_db.then_some(db),
        ]);
    }
    let plan = Plan::new(&s, g.n);
    // The direct input gradient multiplies zeros by the weight (direct.rs).
    let direct =
        Direct::new(g, input.1, &s).filter(|_| !need_dx || w.iter().all(|v| v.is_finite()));
    if let Some(d) = direct {
        direct::grad(&d, &dy, x, &w, &s, &plan, needs, &mut dx, &mut dw, &mut db)?;
        return Ok([
            need_dx.then_some(dx),
            need_dw.then_some(dw),
            need_db.then_some(db),
        ]);
    }
    if let Some(rt) = RowTaps::new(g, input.1, &s) {
        rows::grad(
            &rt, &dy, x, &w, g, &s, &plan, needs, &mut dx, &mut dw, &mut db,
        )?;
        return Ok([
            need_dx.then_some(dx),
            need_dw.then_some(dw),
            need_db.then_some(db),
        ]);
    }
    // Scratch: the columns, their gradient, dy[n] transposed. Per task:
    // partial sums of dWᵀ ([G, K, O/G]) and db ([O]).
    let cols_len = src.cols_len(&s);
    let dcols_len = if need_dx && !src.pointwise {
        cols_len
    } else {
        0
    };
    let dyt_len = if need_dw { s.o * s.l } else { 0 };
    let scratch = Scratch::new(&[cols_len, dcols_len, dyt_len], plan.sets())?;
    let mut state = Vec::with_capacity(plan.tasks);
    for _ in 0..plan.tasks {
        let dw_len = if need_dw { s.o * s.k } else { 0 };
        state.push([
            pool::zeroed(dw_len)?,
            vec![0.0; if need_db { s.o } else { 0 }],
        ]);
    }
    let dx_image = if need_dx { image } else { 0 };
    plan.for_tasks(
        &mut dx,
        dx_image,
        &mut state,
        &scratch,
        |first, count, dx, state, bufs| {
            let [dwt, db] = state;
            let [cols, dcols, dyt] = bufs else { return };
            for i in 0..count {
                let n = first + i;
                let dy_n = &dy[n * s.o * s.l..(n + 1) * s.o * s.l];
                if need_db {
                    add_row_sums(db, dy_n, s.l);
                }
                if s.k == 0 {
                    continue;
                }
                if need_dw {
                    // dwᵀ[g] [K, O/G] += cols[g] [K, L] × dy[n][g]ᵀ [L, O/G]. As
                    // dy[n][g] × cols[g]ᵀ, gemm would read a column-major right
                    // operand, measured 10–18× slower than this product plus
                    // the copy of dy[n] transposed (16 × 1024 × 144: 400 µs
                    // against 22 µs + 7 µs on one core).
                    let cols = src.columns(n, cols, &s, plan.work);
                    let group = s.og * s.l;
                    for gi in 0..s.groups {
                        let dyt_g = &mut dyt[gi * group..(gi + 1) * group];
                        transpose_into(&dy_n[gi * group..(gi + 1) * group], s.og, s.l, dyt_g);
                        let dwt_g = &mut dwt[gi * s.k * s.og..(gi + 1) * s.k * s.og];
                        let b = Matrix::rows(dyt_g, s.og);
                        product(
                            dwt_g,
                            s.og,
                            true,
                            cols.group(gi),
                            b,
                            [s.k, s.og, s.l],
                            plan.gemm,
                        );
                    }
                }
                if need_dx {
                    let dx_n = &mut dx[i * image..(i + 1) * image];
                    let dst: &mut [f32] = if src.pointwise { dx_n } else { dcols };
                    for gi in 0..s.groups {
                        // dcols[g] [K, L] = w[g]ᵀ [K, O/G] × dy[n][g] [O/G, L]
                        let a = Matrix::rows(&w[gi * s.og * s.k..], s.k).transposed();
                        let b = Matrix::rows(&dy_n[gi * s.og * s.l..], s.l);
                        let d = &mut dst[gi * s.k * s.l..(gi + 1) * s.k * s.l];
                        product(d, s.l, false, a, b, [s.k, s.l, s.og], plan.gemm);
                    }
                    if !src.pointwise {
                        let dx_n = &mut dx[i * image..(i + 1) * image];
                        col2im(dcols, g, &src.spans, dx_n, plan.work);
                    }
                }
            }
        },
    );
    // The tasks' partial sums, added in task order; dW from dWᵀ per group.
    scratch.finish()?;
    let mut dwt = pool::zeroed(if need_dw { s.o * s.k } else { 0 })?;
    for [task_dwt, task_db] in state {
        dwt.iter_mut().zip(&task_dwt).for_each(|(t, v)| *t += v);
        db.iter_mut().zip(&task_db).for_each(|(t, v)| *t += v);
        pool::give(task_dwt);
    }
    if need_dw && s.og * s.k > 0 {
        let group = s.og * s.k;
        for (dw_g, dwt_g) in dw.chunks_exact_mut(group).zip(dwt.chunks_exact(group)) {
            transpose_into(dwt_g, s.k, s.og, dw_g);
        }
    }
    pool::give(dwt);
    Ok([
        need_dx.then_some(dx),
        need_dw.then_some(dw),
        need_db.then_some(db),
    ])
}

/// An image's output `[O, L]` starting as its bias rows, for gemm to add
/// onto.
fn fill_bias(y: &mut [f32], bias: &[f32], l: usize) {
    for (row, &v) in y.chunks_exact_mut(l).zip(bias) {
        row.fill(v);
    }
}

/// The bias's gradient from one image's output gradient `dy_n` (`[O, L]`):
/// each row's sum added into `db`. Summed in vectors (in `f64`): a sum in
/// one register waits on every add, and a LeNet image's rows are 784 long.
fn add_row_sums(db: &mut [f32], dy_n: &[f32], l: usize) {
    for (b, row) in db.iter_mut().zip(dy_n.chunks_exact(l)) {
        *b += crate::runs::sum(row) as f32;
    }
}

/// The sizes of one convolution.
struct Shapes {
    groups: usize,
    /// Output channels, and per group.
    o: usize,
    og: usize,
    /// Input channels per group.
    cg: usize,
    /// Rows of a group's columns, `C/G·kh·kw`.
    k: usize,
    /// Window positions, `out_h·out_w`.
    l: usize,
}

impl Shapes {
    fn new(
        op: &'static str,
        input: &Layout,
        weight: &Layout,
        g: &WindowGeometry,
        groups: usize,
    ) -> Result<Shapes> {
        input.expect_shape(op, "input", &g.image_shape())?;
        weight.expect_rank(op, "weight [O, C/groups, kh, kw]", 4)?;
        let o = weight.shape[0];
        if groups == 0 || !g.c.is_multiple_of(groups) || !o.is_multiple_of(groups) {
            return Err(Error::invalid(
                op,
                format!(
                    "groups ({groups}) must divide the {} input and {o} output channels",
                    g.c
                ),
            ));
        }
        let cg = g.c / groups;
        weight.expect_shape(op, "weight", &[o, cg, g.kernel[0], g.kernel[1]])?;
        Ok(Shapes {
            groups,
            o,
            og: o / groups,
            cg,
            k: cg * g.taps(),
            l: g.positions(),
        })
    }
}

#[cfg(test)]
mod tests {
    use lam_core::backend::WindowGeometry;
    use lam_core::{Backend, Layout};

    use crate::test_util::*;

    /// A 3×3, padding 1 window over `[n, c, 4, 5]`.
    fn geometry(n: usize, c: usize) -> WindowGeometry {
        WindowGeometry {
            n,
            c,
            h: 4,
            w: 5,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            out: [4, 5],
        }
    }

    #[test]
    fn images_split_across_threads_match_one_at_a_time() {
        // Every image's output and gradient is the same whether it runs in
        // a batch of 9 (tasks on several threads) or alone.
        let b = backend();
        let (n, c, o) = (9, 2, 3);
        let g = geometry(n, c);
        let (x, xl) = f32s(&values(n * c * 20, 1), &g.image_shape());
        let (w, wl) = f32s(&values(o * c * 9, 2), &[o, c, 3, 3]);
        let (dy, dyl) = f32s(&values(n * o * 20, 3), &[n, o, 4, 5]);
        let y = b.fused_conv2d((&x, &xl), (&w, &wl), None, &g, 1).unwrap();
        let y = read(&y.unwrap(), &[n * o * 20]);
        let grads = b
            .fused_conv2d_grad((&dy, &dyl), (&x, &xl), (&w, &wl), &g, 1, [true, true, true])
            .unwrap()
            .unwrap();
        let dx = read(grads[0].as_ref().unwrap(), &[n * c * 20]);
        let dw = read(grads[1].as_ref().unwrap(), &[o * c * 9]);
        let mut dw_sum = vec![0.0; o * c * 9];
        let g1 = geometry(1, c);
        for i in 0..n {
            let xi = Layout {
                offset: i * c * 20,
                ..Layout::contiguous(&g1.image_shape())
            };
            let dyi = Layout {
                offset: i * o * 20,
                ..Layout::contiguous(&[1, o, 4, 5])
            };
            let yi = b.fused_conv2d((&x, &xi), (&w, &wl), None, &g1, 1).unwrap();
            assert_eq!(
                read(&yi.unwrap(), &[o * 20]),
                y[i * o * 20..(i + 1) * o * 20]
            );
            let gi = b
                .fused_conv2d_grad(
                    (&dy, &dyi),
                    (&x, &xi),
                    (&w, &wl),
                    &g1,
                    1,
                    [true, true, false],
                )
                .unwrap()
                .unwrap();
            assert!(gi[2].is_none());
            assert_eq!(
                read(gi[0].as_ref().unwrap(), &[c * 20]),
                dx[i * c * 20..(i + 1) * c * 20]
            );
            let dwi = read(gi[1].as_ref().unwrap(), &[o * c * 9]);
            dw_sum.iter_mut().zip(&dwi).for_each(|(s, v)| *s += v);
        }
        assert_close(&dw, &dw_sum, 1e-5);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let b = backend();
        let g = geometry(1, 2);
        let (x, xl) = f32s(&[0.0; 40], &g.image_shape());
        let (w, _) = f32s(&[0.0; 54], &[54]);
        let conv = |wl: &[usize], groups: usize| {
            b.fused_conv2d((&x, &xl), (&w, &Layout::contiguous(wl)), None, &g, groups)
        };
        let err = conv(&[3, 2, 3, 2], 1).unwrap_err();
        assert!(err.to_string().contains("[3, 2, 3, 3]"), "{err}");
        assert!(conv(&[3, 2, 3, 3], 0).is_err());
        assert!(
            conv(&[3, 1, 3, 3], 2).is_err(),
            "3 output channels in 2 groups"
        );
        let (dy, _) = f32s(&[0.0; 60], &[60]);
        let err = b
            .fused_conv2d_grad(
                (&dy, &Layout::contiguous(&[1, 3, 5, 4])),
                (&x, &xl),
                (&w, &Layout::contiguous(&[3, 2, 3, 3])),
                &g,
                1,
                [true; 3],
            )
            .unwrap_err();
        assert!(err.to_string().contains("[1, 3, 4, 5]"), "{err}");
    }
}
