//! Elementwise ops on random views: every unary function and activation,
//! the scalar forms, every binary op with broadcasting, comparisons and
//! `where` (Backend `unary`, `binary`, `select`).

use lam::prelude::*;
use lam::DType;

use super::harness::{normal, positive, Case, Rng};

/// The public ops these cases call.
pub const COVERS: &[&str] = &[
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "square",
    "recip",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "leaky_relu",
    "relu6",
    "hardtanh",
    "elu",
    "gelu",
    "silu",
    "softplus",
    "clamp",
    "sign",
    "step",
    "map",
    "is_nan",
    "add_scalar",
    "sub_scalar",
    "mul_scalar",
    "div_scalar",
    "pow_scalar",
    "gt_scalar",
    "lt_scalar",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "where_cond",
    "relu_grad",
    "gelu_grad",
];

type Unary = fn(&Tensor) -> lam::Result<Tensor>;
type Binary = fn(&Tensor, &Tensor) -> lam::Result<Tensor>;

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let unary: &[(&str, Unary, bool)] = &[
        ("neg", |x| x.neg(), false),
        ("abs", |x| x.abs(), false),
        ("exp", |x| x.exp(), false),
        ("log", |x| x.log(), true),
        ("sqrt", |x| x.sqrt(), true),
        ("square", |x| x.square(), false),
        ("recip", |x| x.recip(), true),
        ("sin", |x| x.sin(), false),
        ("cos", |x| x.cos(), false),
        ("tanh", |x| x.tanh(), false),
        ("sigmoid", |x| x.sigmoid(), false),
        ("relu", |x| x.relu(), false),
        ("leaky_relu", |x| x.leaky_relu(0.1), false),
        ("relu6", |x| x.mul_scalar(4.0)?.relu6(), false),
        ("hardtanh", |x| x.hardtanh(-0.5, 0.7), false),
        ("elu", |x| x.elu(0.7), false),
        ("gelu", |x| x.gelu(), false),
        ("silu", |x| x.silu(), false),
        ("softplus", |x| x.softplus(), false),
        ("clamp", |x| x.clamp(-0.3, 0.4), false),
        ("add_scalar", |x| x.add_scalar(1.5), false),
        ("sub_scalar", |x| x.sub_scalar(0.25), false),
        ("mul_scalar", |x| x.mul_scalar(-3.0), false),
        ("div_scalar", |x| x.div_scalar(3.0), false),
        ("pow_scalar", |x| x.pow_scalar(1.7), true),
    ];
    let masks: &[(&str, Unary)] = &[
        ("sign", |x| x.sign()),
        ("step", |x| x.step()),
        ("is_nan", |x| x.log()?.is_nan()),
        ("gt_scalar", |x| x.gt_scalar(0.2)),
        ("lt_scalar", |x| x.lt_scalar(-0.1)),
        ("map(gelu_grad)", |x| x.map(lam::backend::UnaryOp::GeluGrad)),
    ];
    let binary: &[(&str, Binary, bool)] = &[
        ("add", |a, b| a.add(b), false),
        ("sub", |a, b| a.sub(b), false),
        ("mul", |a, b| a.mul(b), false),
        ("div", |a, b| a.div(b), true),
        ("pow", |a, b| a.pow(b), true),
        ("maximum", |a, b| a.maximum(b), false),
        ("minimum", |a, b| a.minimum(b), false),
    ];
    let compares: &[(&str, Binary)] = &[
        ("eq", |a, b| a.eq(b)),
        ("ne", |a, b| a.ne(b)),
        ("lt", |a, b| a.lt(b)),
        ("le", |a, b| a.le(b)),
        ("gt", |a, b| a.gt(b)),
        ("ge", |a, b| a.ge(b)),
        ("relu_grad", |a, b| a.relu_grad(b)),
        ("gelu_grad", |a, b| a.gelu_grad(b)),
    ];
    let mut out = Vec::new();
    for &(name, f, pos) in unary {
        let shape = rng.shape(0, 4);
        let input = if pos {
            positive(&shape)
        } else {
            normal(&shape)
        };
        out.push(Case::new(name, vec![input], move |t| Ok(vec![f(&t[0])?])));
    }
    for &(name, f) in masks {
        let input = normal(&rng.shape(0, 4));
        out.push(Case::new(name, vec![input], move |t| Ok(vec![f(&t[0])?])).no_grad());
    }
    for &(name, f, pos) in binary {
        let (a, b) = broadcast_pair(rng);
        let make = if pos { positive } else { normal };
        out.push(Case::new(name, vec![make(&a), make(&b)], move |t| {
            Ok(vec![f(&t[0], &t[1])?])
        }));
    }
    for &(name, f) in compares {
        let (a, b) = broadcast_pair(rng);
        out.push(
            Case::new(name, vec![normal(&a), normal(&b)], move |t| {
                Ok(vec![f(&t[0], &t[1])?])
            })
            .no_grad(),
        );
    }
    let (a, b) = broadcast_pair(rng);
    out.push(Case::new(
        "where_cond",
        vec![normal(&a), normal(&b), normal(&a)],
        |t| {
            Ok(vec![Tensor::where_cond(
                &t[0].gt_scalar(0.0)?,
                &t[1],
                &t[2],
            )?])
        },
    ));
    let shape = rng.shape(1, 4);
    out.push(
        Case::new("half", vec![normal(&shape), normal(&shape)], |t| {
            // Ops on F16 views — transposed, narrowed to one column and
            // broadcast back — give the f32 result rounded once.
            let (a, b) = (t[0].to_dtype(DType::F16)?, t[1].to_dtype(DType::F16)?);
            let last = a.rank() as isize - 1;
            let (at, bt) = (a.transpose(0, last)?, b.transpose(0, last)?);
            let column = b.narrow(last, 0, 1)?;
            type Pair = fn(&Tensor, &Tensor, &Tensor) -> lam::Result<Tensor>;
            let ops: [(&str, Pair); 4] = [
                ("gelu", |a, _, _| a.gelu()),
                ("mul", |a, b, _| a.mul(b)),
                ("add", |_, _, c| c.add(c)),
                ("relu_sub", |a, b, _| a.relu()?.sub(b)),
            ];
            let f32s = |x: &Tensor| x.to_dtype(DType::F32);
            let mut outs = Vec::new();
            for (name, op) in ops {
                let got = op(&at, &bt, &column)?;
                let want = op(&f32s(&at)?, &f32s(&bt)?, &f32s(&column)?)?;
                assert_eq!(got.dtype(), DType::F16, "{name}");
                let bits = |x: &Tensor| -> lam::Result<Vec<u16>> {
                    Ok(x.to_vec_f16()?.iter().map(|h| h.to_bits()).collect())
                };
                assert_eq!(bits(&got)?, bits(&want.to_dtype(DType::F16)?)?, "{name}");
                outs.push(f32s(&got)?);
            }
            outs.push(f32s(&at.add(&a.narrow(last, 0, 1)?.transpose(0, last)?)?)?);
            Ok(outs)
        })
        .no_grad(),
    );
    out
}

/// Two shapes that broadcast together: the second drops leading dims and
/// sets some of the rest to 1.
fn broadcast_pair(rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let a = rng.shape(0, 4);
    let drop = rng.below(a.len() + 1);
    let b = a[drop..]
        .iter()
        .map(|&d| if rng.chance(0.3) { 1 } else { d })
        .collect();
    if rng.chance(0.5) {
        (a, b)
    } else {
        (b, a)
    }
}
