//! Elementwise ops: `unary`, `binary` and `select`.
//!
//! Each op's formula is one line in a `match`; the loops around it are
//! shared. Inputs that are contiguous slices take a straight zip (which the
//! compiler vectorises); any other view — transposed, narrowed, broadcast
//! with stride 0 — is walked row by row along its last dim (after merging
//! the dims both operands walk as one, so the rows are long), so
//! broadcasting never materialises the repeated operand.

use lam_core::backend::{BinaryOp, UnaryOp, View};
use lam_core::{DType, Error, Layout, Result};

use crate::math::{exp_f32, sigmoid, softplus, tanh};
use crate::math_f32::{gelu, gelu_grad};
use crate::parallel::{for_chunks, CHUNK};
use crate::pool;
use crate::storage::{dtype_error, Data, ReadLocks};
use crate::strided::{coalesce, gather, Rows};

/// `op` applied to every element of an `F32` view; the output is contiguous.
// The GELU closures are not redundant: they carry `#[inline(always)]`.
#[allow(clippy::redundant_closure)]
pub(crate) fn unary(op: UnaryOp, src: View) -> Result<Vec<f32>> {
    use UnaryOp::*;
    let locks = ReadLocks::new("unary", &[src.0])?;
    let x = gather(locks.f32(0, src.1)?, src.1)?;
    let x = &*x;
    match op {
        Neg => map(x, |x| -x),
        Abs => map(x, f32::abs),
        Exp => map(x, exp_f32),
        Log => map(x, f32::ln),
        Sqrt => map(x, f32::sqrt),
        Square => map(x, |x| x * x),
        Recip => map(x, f32::recip),
        Sin => map(x, f32::sin),
        Cos => map(x, f32::cos),
        Tanh => map(x, tanh),
        Sigmoid => map(x, sigmoid),
        // `x < 0` rather than `x > 0` so NaN propagates, as in PyTorch.
        Relu => map(x, |x| if x < 0.0 { 0.0 } else { x }),
        LeakyRelu(alpha) => map(x, |x| if x > 0.0 { x } else { alpha * x }),
        Elu(alpha) => map(x, |x| if x > 0.0 { x } else { alpha * x.exp_m1() }),
        // (Forced inline: the formulas are long, and must be compiled into
        // each vector-width variant of the loop rather than called.)
        Gelu => map(
            x,
            #[inline(always)]
            |x| gelu(x),
        ),
        Silu => map(x, |x| x * sigmoid(x)),
        Softplus => map(x, softplus),
        Clamp(lo, hi) => map(x, |x| {
            if x < lo {
                lo
            } else if x > hi {
                hi
            } else {
                x
            }
        }),
        // Keeps ±0 as it is; NaN gives 0, as PyTorch's sign does.
        Sign => map(x, |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else if x.is_nan() {
                0.0
            } else {
                x
            }
        }),
        Step => map(x, |x| indicator(x > 0.0)),
        AddScalar(c) => map(x, |x| x + c),
        MulScalar(c) => map(x, |x| x * c),
        DivScalar(c) => map(x, |x| x / c),
        PowScalar(p) => map(x, |x| x.powf(p)),
        GtScalar(c) => map(x, |x| indicator(x > c)),
        LtScalar(c) => map(x, |x| indicator(x < c)),
        GeluGrad => map(
            x,
            #[inline(always)]
            |x| gelu_grad(x),
        ),
        InRange(lo, hi) => map(x, |x| indicator(lo < x && x < hi)),
    }
}

/// `op` applied elementwise to two `F32` views of the same shape.
pub(crate) fn binary(op: BinaryOp, lhs: View, rhs: View) -> Result<Vec<f32>> {
    use BinaryOp::*;
    let locks = ReadLocks::new("binary", &[lhs.0, rhs.0])?;
    same_shape("binary", lhs.1, rhs.1)?;
    let a = (locks.f32(0, lhs.1)?, lhs.1);
    let b = (locks.f32(1, rhs.1)?, rhs.1);
    match op {
        Add => zip_map(a, b, |x, y| x + y),
        Sub => zip_map(a, b, |x, y| x - y),
        Mul => zip_map(a, b, |x, y| x * y),
        Div => zip_map(a, b, |x, y| x / y),
        Pow => zip_map(a, b, f32::powf),
        // NaN-propagating, like torch.maximum (f32::max would drop the NaN).
        Maximum => zip_map(a, b, |x, y| if x.is_nan() || x > y { x } else { y }),
        Minimum => zip_map(a, b, |x, y| if x.is_nan() || x < y { x } else { y }),
        Eq => zip_map(a, b, |x, y| indicator(x == y)),
        Ne => zip_map(a, b, |x, y| indicator(x != y)),
        Lt => zip_map(a, b, |x, y| indicator(x < y)),
        Le => zip_map(a, b, |x, y| indicator(x <= y)),
        Gt => zip_map(a, b, |x, y| indicator(x > y)),
        Ge => zip_map(a, b, |x, y| indicator(x >= y)),
        ReluGrad => zip_map(a, b, |g, y| if y <= 0.0 { 0.0 } else { g }),
        GeluGrad => gelu_backward(a, b),
    }
}

