//! The loops the elementwise formulas run in, shared by every op: a
//! contiguous slice mapped chunk by chunk, two views zipped (walked row by
//! row where they are not contiguous), and GELU's backward.
//!
//! Each loop is compiled for the widest vectors the processor has and
//! chosen at run time ([`map_chunk`], and [`vectorised`] for the loops of
//! other families); a formula passed in is inlined into every variant. The
//! formulas themselves stay in `elementwise.rs`, one `match` per op.

use lam_core::{Layout, Result};

use crate::math_f32::gelu_grad;
use crate::parallel::{for_chunks, CHUNK};
use crate::pool;
use crate::strided::{coalesce, gather, Rows};

/// `[n] -> [n]`: `f` of each element of a contiguous slice.
/// (`F` is `Copy` so that each chunk gets the formula itself, not a
/// reference whose call might not be inlined into the vector loops.)
pub(super) fn map<F: Fn(f32) -> f32 + Sync + Copy>(x: &[f32], f: F) -> Result<Vec<f32>> {
    let mut out = pool::take(x.len())?;
    for_chunks(&mut out, CHUNK, x.len(), |start, chunk| {
        map_chunk(chunk, &x[start..], f);
    });
    Ok(out)
}

/// `out[i] = f(x[i])` in the widest vectors the processor has. Formulas
/// written as straight-line `f32` arithmetic (GELU and its gradient,
/// `math_f32`; exp, sigmoid and tanh, `math`) vectorise, and with AVX-512
/// run 16 lanes instead of SSE2's 4. Both vector variants are compiled
/// with FMA, so a written `mul_add` is one instruction. The result does not
/// depend on the variant: no multiply-add is fused unless written, and a
/// written one is fused everywhere (in the plain loop, by libm).
pub(crate) fn map_chunk<F: Fn(f32) -> f32>(out: &mut [f32], x: &[f32], f: F) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F, checked just above.
            return unsafe { map_avx512(out, x, &f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the processor has AVX2 and FMA, checked just above.
            return unsafe { map_avx2(out, x, &f) };
        }
    }
    map_elements(out, x, &f);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn map_avx512<F: Fn(f32) -> f32>(out: &mut [f32], x: &[f32], f: &F) {
    map_elements(out, x, f);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn map_avx2<F: Fn(f32) -> f32>(out: &mut [f32], x: &[f32], f: &F) {
    map_elements(out, x, f);
}

/// Runs `body` compiled for the widest vectors the processor has, as
/// [`map_chunk`] does, for loops of several inputs and outputs (an LSTM
/// step's gates): `body` is inlined into each variant.
pub(crate) fn vectorised<F: FnOnce()>(body: F) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F, checked just above.
            return unsafe { run_avx512(body) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the processor has AVX2 and FMA, checked just above.
            return unsafe { run_avx2(body) };
        }
    }
    body();
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run_avx512<F: FnOnce()>(body: F) {
    body();
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<F: FnOnce()>(body: F) {
    body();
}

/// The loop itself, inlined into each variant above so each is compiled
/// for its own instruction set.
#[inline(always)]
fn map_elements<F: Fn(f32) -> f32>(out: &mut [f32], x: &[f32], f: &F) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = f(x);
    }
}

/// `g · gelu'(x)` for the upstream gradient `g` and the GELU's input `x`:
/// each chunk's `gelu'(x)` in the widest vectors ([`map_chunk`]) and then
/// the product, so the bits are those of the unary op followed by a product.
// The closure is not redundant: it carries `#[inline(always)]`.
#[allow(clippy::redundant_closure)]
pub(super) fn gelu_backward(g: (&[f32], &Layout), x: (&[f32], &Layout)) -> Result<Vec<f32>> {
    let ((gs, lg), (xs, lx)) = (g, x);
    // Other views are gathered first: `gelu_grad`'s fused multiply-adds
    // are single instructions only inside `map_chunk`.
    let (gs, xs) = (gather(gs, lg)?, gather(xs, lx)?);
    let n = lg.numel();
    let mut out = pool::take(n)?;
    for_chunks(&mut out, CHUNK, n, |start, chunk| {
        map_chunk(
            chunk,
            &xs[start..],
            #[inline(always)]
            |x| gelu_grad(x),
        );
        for (o, &g) in chunk.iter_mut().zip(&gs[start..]) {
            *o *= g;
        }
    });
    Ok(out)
}

