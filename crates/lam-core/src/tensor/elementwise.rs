//! Elementwise ops: unary functions and activations, binary ops with NumPy
//! broadcasting, scalar forms, comparisons giving `0.0/1.0` masks, and
//! `where`. Each op's gradient rule sits right after its forward.

use super::half;
use super::saved::{Keep, Saved};
use crate::backend::{BinaryOp, UnaryOp};
use crate::layout::broadcast_shapes;
use crate::{DType, Layout, Result, Tensor};

impl Tensor {
    /// `-x`.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg, Keep::NOTHING, |_, g| g.neg())
    }

    /// `|x|` (gradient `sign(x)`: 0 at 0 and at NaN, as in PyTorch).
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs, Keep::INPUT, |s, g| g.mul(&s.a()?.sign()?))
    }

    /// `e^x`.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp, Keep::OUTPUT, |s, g| g.mul(s.y()?))
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log, Keep::INPUT, |s, g| g.div(s.a()?))
    }

    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt, Keep::OUTPUT, |s, g| {
            g.div(&s.y()?.mul_scalar(2.0)?)
        })
    }

    /// `x²`.
    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square, Keep::INPUT, |s, g| {
            g.mul(&s.a()?.mul_scalar(2.0)?)
        })
    }

    /// `1 / x`.
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip, Keep::OUTPUT, |s, g| {
            g.mul(&s.y()?.square()?)?.neg()
        })
    }

    /// Sine.
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin, Keep::INPUT, |s, g| g.mul(&s.a()?.cos()?))
    }

    /// Cosine.
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos, Keep::INPUT, |s, g| {
            g.mul(&s.a()?.sin()?)?.neg()
        })
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        // d tanh = 1 - y²
        self.unary(UnaryOp::Tanh, Keep::OUTPUT, |s, g| {
            g.mul(&s.y()?.square()?.neg()?.add_scalar(1.0)?)
        })
    }

    /// Logistic sigmoid `1 / (1 + e^-x)`.
    pub fn sigmoid(&self) -> Result<Tensor> {
        // d σ = y (1 - y)
        self.unary(UnaryOp::Sigmoid, Keep::OUTPUT, |s, g| {
            let y = s.y()?;
            g.mul(&y.mul(&y.neg()?.add_scalar(1.0)?)?)
        })
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu, Keep::OUTPUT, |s, g| g.relu_grad(s.y()?))
    }

    /// The gradient `self` passed back through a ReLU whose output was `y`:
    /// `self` where `y > 0`, else 0 — PyTorch's `threshold_backward`, as one
    /// op. Not itself differentiated (gradients are first order).
    pub fn relu_grad(&self, y: &Tensor) -> Result<Tensor> {
        let _guard = crate::NoGradGuard::new();
        self.binary(BinaryOp::ReluGrad, y, Keep::NOTHING, |_, _| {
            Ok((None, None))
        })
    }

    /// `x` for `x > 0`, else `alpha x`.
    pub fn leaky_relu(&self, alpha: f32) -> Result<Tensor> {
        // slope = step(x) (1 - α) + α
        self.unary(UnaryOp::LeakyRelu(alpha), Keep::INPUT, move |s, g| {
            g.mul(&s.a()?.step()?.mul_scalar(1.0 - alpha)?.add_scalar(alpha)?)
        })
    }

    /// `min(max(x, 0), 6)`: [`Tensor::hardtanh`] on `[0, 6]`, as PyTorch's.
    pub fn relu6(&self) -> Result<Tensor> {
        self.hardtanh(0.0, 6.0)
    }

    /// `x` limited to `[lo, hi]`, with PyTorch's `hardtanh` gradient: `g`
    /// strictly inside and at NaN, 0 elsewhere (where [`Tensor::clamp`]'s
    /// gradient is 0 at NaN).
    pub fn hardtanh(&self, lo: f32, hi: f32) -> Result<Tensor> {
        check_bounds("hardtanh", lo, hi)?;
        self.unary(UnaryOp::Clamp(lo, hi), Keep::INPUT, move |s, g| {
            let x = s.a()?;
            let inside_or_nan = x.map(UnaryOp::InRange(lo, hi))?.add(&x.is_nan()?)?;
            g.mul(&inside_or_nan)
        })
    }

    /// `x` for `x > 0`, else `alpha (e^x - 1)`.
    pub fn elu(&self, alpha: f32) -> Result<Tensor> {
        // slope = 1 for x > 0 (and at NaN, as PyTorch), else y + α. A select,
        // not a blend by masks, so the NaN of y + α cannot leak into g·1.
        self.unary(UnaryOp::Elu(alpha), Keep::INPUT_AND_OUTPUT, move |s, g| {
            let (x, y) = (s.a()?, s.y()?);
            let positive = x.step()?.add(&x.is_nan()?)?;
            Tensor::where_cond(&positive, g, &g.mul(&y.add_scalar(alpha)?)?)
        })
    }

    /// Mask `1` where `x` is NaN, else `0` (no gradient).
    pub fn is_nan(&self) -> Result<Tensor> {
        self.ne(self)
    }

    /// GELU, exact erf form (PyTorch's default).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Gelu, Keep::INPUT, |s, g| g.gelu_grad(s.a()?))
    }

    /// The gradient `self` passed back through an exact GELU whose input
    /// was `x`: `self · gelu'(x)` — PyTorch's `gelu_backward`, as one op.
    /// Not itself differentiated (gradients are first order).
    pub fn gelu_grad(&self, x: &Tensor) -> Result<Tensor> {
        let _guard = crate::NoGradGuard::new();
        self.binary(BinaryOp::GeluGrad, x, Keep::NOTHING, |_, _| {
            Ok((None, None))
        })
    }

    /// SiLU / swish: `x σ(x)`.
    pub fn silu(&self) -> Result<Tensor> {
        // d = σ (1 + x (1 - σ))
        self.unary(UnaryOp::Silu, Keep::INPUT, |saved, g| {
            let x = saved.a()?;
            let s = x.sigmoid()?;
            let d = s.mul(&x.mul(&s.neg()?.add_scalar(1.0)?)?.add_scalar(1.0)?)?;
            g.mul(&d)
        })
    }

    /// `log(1 + e^x)`, stable for large `|x|`.
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Softplus, Keep::INPUT, |s, g| {
            g.mul(&s.a()?.sigmoid()?)
        })
    }

    /// Values limited to `[lo, hi]` (gradient 1 strictly inside, 0 at NaN).
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Tensor> {
        check_bounds("clamp", lo, hi)?;
        self.unary(UnaryOp::Clamp(lo, hi), Keep::INPUT, move |s, g| {
            g.mul(&s.a()?.map(UnaryOp::InRange(lo, hi))?)
        })
    }

    /// -1, 0 or 1 (no gradient).
    pub fn sign(&self) -> Result<Tensor> {
        self.constant_unary(UnaryOp::Sign)
    }

    /// `x + c`.
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(c), Keep::NOTHING, |_, g| Ok(g.clone()))
    }

    /// `x - c`.
    pub fn sub_scalar(&self, c: f32) -> Result<Tensor> {
        self.add_scalar(-c)
    }

    /// `x * c`.
    pub fn mul_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(c), Keep::NOTHING, move |_, g| {
            g.mul_scalar(c)
        })
    }

    /// `x / c` (a true division, as PyTorch's `x / c`).
    pub fn div_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(UnaryOp::DivScalar(c), Keep::NOTHING, move |_, g| {
            g.div_scalar(c)
        })
    }

    /// `x ^ p` (gradient `p x^(p-1)`, and 0 for `p = 0`, as PyTorch's).
    pub fn pow_scalar(&self, p: f32) -> Result<Tensor> {
        self.unary(UnaryOp::PowScalar(p), Keep::INPUT, move |s, g| {
            if p == 0.0 {
                return Tensor::zeros_like(g);
            }
            g.mul(&s.a()?.pow_scalar(p - 1.0)?.mul_scalar(p)?)
        })
    }

    /// Mask `x > c`.
    pub fn gt_scalar(&self, c: f32) -> Result<Tensor> {
        self.constant_unary(UnaryOp::GtScalar(c))
    }

    /// Mask `x < c`.
    pub fn lt_scalar(&self, c: f32) -> Result<Tensor> {
        self.constant_unary(UnaryOp::LtScalar(c))
    }

    /// `1` where `x > 0`, else `0` (no gradient).
    pub fn step(&self) -> Result<Tensor> {
        self.constant_unary(UnaryOp::Step)
    }

    /// Applies a unary op without recording a gradient (masks, derivatives).
    pub fn map(&self, op: UnaryOp) -> Result<Tensor> {
        self.constant_unary(op)
    }

    /// `a + b` with broadcasting.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, rhs, Keep::NOTHING, |_, g| {
            Ok((Some(g.clone()), Some(g.clone())))
        })
    }

    /// `a - b` with broadcasting.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, rhs, Keep::NOTHING, |_, g| {
            Ok((Some(g.clone()), Some(g.neg()?)))
        })
    }

    /// `a * b` with broadcasting.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        // Each operand is kept only for the other's gradient.
        self.binary(BinaryOp::Mul, rhs, Keep::CROSSED, |s, g| {
            let ga = s.b.as_ref().map(|b| g.mul(b)).transpose()?;
            let gb = s.a.as_ref().map(|a| g.mul(a)).transpose()?;
            Ok((ga, gb))
        })
    }

    /// `a / b` with broadcasting.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        // d/da = 1/b, d/db = -a/b² = -y/b
        self.binary(BinaryOp::Div, rhs, Keep::RHS_AND_OUTPUT, |s, g| {
            let ga = g.div(s.b()?)?;
            let gb = ga.mul(s.y()?)?.neg()?;
            Ok((Some(ga), Some(gb)))
        })
    }

    /// `a ^ b` with broadcasting.
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        // PyTorch's rules: d/da = b a^(b-1), but 0 where b = 0; d/db = y ln a,
        // but 0 where a = 0 and b >= 0 (there y = 0 and ln a = -inf). Selects,
        // so the excluded 0·inf cannot leak in as NaN.
        self.binary(BinaryOp::Pow, rhs, Keep::ALL, |s, g| {
            let (a, b, y) = (s.a()?, s.b()?, s.y()?);
            let zeros = Tensor::zeros_like(g)?;
            let da = g.mul(&b.mul(&a.pow(&b.add_scalar(-1.0)?)?)?)?;
            let ga = Tensor::where_cond(&b.eq(&zeros)?, &zeros, &da)?;
            let db = g.mul(&y.mul(&a.log()?)?)?;
            let base_zero = a.eq(&zeros)?.mul(&b.ge(&zeros)?)?;
            let gb = Tensor::where_cond(&base_zero, &zeros, &db)?;
            Ok((Some(ga), Some(gb)))
        })
    }

    /// Elementwise maximum; on ties the gradient is split evenly, and where
    /// either side is NaN both get all of it (as PyTorch).
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Maximum, rhs, Keep::OPERANDS, |s, g| {
            let (a, b) = (s.a()?, s.b()?);
            Ok((
                Some(g.mul(&share(a, b, a.lt(b)?)?)?),
                Some(g.mul(&share(a, b, a.gt(b)?)?)?),
            ))
        })
    }

    /// Elementwise minimum; on ties the gradient is split evenly, and where
    /// either side is NaN both get all of it (as PyTorch).
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Minimum, rhs, Keep::OPERANDS, |s, g| {
            let (a, b) = (s.a()?, s.b()?);
            Ok((
                Some(g.mul(&share(a, b, a.gt(b)?)?)?),
                Some(g.mul(&share(a, b, a.lt(b)?)?)?),
            ))
        })
    }

    /// Mask `a == b`.
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(BinaryOp::Eq, rhs)
    }

    /// Mask `a != b`.
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(BinaryOp::Ne, rhs)
    }

    /// Mask `a < b`.
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(BinaryOp::Lt, rhs)
    }

    /// Mask `a <= b`.
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(BinaryOp::Le, rhs)
    }

    /// Mask `a > b`.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(BinaryOp::Gt, rhs)
    }

    /// Mask `a >= b`.
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(BinaryOp::Ge, rhs)
    }

    /// `a` where `cond` is non-zero, else `b` (all three broadcast together).
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Where,
                &[Some(cond), Some(a), Some(b)],
                || Tensor::where_cond(cond, a, b),
            );
        }
        cond.device().check_same(&a.device(), "where")?;
        cond.device().check_same(&b.device(), "where")?;
        let (a, b) = (&a.float32("where")?, &b.float32("where")?);
        let cond = cond.to_dtype(DType::F32)?;
        let shape = broadcast_shapes("where", a.dims(), b.dims())?;
        let shape = broadcast_shapes("where", cond.dims(), &shape)?;
        let (c, x, y) = (
            cond.broadcast_layout(&shape)?,
            a.broadcast_layout(&shape)?,
            b.broadcast_layout(&shape)?,
        );
        let (cs, xs, ys) = (cond.storage(), a.storage(), b.storage());
        let out = a.backend().select((&cs, &c), (&xs, &x), (&ys, &y))?;
        let (a_shape, b_shape, mask) = (a.shape(), b.shape(), cond.detach());
        Ok(Tensor::from_op(
            "where",
            out,
            Layout::contiguous(&shape),
            &[a, b],
            move |g| {
                let zeros = Tensor::zeros_like(g)?;
                let ga = Tensor::where_cond(&mask, g, &zeros)?.sum_to_shape(&a_shape)?;
                let gb = Tensor::where_cond(&mask, &zeros, g)?.sum_to_shape(&b_shape)?;
                Ok(vec![Some(ga), Some(gb)])
            },
        ))
    }

    /// A unary op recorded with `rule(saved, g)` giving the input gradient
    /// from the output gradient `g` and the values `keep` names (the input
    /// as `saved.a()`, the output as `saved.y()`).
    fn unary(
        &self,
        op: UnaryOp,
        keep: Keep,
        rule: impl Fn(&Saved, &Tensor) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Unary(op),
                &[Some(self)],
                || self.unary(op, keep, rule),
            );
        }
        // F16 in, F16 out, computed in f32 (see `half.rs`); the ops that
        // return F32 read their input through a taped cast.
        let half = self.dtype() == DType::F16;
        if half && !half::unary_keeps_half(op) {
            return self.float32(op_name(op))?.unary(op, keep, rule);
        }
        if !half {
            self.check_f32("unary op")?;
        }
        let out = half::unary(self, op, self.dtype())?;
        let layout = Layout::contiguous(self.dims());
        if !self.requires_grad() || !crate::is_grad_enabled() {
            return Ok(Tensor::constant(out, layout, &self.device()));
        }
        let saved = Saved {
            op: op_name(op),
            a: keep.a.then(|| self.detach()),
            b: None,
            y: keep
                .y
                .then(|| Tensor::from_storage(out.clone(), layout.clone(), &self.device())),
        };
        Ok(Tensor::from_op(
            op_name(op),
            out,
            layout,
            &[self],
            move |g| Ok(vec![Some(rule(&saved, g)?)]),
        ))
    }

    fn constant_unary(&self, op: UnaryOp) -> Result<Tensor> {
        let x = self.to_dtype(DType::F32)?;
        let s = x.storage();
        let out = x.backend().unary(op, (&s, x.layout()))?;
        Ok(Tensor::constant(
            out,
            Layout::contiguous(x.dims()),
            &x.device(),
        ))
    }

    /// A broadcasting binary op recorded with `rule(saved, g)` giving both
    /// input gradients in the output's shape from the output gradient `g`
    /// and the values `keep` names (operands `saved.a()`, `saved.b()`,
    /// output `saved.y()`); they are then summed down to each input's own
    /// shape.
    fn binary(
        &self,
        op: BinaryOp,
        rhs: &Tensor,
        keep: Keep,
        rule: impl Fn(&Saved, &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)>
            + Send
            + Sync
            + 'static,
    ) -> Result<Tensor> {
        if crate::capture::hooked() {
            return crate::capture::traced(
                || crate::capture::Op::Binary(op),
                &[Some(self), Some(rhs)],
                || self.binary(op, rhs, keep, rule),
            );
        }
        self.device()
            .check_same(&rhs.device(), op_name_binary(op))?;
        // Integer operands compute as F32 values; F16 ones are read as
        // halves and recorded as they are (see `half.rs`).
        let float = |t: &Tensor| match t.dtype() {
            DType::I32 => t.to_dtype(DType::F32),
            _ => Ok(t.clone()),
        };
        let (a, b) = (float(self)?, float(rhs)?);
        let half =
            a.dtype() == DType::F16 && b.dtype() == DType::F16 && half::binary_keeps_half(op);
        let shape = broadcast_shapes(op_name_binary(op), a.dims(), b.dims())?;
        let to = if half { DType::F16 } else { DType::F32 };
        let out = half::binary(op, &a, &b, &shape, to)?;
        let layout = Layout::contiguous(&shape);
        let track = crate::is_grad_enabled() && (a.requires_grad() || b.requires_grad());
        if !track {
            return Ok(Tensor::constant(out, layout, &a.device()));
        }
        let (a_shape, b_shape) = (a.shape(), b.shape());
        let (ra, rb) = (a.requires_grad(), b.requires_grad());
        let saved = Saved {
            op: op_name_binary(op),
            a: (keep.a && (!keep.crossed || rb)).then(|| a.detach()),
            b: (keep.b && (!keep.crossed || ra)).then(|| b.detach()),
            y: keep
                .y
                .then(|| Tensor::from_storage(out.clone(), layout.clone(), &a.device())),
        };
        Ok(Tensor::from_op(
            op_name_binary(op),
            out,
            layout,
            &[&a, &b],
            move |g| {
                let (ga, gb) = rule(&saved, g)?;
                let ga = match ga {
                    Some(t) if ra => Some(t.sum_to_shape(&a_shape)?),
                    _ => None,
                };
                let gb = match gb {
                    Some(t) if rb => Some(t.sum_to_shape(&b_shape)?),
                    _ => None,
                };
                Ok(vec![ga, gb])
            },
        ))
    }

    fn compare(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        let _guard = crate::NoGradGuard::new();
        self.binary(op, rhs, Keep::NOTHING, |_, _| Ok((None, None)))
    }

    /// This tensor's layout broadcast to `shape`.
    pub(crate) fn broadcast_layout(&self, shape: &[usize]) -> Result<Layout> {
        self.layout().broadcast_to(shape)
    }
}