/// `cond != 0 ? a : b` elementwise; `cond` may be `F32` or `I32`.
pub(crate) fn select(cond: View, a: View, b: View) -> Result<Vec<f32>> {
    let locks = ReadLocks::new("select", &[cond.0, a.0, b.0])?;
    same_shape("select", cond.1, a.1)?;
    same_shape("select", cond.1, b.1)?;
    // The mask is read once into a contiguous f32 vector (it is usually a
    // freshly computed comparison anyway); `a` and `b` are walked in place.
    let mask: Vec<f32> = match locks.data(0, cond.1)? {
        Data::F32(v) => gather(v, cond.1)?.into_owned(),
        Data::I32(v) => gather(v, cond.1)?.iter().map(|&c| c as f32).collect(),
        Data::F16(_) => return Err(dtype_error("select", DType::F32, DType::F16)),
    };
    let (xa, xb) = (locks.f32(1, a.1)?, locks.f32(2, b.1)?);
    let (ra, rb) = (Rows::of(a.1), Rows::of(b.1));
    let mut out = pool::take(mask.len())?;
    for_chunks(&mut out, ra.len, mask.len(), |start, row| {
        let r = start / ra.len;
        let (sa, sb) = (ra.starts[r], rb.starts[r]);
        for (j, o) in row.iter_mut().enumerate() {
            *o = if mask[start + j] != 0.0 {
                xa[sa + j * ra.stride]
            } else {
                xb[sb + j * rb.stride]
            };
        }
    });
    Ok(out)
}

