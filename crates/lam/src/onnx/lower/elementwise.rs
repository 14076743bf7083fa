//! Unary and binary ops as ONNX nodes: most are one ONNX operator; the
//! rest are short compositions (GELU through `Erf`, as opset 17 has no
//! `Gelu`; a scalar operand as a constant; comparisons cast back to
//! `float`, since lam's comparisons give 0 and 1). The gradient-only ops
//! have no ONNX form and are errors.

use lam_core::backend::{BinaryOp, UnaryOp};
use lam_core::Result;

use super::super::proto::{dtype, Attr};
use super::{unsupported, Builder};

impl Builder<'_> {
    pub(super) fn unary(&mut self, op: UnaryOp, x: String) -> Result<String> {
        Ok(match op {
            UnaryOp::Neg => self.op("Neg", vec![x], vec![]),
            UnaryOp::Abs => self.op("Abs", vec![x], vec![]),
            UnaryOp::Exp => self.op("Exp", vec![x], vec![]),
            UnaryOp::Log => self.op("Log", vec![x], vec![]),
            UnaryOp::Sqrt => self.op("Sqrt", vec![x], vec![]),
            UnaryOp::Square => self.op("Mul", vec![x.clone(), x], vec![]),
            UnaryOp::Recip => self.op("Reciprocal", vec![x], vec![]),
            UnaryOp::Sin => self.op("Sin", vec![x], vec![]),
            UnaryOp::Cos => self.op("Cos", vec![x], vec![]),
            UnaryOp::Tanh => self.op("Tanh", vec![x], vec![]),
            UnaryOp::Sigmoid => self.op("Sigmoid", vec![x], vec![]),
            UnaryOp::Relu => self.op("Relu", vec![x], vec![]),
            UnaryOp::Sign => self.op("Sign", vec![x], vec![]),
            UnaryOp::Softplus => self.op("Softplus", vec![x], vec![]),
            UnaryOp::LeakyRelu(a) => self.op("LeakyRelu", vec![x], vec![("alpha", Attr::Float(a))]),
            UnaryOp::Elu(a) => self.op("Elu", vec![x], vec![("alpha", Attr::Float(a))]),
            UnaryOp::Gelu => {
                // Opset 17 has no Gelu: x · ½ (1 + erf(x / √2)).
                let root2 = self.scalar(std::f32::consts::SQRT_2);
                let scaled = self.op("Div", vec![x.clone(), root2], vec![]);
                let erf = self.op("Erf", vec![scaled], vec![]);
                let one = self.scalar(1.0);
                let shifted = self.op("Add", vec![erf, one], vec![]);
                let half = self.scalar(0.5);
                let gate = self.op("Mul", vec![shifted, half], vec![]);
                self.op("Mul", vec![x, gate], vec![])
            }
            UnaryOp::Silu => {
                let s = self.op("Sigmoid", vec![x.clone()], vec![]);
                self.op("Mul", vec![x, s], vec![])
            }
            UnaryOp::Clamp(lo, hi) => {
                let (lo, hi) = (self.scalar(lo), self.scalar(hi));
                self.op("Clip", vec![x, lo, hi], vec![])
            }
            UnaryOp::AddScalar(c) => self.with_scalar("Add", x, c),
            UnaryOp::MulScalar(c) => self.with_scalar("Mul", x, c),
            UnaryOp::DivScalar(c) => self.with_scalar("Div", x, c),
            UnaryOp::PowScalar(c) => self.with_scalar("Pow", x, c),
            UnaryOp::GtScalar(c) => {
                let m = self.with_scalar("Greater", x, c);
                self.cast_float(m)
            }
            UnaryOp::LtScalar(c) => {
                let m = self.with_scalar("Less", x, c);
                self.cast_float(m)
            }
            UnaryOp::Step | UnaryOp::GeluGrad | UnaryOp::InRange(..) => {
                return Err(unsupported(&format!("the gradient op {op:?}")))
            }
        })
    }

    fn with_scalar(&mut self, op_type: &str, x: String, c: f32) -> String {
        let c = self.scalar(c);
        self.op(op_type, vec![x, c], vec![])
    }

    fn cast_float(&mut self, x: String) -> String {
        self.op("Cast", vec![x], vec![("to", Attr::Int(dtype::FLOAT))])
    }

    pub(super) fn binary(&mut self, op: BinaryOp, a: String, b: String) -> Result<String> {
        let simple = |name: &str| Some(name.to_string());
        let plain = match op {
            BinaryOp::Add => simple("Add"),
            BinaryOp::Sub => simple("Sub"),
            BinaryOp::Mul => simple("Mul"),
            BinaryOp::Div => simple("Div"),
            BinaryOp::Pow => simple("Pow"),
            BinaryOp::Maximum => simple("Max"),
            BinaryOp::Minimum => simple("Min"),
            _ => None,
        };
        if let Some(name) = plain {
            return Ok(self.op(&name, vec![a, b], vec![]));
        }
        let mask = match op {
            BinaryOp::Eq => self.op("Equal", vec![a, b], vec![]),
            BinaryOp::Ne => {
                let eq = self.op("Equal", vec![a, b], vec![]);
                self.op("Not", vec![eq], vec![])
            }
            BinaryOp::Lt => self.op("Less", vec![a, b], vec![]),
            BinaryOp::Le => self.op("LessOrEqual", vec![a, b], vec![]),
            BinaryOp::Gt => self.op("Greater", vec![a, b], vec![]),
            BinaryOp::Ge => self.op("GreaterOrEqual", vec![a, b], vec![]),
            _ => return Err(unsupported(&format!("the gradient op {op:?}"))),
        };
        Ok(self.cast_float(mask))
    }
}
