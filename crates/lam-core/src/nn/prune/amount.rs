//! How much to prune, and which entries: PyTorch's `amount` rules and the
//! importance orderings of `torch.nn.utils.prune`.

use crate::{Error, Result};

/// How much of a tensor (or of a set of tensors) to prune.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// A fraction in `[0, 1]` of the units, rounded half to even (Python's
    /// `round`, as PyTorch does).
    Fraction(f64),
    /// An exact number of units.
    Count(usize),
}

impl From<f64> for Amount {
    fn from(f: f64) -> Amount {
        Amount::Fraction(f)
    }
}

impl From<usize> for Amount {
    fn from(n: usize) -> Amount {
        Amount::Count(n)
    }
}

impl Amount {
    /// The number of units to prune out of `total`.
    pub(crate) fn of(self, op: &'static str, total: usize) -> Result<usize> {
        match self {
            Amount::Fraction(f) if (0.0..=1.0).contains(&f) => {
                Ok(round_half_even(f * total as f64))
            }
            Amount::Fraction(f) => Err(Error::invalid(
                op,
                format!("amount must be a fraction in [0, 1], found {f}"),
            )),
            Amount::Count(n) if n <= total => Ok(n),
            Amount::Count(n) => Err(Error::invalid(
                op,
                format!("amount {n} is more than the {total} units there are"),
            )),
        }
    }
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(x: f64) -> usize {
    let floor = x.floor();
    let frac = x - floor;
    let n = floor as usize;
    if frac > 0.5 || (frac == 0.5 && n % 2 == 1) {
        n + 1
    } else {
        n
    }
}

/// The indices of the `k` smallest `scores` (ties: the lower index first,
/// a stable order; PyTorch's `topk` leaves ties unspecified).
pub(crate) fn smallest(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_round_half_to_even_as_python() {
        assert_eq!(Amount::Fraction(0.5).of("t", 5).unwrap(), 2);
        assert_eq!(Amount::Fraction(0.5).of("t", 7).unwrap(), 4);
        assert_eq!(Amount::Fraction(0.3).of("t", 30).unwrap(), 9);
        assert_eq!(Amount::Count(3).of("t", 5).unwrap(), 3);
        assert!(Amount::Count(6).of("t", 5).is_err());
        assert!(Amount::Fraction(1.5).of("t", 5).is_err());
    }
}
