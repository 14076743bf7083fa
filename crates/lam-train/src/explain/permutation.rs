//! Permutation feature importance (Breiman 2001), as scikit-learn's
//! `sklearn.inspection.permutation_importance`: a feature matters as much
//! as the score drops when its column is shuffled, breaking its link to the
//! target while keeping its distribution. Each feature is shuffled
//! `n_repeats` times; the importances are `baseline − permuted score` for
//! each repeat, with their mean and (population) standard deviation.
//!
//! Any score works, higher being better (pass a negated loss): the model is
//! reached only through the score function, which gets the feature matrix
//! with one column shuffled. As in scikit-learn, every feature is shuffled
//! by the same sequence of row orders.

use lam_core::rng::Generator;
use lam_core::{Error, Result, Tensor};

use super::gradient::check_inputs;
use crate::seed::derive_seed;

/// What [`permutation_importance`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Importances {
    /// The score of the unshuffled features.
    pub baseline: f64,
    /// `baseline − score` for each feature (outer) and repeat (inner).
    pub importances: Vec<Vec<f64>>,
    /// The mean over repeats, per feature (`importances_mean`).
    pub mean: Vec<f64>,
    /// The population standard deviation over repeats (`importances_std`).
    pub std: Vec<f64>,
}

/// The importance of each column of `x` (`[N, F]`; higher ranks are
/// flattened into `F` features) to `score`, shuffling each column
/// `n_repeats` times with row orders drawn from `seed`.
pub fn permutation_importance(
    x: &Tensor,
    score: impl FnMut(&Tensor) -> Result<f64>,
    n_repeats: usize,
    seed: u64,
) -> Result<Importances> {
    check_inputs("permutation_importance", x)?;
    let n = x.dims()[0];
    let g = Generator::new(derive_seed(&[seed, 0x9e47]));
    let orders: Vec<Vec<usize>> = (0..n_repeats).map(|_| g.permutation(n)).collect();
    permutation_importance_with(x, score, &orders)
}

/// As [`permutation_importance`], with the row orders given: in repeat `r`
/// the shuffled column's row `i` holds the original row `orders[r][i]`.
pub fn permutation_importance_with(
    x: &Tensor,
    mut score: impl FnMut(&Tensor) -> Result<f64>,
    orders: &[Vec<usize>],
) -> Result<Importances> {
    const OP: &str = "permutation_importance";
    check_inputs(OP, x)?;
    if orders.is_empty() {
        return Err(Error::invalid(OP, "n_repeats must be ≥ 1"));
    }
    let n = x.dims()[0];
    for order in orders {
        let mut seen = vec![false; n];
        for &i in order {
            if i >= n || std::mem::replace(&mut seen[i], true) {
                return Err(Error::invalid(
                    OP,
                    format!("each row order must be a permutation of 0..{n}"),
                ));
            }
        }
        if order.len() != n {
            return Err(Error::invalid(
                OP,
                format!("each row order must be a permutation of 0..{n}"),
            ));
        }
    }
    let features = x.numel() / n;
    let shape = x.shape();
    let device = x.device();
    let host = x.to_vec()?;
    let baseline = score(x)?;
    let mut importances = Vec::with_capacity(features);
    for f in 0..features {
        let mut per_repeat = Vec::with_capacity(orders.len());
        for order in orders {
            let mut shuffled = host.clone();
            for (row, &from) in order.iter().enumerate() {
                shuffled[row * features + f] = host[from * features + f];
            }
            let s = score(&Tensor::from_slice(&shuffled, &shape, &device)?)?;
            per_repeat.push(baseline - s);
        }
        importances.push(per_repeat);
    }
    let mean: Vec<f64> = importances
        .iter()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    let std = importances
        .iter()
        .zip(&mean)
        .map(|(v, m)| (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt())
        .collect();
    Ok(Importances {
        baseline,
        importances,
        mean,
        std,
    })
}
