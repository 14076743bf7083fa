//! Arithmetic operators on tensors, as PyTorch writes them, and [`Dims`],
//! the argument of reductions. Nothing here computes: each operator
//! forwards to the op of the same meaning, so results, gradients and errors
//! are exactly those of the named methods.
//!
//! Every operator returns `Result<Tensor>` (a shape mismatch is an error,
//! never a panic), so a `?` follows it, as in candle:
//!
//! | PyTorch | lam | forwards to |
//! |---|---|---|
//! | `a + b`, `a - b`, `a * b`, `a / b` | `(&a + &b)?`, `(&a - &b)?`, ... | [`Tensor::add`], [`Tensor::sub`], [`Tensor::mul`], [`Tensor::div`] (broadcasting) |
//! | `x + 1`, `x - 1`, `x * 2`, `x / 2` | `(&x + 1)?`, `(&x * 2.0)?`, ... | [`Tensor::add_scalar`], [`Tensor::sub_scalar`], [`Tensor::mul_scalar`], [`Tensor::div_scalar`] |
//! | `2 * x`, `1 + x` | `(2.0 * &x)?`, `(1 + &x)?` | the same, operands swapped |
//! | `1 - x`, `1 / x` | `(1.0 - &x)?`, `(1.0 / &x)?` | `-x + 1`; a true division `1 / x` |
//! | `-x` | `(-&x)?` | [`Tensor::neg`] |
//! | `x.sum(-1)`, `x.mean((0, 2))` | `x.sum(-1, false)?`, `x.mean(&[0, 2], false)?` | reductions take one dim or a list ([`Dims`]) |
//!
//! Operands may be `&Tensor` or `Tensor` (an owned tensor is consumed, as
//! `(a + b)?`); scalars may be `f32` or `i32`, so both `&x * 2.0` and
//! `&x * 2` read as in Python. (Not `f64` too: a float literal would then
//! fit two impls, and `(&x * 2.0)?` would need a type annotation.) Scalars
//! are applied in `f32`, the tensor's element type. There are no compound assignments (`+=`): a result is a
//! new tensor (the tape needs the old one), and an operator cannot return
//! the error.

use crate::{Result, Tensor};

/// The dims a reduction runs over: one dim (`-1`), or several (`&[0, 2]`,
/// a slice, `&vec`); empty means every dim. Negative dims count from the
/// end. `x.sum(-1, false)` is PyTorch's `x.sum(-1)`.
///
/// Lists are taken by reference only: were arrays accepted by value too,
/// clippy would ask every existing `x.sum(&[1], false)` to drop its `&`.
pub trait Dims {
    /// The dims as a slice.
    fn as_dims(&self) -> &[isize];
}

impl Dims for isize {
    fn as_dims(&self) -> &[isize] {
        std::slice::from_ref(self)
    }
}

impl Dims for &[isize] {
    fn as_dims(&self) -> &[isize] {
        self
    }
}

impl<const N: usize> Dims for &[isize; N] {
    fn as_dims(&self) -> &[isize] {
        *self
    }
}

impl Dims for &Vec<isize> {
    fn as_dims(&self) -> &[isize] {
        self
    }
}

/// `a OP b` for every pairing of `&Tensor` and `Tensor`, and `x OP c` for
/// each scalar type, forwarding to the tensor op and the scalar op.
macro_rules! tensor_operator {
    ($trait:ident, $method:ident, $tensor_op:ident, $scalar_op:ident) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(self, rhs)
            }
        }

        impl std::ops::$trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(self, &rhs)
            }
        }

        impl std::ops::$trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, rhs)
            }
        }

        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, &rhs)
            }
        }

        tensor_operator!(@scalar $trait, $method, $scalar_op, f32, i32);
    };
    (@scalar $trait:ident, $method:ident, $scalar_op:ident, $($scalar:ty),*) => {$(
        impl std::ops::$trait<$scalar> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: $scalar) -> Result<Tensor> {
                Tensor::$scalar_op(self, rhs as f32)
            }
        }

        impl std::ops::$trait<$scalar> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: $scalar) -> Result<Tensor> {
                Tensor::$scalar_op(&self, rhs as f32)
            }
        }
    )*};
}

tensor_operator!(Add, add, add, add_scalar);
tensor_operator!(Sub, sub, sub, sub_scalar);
tensor_operator!(Mul, mul, mul, mul_scalar);
tensor_operator!(Div, div, div, div_scalar);

/// `c OP x` for each scalar type: `$body(x, c)` computes it.
macro_rules! scalar_first_operator {
    ($trait:ident, $method:ident, |$x:ident, $c:ident| $body:expr) => {
        scalar_first_operator!(@each $trait, $method, |$x, $c| $body, f32, i32);
    };
    (@each $trait:ident, $method:ident, |$x:ident, $c:ident| $body:expr, $($scalar:ty),*) => {$(
        impl std::ops::$trait<&Tensor> for $scalar {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                let ($x, $c) = (rhs, self as f32);
                $body
            }
        }

        impl std::ops::$trait<Tensor> for $scalar {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                let ($x, $c) = (&rhs, self as f32);
                $body
            }
        }
    )*};
}

scalar_first_operator!(Add, add, |x, c| x.add_scalar(c));
scalar_first_operator!(Mul, mul, |x, c| x.mul_scalar(c));
// Exact as PyTorch's: negation is exact, and `c / x` is one true division.
scalar_first_operator!(Sub, sub, |x, c| x.neg()?.add_scalar(c));
scalar_first_operator!(Div, div, |x, c| Tensor::div(
    &Tensor::scalar(c, &x.device())?,
    x
));

impl std::ops::Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl std::ops::Neg for Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}