/// 1.0 for true, 0.0 for false.
fn indicator(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn same_shape(op: &'static str, a: &Layout, b: &Layout) -> Result<()> {
    if a.shape == b.shape {
        Ok(())
    } else {
        Err(Error::shape(op, format!("{:?}", a.shape), &b.shape))
    }
}

/// `[n] -> [n]`: `f` of each element of a contiguous slice.
/// (`F` is `Copy` so that each chunk gets the formula itself, not a
/// reference whose call might not be inlined into the vector loops.)
fn map<F: Fn(f32) -> f32 + Sync + Copy>(x: &[f32], f: F) -> Result<Vec<f32>> {
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
fn gelu_backward(g: (&[f32], &Layout), x: (&[f32], &Layout)) -> Result<Vec<f32>> {
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
fn zip_map<F>(a: (&[f32], &Layout), b: (&[f32], &Layout), f: F) -> Result<Vec<f32>>
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
    use lam_core::backend::{BinaryOp, UnaryOp};
    use lam_core::{Backend, DType, Layout};

    use crate::test_util::*;

    /// `op` of each of `xs`, through the backend.
    fn unary(op: UnaryOp, xs: &[f32]) -> Vec<f32> {
        let b = backend();
        let (s, l) = f32s(xs, &[xs.len()]);
        read(&b.unary(op, (&s, &l)).unwrap(), &[xs.len()])
    }

    #[test]
    fn unary_ops_give_known_values() {
        use UnaryOp::*;
        // Expected values: Python's math module in f64.
        let xs = [-2.0, -0.5, 0.0, 0.5, 2.0];
        let e = std::f32::consts::E;
        let cases: Vec<(UnaryOp, [f32; 5])> = vec![
            (Neg, [2.0, 0.5, 0.0, -0.5, -2.0]),
            (Abs, [2.0, 0.5, 0.0, 0.5, 2.0]),
            (Square, [4.0, 0.25, 0.0, 0.25, 4.0]),
            (Relu, [0.0, 0.0, 0.0, 0.5, 2.0]),
            (LeakyRelu(0.1), [-0.2, -0.05, 0.0, 0.5, 2.0]),
            (
                Elu(1.0),
                [(-2f32).exp_m1(), (-0.5f32).exp_m1(), 0.0, 0.5, 2.0],
            ),
            (Clamp(-1.0, 1.0), [-1.0, -0.5, 0.0, 0.5, 1.0]),
            (Sign, [-1.0, -1.0, 0.0, 1.0, 1.0]),
            (Step, [0.0, 0.0, 0.0, 1.0, 1.0]),
            (AddScalar(1.0), [-1.0, 0.5, 1.0, 1.5, 3.0]),
            (MulScalar(-2.0), [4.0, 1.0, -0.0, -1.0, -4.0]),
            (GtScalar(0.5), [0.0, 0.0, 0.0, 0.0, 1.0]),
            (LtScalar(0.0), [1.0, 1.0, 0.0, 0.0, 0.0]),
            (InRange(-0.5, 2.0), [0.0, 0.0, 1.0, 1.0, 0.0]),
            (
                Sigmoid,
                [0.119_202_92, 0.377_540_67, 0.5, 0.622_459_3, 0.880_797_1],
            ),
            (
                Tanh,
                [-0.964_027_6, -0.462_117_16, 0.0, 0.462_117_16, 0.964_027_6],
            ),
            (
                Silu,
                [-0.238_405_84, -0.188_770_34, 0.0, 0.311_229_66, 1.761_594_2],
            ),
            (
                Softplus,
                [
                    0.126_928_01,
                    0.474_077,
                    std::f32::consts::LN_2,
                    0.974_077,
                    2.126_928,
                ],
            ),
            (
                Gelu,
                [
                    -0.045_500_264,
                    -0.154_268_77,
                    0.0,
                    0.345_731_23,
                    1.954_499_7,
                ],
            ),
            (
                GeluGrad,
                [-0.085_231_8, 0.132_504_88, 0.5, 0.867_495_1, 1.085_231_8],
            ),
            (
                Sin,
                [-0.909_297_4, -0.479_425_55, 0.0, 0.479_425_55, 0.909_297_4],
            ),
            (
                Cos,
                [
                    -0.416_146_84,
                    0.877_582_56,
                    1.0,
                    0.877_582_56,
                    -0.416_146_84,
                ],
            ),
        ];
        for (op, want) in cases {
            assert_close(&unary(op, &xs), &want, 1e-6);
        }
        let pos = [0.25, 1.0, 4.0];
        assert_close(&unary(Exp, &pos), &[0.25f32.exp(), e, 4f32.exp()], 1e-6);
        assert_close(&unary(Log, &pos), &[-1.386_294_4, 0.0, 1.386_294_4], 1e-6);
        assert_close(&unary(Sqrt, &pos), &[0.5, 1.0, 2.0], 1e-6);
        assert_close(&unary(Recip, &pos), &[4.0, 1.0, 0.25], 1e-6);
        assert_close(&unary(PowScalar(1.5), &pos), &[0.125, 1.0, 8.0], 1e-6);
    }

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

    #[test]
    fn nan_propagates_through_relu_clamp_and_maximum() {
        use UnaryOp::*;
        for op in [Relu, Clamp(-1.0, 1.0), Softplus, DivScalar(3.0)] {
            assert!(unary(op, &[f32::NAN])[0].is_nan(), "{op:?}");
        }
        assert_eq!(
            unary(Sign, &[f32::NAN]),
            [0.0],
            "sign(NaN) is 0, as in PyTorch"
        );
        let b = backend();
        let (x, l) = f32s(&[f32::NAN, 1.0], &[2]);
        let (y, _) = f32s(&[0.0, f32::NAN], &[2]);
        for op in [BinaryOp::Maximum, BinaryOp::Minimum] {
            let r = read(&b.binary(op, (&x, &l), (&y, &l)).unwrap(), &[2]);
            assert!(r.iter().all(|v| v.is_nan()), "{op:?}: {r:?}");
        }
    }

    #[test]
    fn binary_ops_give_known_values() {
        use BinaryOp::*;
        let b = backend();
        let (x, l) = f32s(&[1.0, 2.0, 3.0, 4.0], &[4]);
        let (y, _) = f32s(&[2.0, 2.0, 1.0, 8.0], &[4]);
        let cases = [
            (Add, [3.0, 4.0, 4.0, 12.0]),
            (Sub, [-1.0, 0.0, 2.0, -4.0]),
            (Mul, [2.0, 4.0, 3.0, 32.0]),
            (Div, [0.5, 1.0, 3.0, 0.5]),
            (Pow, [1.0, 4.0, 3.0, 65536.0]),
            (Maximum, [2.0, 2.0, 3.0, 8.0]),
            (Minimum, [1.0, 2.0, 1.0, 4.0]),
            (Eq, [0.0, 1.0, 0.0, 0.0]),
            (Ne, [1.0, 0.0, 1.0, 1.0]),
            (Lt, [1.0, 0.0, 0.0, 1.0]),
            (Le, [1.0, 1.0, 0.0, 1.0]),
            (Gt, [0.0, 0.0, 1.0, 0.0]),
            (Ge, [0.0, 1.0, 1.0, 0.0]),
        ];
        for (op, want) in cases {
            let r = b.binary(op, (&x, &l), (&y, &l)).unwrap();
            assert_eq!(read(&r, &[4]), want, "{op:?}");
        }
    }

    #[test]
    fn binary_walks_transposed_and_broadcast_views() {
        let b = backend();
        // a: [2, 3] read transposed as [3, 2]; c: a [2] row broadcast to [3, 2].
        let (a, la) = f32s(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let at = la.permute(&[1, 0]).unwrap();
        let (c, lc) = f32s(&[10., 20.], &[2]);
        let wide = lc.broadcast_to(&[3, 2]).unwrap();
        let r = b.binary(BinaryOp::Add, (&a, &at), (&c, &wide)).unwrap();
        assert_eq!(read(&r, &[3, 2]), vec![11., 24., 12., 25., 13., 26.]);
        // A scalar (rank 0) broadcast against itself and a column broadcast.
        let (s, ls) = f32s(&[5.], &[]);
        let r = b.binary(BinaryOp::Mul, (&s, &ls), (&s, &ls)).unwrap();
        assert_eq!(read(&r, &[]), vec![25.]);
        let col = Layout::contiguous(&[3, 1]).broadcast_to(&[3, 2]).unwrap();
        let (k, _) = f32s(&[1., 2., 3.], &[3]);
        let r = b.binary(BinaryOp::Sub, (&a, &at), (&k, &col)).unwrap();
        assert_eq!(read(&r, &[3, 2]), vec![0., 3., 0., 3., 0., 3.]);
    }

    #[test]
    fn large_elementwise_ops_agree_with_a_plain_loop() {
        // Above the parallel threshold, contiguous and strided.
        let b = backend();
        let (rows, cols) = (300, 257);
        let xs = values(rows * cols, 1);
        let ys = values(rows * cols, 2);
        let (x, l) = f32s(&xs, &[rows, cols]);
        let (y, _) = f32s(&ys, &[rows, cols]);
        let r = b.binary(BinaryOp::Mul, (&x, &l), (&y, &l)).unwrap();
        let want: Vec<f32> = xs.iter().zip(&ys).map(|(a, b)| a * b).collect();
        assert_eq!(read(&r, &[rows * cols]), want);
        let lt = Layout::contiguous(&[cols, rows]).permute(&[1, 0]).unwrap();
        let r = b.binary(BinaryOp::Add, (&x, &l), (&y, &lt)).unwrap();
        let got = read(&r, &[rows * cols]);
        for i in [0, 1, cols, rows * cols - 1] {
            let (p, q) = (i / cols, i % cols);
            assert_eq!(got[i], xs[i] + ys[q * rows + p]);
        }
        let r = b.unary(UnaryOp::Exp, (&x, &lt)).unwrap();
        let got = read(&r, &[rows * cols]);
        assert_eq!(got[1], xs[rows].exp());
    }

    #[test]
    fn select_picks_by_mask_of_either_dtype() {
        let b = backend();
        let (a, l) = f32s(&[1., 2., 3.], &[3]);
        let (c, _) = f32s(&[10., 20., 30.], &[3]);
        let (m, _) = f32s(&[1., 0., -2.], &[3]);
        let r = b.select((&m, &l), (&a, &l), (&c, &l)).unwrap();
        assert_eq!(read(&r, &[3]), vec![1., 20., 3.]);
        let mi = b.from_i32(&[0, 1, 0]).unwrap();
        let r = b.select((&mi, &l), (&a, &l), (&c, &l)).unwrap();
        assert_eq!(read(&r, &[3]), vec![10., 2., 30.]);
        // Broadcast b: one scalar repeated.
        let (z, lz) = f32s(&[0.], &[1]);
        let zb = lz.broadcast_to(&[3]).unwrap();
        let r = b.select((&m, &l), (&a, &l), (&z, &zb)).unwrap();
        assert_eq!(read(&r, &[3]), vec![1., 0., 3.]);
    }

    #[test]
    fn wrong_dtypes_and_shapes_are_errors_not_panics() {
        let b = backend();
        let i = b.from_i32(&[1, 2]).unwrap();
        let l = Layout::contiguous(&[2]);
        assert!(b.unary(UnaryOp::Exp, (&i, &l)).is_err());
        let (x, _) = f32s(&[1., 2.], &[2]);
        let l3 = Layout::contiguous(&[3]);
        assert!(b.binary(BinaryOp::Add, (&x, &l), (&x, &l3)).is_err());
        assert!(b.unary(UnaryOp::Exp, (&x, &l3)).is_err());
        let empty = b.zeros(0, DType::F32).unwrap();
        let l0 = Layout::contiguous(&[0, 4]);
        let r = b
            .binary(BinaryOp::Add, (&empty, &l0), (&empty, &l0))
            .unwrap();
        assert_eq!(r.len(), 0);
    }
}
