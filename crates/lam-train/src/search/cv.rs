//! Cross-validation of candidates: [`cross_val_score`] (one
//! configuration, scikit-learn's `cross_val_score`) and [`search`] (every
//! candidate on the same folds, scikit-learn's `GridSearchCV` /
//! `RandomizedSearchCV`), with [`grid_search`] and [`random_search`] over a
//! declared [`Space`].
//!
//! lam does not know the model: the caller's `fit_and_score(params, fold)`
//! trains a fresh model on `fold.train` with `params` and returns its score
//! on `fold.validation`, higher being better (return a negated loss). Folds
//! come from [`crate::data::split::stratified_k_fold`] (or `k_fold`), so
//! every candidate sees exactly the same splits.

use std::time::Instant;

use lam_core::{Error, Result};

use super::results::{CandidateResult, SearchResults};
use super::space::{Params, Space};
use crate::data::split::Fold;

/// The score of one configuration on each fold.
pub fn cross_val_score(
    folds: &[Fold],
    mut fit_and_score: impl FnMut(&Fold) -> Result<f64>,
) -> Result<Vec<f64>> {
    if folds.is_empty() {
        return Err(Error::invalid("cross_val_score", "no folds"));
    }
    folds.iter().map(&mut fit_and_score).collect()
}

/// Every candidate scored on every fold; the results ranked by mean score.
pub fn search(
    candidates: Vec<Params>,
    folds: &[Fold],
    mut fit_and_score: impl FnMut(&Params, &Fold) -> Result<f64>,
) -> Result<SearchResults> {
    if candidates.is_empty() {
        return Err(Error::invalid("search", "no candidates"));
    }
    let mut rows = Vec::with_capacity(candidates.len());
    for params in candidates {
        let started = Instant::now();
        let split_scores = cross_val_score(folds, |fold| fit_and_score(&params, fold))
            .map_err(|e| Error::invalid("search", format!("candidate {params}: {e}")))?;
        rows.push(CandidateResult::new(
            params,
            split_scores,
            started.elapsed().as_secs_f64(),
        ));
    }
    Ok(SearchResults::ranked(rows))
}

/// [`search`] over every combination of `space`'s listed values.
pub fn grid_search(
    space: &Space,
    folds: &[Fold],
    fit_and_score: impl FnMut(&Params, &Fold) -> Result<f64>,
) -> Result<SearchResults> {
    search(space.grid()?, folds, fit_and_score)
}

/// [`search`] over `n_iter` draws from `space` (seeded).
pub fn random_search(
    space: &Space,
    n_iter: usize,
    seed: u64,
    folds: &[Fold],
    fit_and_score: impl FnMut(&Params, &Fold) -> Result<f64>,
) -> Result<SearchResults> {
    search(space.sample(n_iter, seed)?, folds, fit_and_score)
}
