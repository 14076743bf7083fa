//! What an elementwise op keeps for its gradient rule: only the values the
//! rule reads ([`Keep`]) are held until `backward` runs it, the rest freed
//! with their handles, as PyTorch saves per op ([`Saved`]).

use crate::{Result, Tensor};

/// Which values an elementwise op's gradient rule reads besides the output
/// gradient: only those are held until backward (PyTorch saves per op too),
/// the rest are freed with their handles.
#[derive(Clone, Copy)]
pub(super) struct Keep {
    pub(super) a: bool,
    pub(super) b: bool,
    pub(super) y: bool,
    // Each operand is kept only when the other requires grad (a product's
    // operand is read only by the other's gradient).
    pub(super) crossed: bool,
}

impl Keep {
    pub(super) const NOTHING: Keep = Keep::of(false, false, false);
    pub(super) const INPUT: Keep = Keep::of(true, false, false);
    pub(super) const OUTPUT: Keep = Keep::of(false, false, true);
    pub(super) const INPUT_AND_OUTPUT: Keep = Keep::of(true, false, true);
    pub(super) const OPERANDS: Keep = Keep::of(true, true, false);
    pub(super) const RHS_AND_OUTPUT: Keep = Keep::of(false, true, true);
    pub(super) const ALL: Keep = Keep::of(true, true, true);
    pub(super) const CROSSED: Keep = Keep {
        crossed: true,
        ..Keep::OPERANDS
    };

    const fn of(a: bool, b: bool, y: bool) -> Keep {
        Keep {
            a,
            b,
            y,
            crossed: false,
        }
    }
}

/// The values an elementwise op kept for its gradient rule (see [`Keep`]).
/// Reading one the op did not keep is an error naming the op, so a wrong
/// declaration fails every gradient test rather than give numbers.
pub(super) struct Saved {
    pub(super) op: &'static str,
    pub(super) a: Option<Tensor>,
    pub(super) b: Option<Tensor>,
    pub(super) y: Option<Tensor>,
}

impl Saved {
    /// The (first) operand.
    pub(super) fn a(&self) -> Result<&Tensor> {
        self.get(&self.a, "its input")
    }

    /// The second operand of a binary op.
    pub(super) fn b(&self) -> Result<&Tensor> {
        self.get(&self.b, "its second operand")
    }

    /// The op's output.
    pub(super) fn y(&self) -> Result<&Tensor> {
        self.get(&self.y, "its output")
    }

    fn get<'a>(&self, value: &'a Option<Tensor>, what: &str) -> Result<&'a Tensor> {
        value.as_ref().ok_or_else(|| {
            crate::Error::Autograd(format!(
                "the gradient rule of {} reads {what}, which the op did not keep",
                self.op
            ))
        })
    }
}