/// `f(a[i], b[i])` for two views of one shape, output contiguous row-major.
pub(super) fn zip_map<F>(a: (&[f32], &Layout), b: (&[f32], &Layout), f: F) -> Result<Vec<f32>>
where
    F: Fn(f32, f32) -> f32 + Sync,
{
    let ((xa, la), (xb, lb)) = (a, b);
    let n = la.numel();
    let mut out = pool::take(n)?;
    if la.is_contiguous() && lb.is_contiguous() {
        let (xa, xb) = (&xa[la.offset..la.offset + n], &xb[lb.offset..lb.offset + n]);
        for_chunks(&mut out, CHUNK, n, |start, chunk| {
            for ((o, &x), &y) in chunk.iter_mut().zip(&xa[start..]).zip(&xb[start..]) {
                *o = f(x, y);
            }
        });
    } else {
        // Row r of the [rows, len] output reads a at ra.starts[r] + j * ra.stride;
        // coalescing first makes the rows as long as the two views allow.
        let [ca, cb] = coalesce([la, lb]);
        let (ra, rb) = (Rows::of(&ca), Rows::of(&cb));
        for_chunks(&mut out, ra.len, n, |start, row| {
            let r = start / ra.len;
            let (sa, sb, len) = (ra.starts[r], rb.starts[r], row.len());
            // The common strides get loops the compiler vectorises: both
            // operands walking memory, or one of them broadcast along the row.
            match (ra.stride, rb.stride) {
                (1, 1) => {
                    let (ya, yb) = (&xa[sa..sa + len], &xb[sb..sb + len]);
                    for ((o, &x), &y) in row.iter_mut().zip(ya).zip(yb) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = xb[sb];
                    for (o, &x) in row.iter_mut().zip(&xa[sa..sa + len]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = xa[sa];
                    for (o, &y) in row.iter_mut().zip(&xb[sb..sb + len]) {
                        *o = f(x, y);
                    }
                }
                (stride_a, stride_b) => {
                    for (j, o) in row.iter_mut().enumerate() {
                        *o = f(xa[sa + j * stride_a], xb[sb + j * stride_b]);
                    }
                }
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// GELU and its gradient give the same bits in every variant of the
    /// loop — AVX-512, AVX2 with FMA, the plain loop, and the element-wise
    /// tail of a vector loop — as one call outside any loop does: their
    /// multiply-adds are fused as written, never by the compiler.
    #[test]
    fn gelu_gives_the_same_bits_in_every_loop_variant() {
        use crate::math_f32::{gelu, gelu_grad};
        // 16·k + 7 values (every vector loop leaves a tail) over ±25, past
        // where the exponentials vanish.
        let xs: Vec<f32> = (0..4007).map(|i| (i as f32 - 2003.0) * 0.012_5).collect();
        every_variant_matches("gelu", &xs, gelu, gelu);
        every_variant_matches("gelu_grad", &xs, gelu_grad, gelu_grad);
    }

    /// `f` (the formula inlined, as the ops pass it) in each loop variant
    /// gives the bits of `call`, the same formula called per element.
    fn every_variant_matches(
        name: &str,
        xs: &[f32],
        call: fn(f32) -> f32,
        f: impl Fn(f32) -> f32 + Copy,
    ) {
        let check = |variant: &str, out: &[f32]| {
            for (x, y) in xs.iter().zip(out) {
                let want = std::hint::black_box(call)(*x);
                assert_eq!(y.to_bits(), want.to_bits(), "{name}({x}) in {variant}");
            }
        };
        let mut out = vec![0.0; xs.len()];
        super::map_chunk(&mut out, xs, f);
        check("map_chunk", &out);
        super::map_elements(&mut out, xs, &f);
        check("the plain loop", &out);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor has AVX-512F, checked just above.
                unsafe { super::map_avx512(&mut out, xs, &f) };
                check("AVX-512", &out);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the processor has AVX2 and FMA, checked just above.
                unsafe { super::map_avx2(&mut out, xs, &f) };
                check("AVX2", &out);
            }
        }
    }
}
