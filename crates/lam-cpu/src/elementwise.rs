//! Elementwise ops: `unary`, `binary` and `select`.
//!
//! Each op's formula is one line in a `match`; the loops around it are
//! shared. Inputs that are contiguous slices take a straight zip (which the
//! compiler vectorises); any other view — transposed, narrowed, broadcast
//! with stride 0 — is walked row by row along its last dim (after merging
//! the dims both operands walk as one, so the rows are long), so
//! broadcasting never materialises the repeated operand. The loops, and
//! their variants for each vector width, are in `loops.rs`.

mod loops;

use lam_core::backend::{BinaryOp, UnaryOp, View};
use lam_core::{DType, Error, Layout, Result};

pub(crate) use loops::{map_chunk, vectorised};

use crate::math::{exp_f32, sigmoid, softplus, tanh};
use crate::math_f32::{gelu, gelu_grad};
use crate::parallel::for_chunks;
use crate::pool;
use crate::storage::{dtype_error, Data, ReadLocks};
use crate::strided::{gather, Rows};
use loops::{gelu_backward, map, zip_map};

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