/// One side's share of a maximum's or minimum's gradient, PyTorch's rule:
/// none where that side `loses` (the other side won), half on a tie, all of
/// it otherwise — including where either side is NaN, since every
/// comparison with NaN is false.
fn share(a: &Tensor, b: &Tensor, loses: Tensor) -> Result<Tensor> {
    let ties = a.eq(b)?.mul_scalar(0.5)?;
    loses.add(&ties)?.neg()?.add_scalar(1.0)
}

/// An error unless `lo <= hi` (neither NaN): the bounds of a clamp.
fn check_bounds(op: &'static str, lo: f32, hi: f32) -> Result<()> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(crate::Error::invalid(
            op,
            format!("need lo <= hi, found {lo} > {hi}"),
        ));
    }
    Ok(())
}

fn op_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "neg",
        UnaryOp::Abs => "abs",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Square => "square",
        UnaryOp::Recip => "recip",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Relu => "relu",
        UnaryOp::LeakyRelu(_) => "leaky_relu",
        UnaryOp::Elu(_) => "elu",
        UnaryOp::Gelu => "gelu",
        UnaryOp::Silu => "silu",
        UnaryOp::Softplus => "softplus",
        UnaryOp::Clamp(..) => "clamp",
        UnaryOp::AddScalar(_) => "add_scalar",
        UnaryOp::MulScalar(_) => "mul_scalar",
        UnaryOp::DivScalar(_) => "div_scalar",
        UnaryOp::PowScalar(_) => "pow_scalar",
        _ => "unary",
    }
}

fn op_name_binary(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Pow => "pow",
        BinaryOp::Maximum => "maximum",
        BinaryOp::Minimum => "minimum",
        BinaryOp::ReluGrad => "relu_grad",
        BinaryOp::GeluGrad => "gelu_grad",
        _ => "compare",
    }
}
