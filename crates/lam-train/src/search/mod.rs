//! Hyper-parameter search with cross-validation, as scikit-learn's
//! `GridSearchCV` and `RandomizedSearchCV`.
//!
//! ```ignore
//! let space = Space::new()
//!     .log_uniform("lr", 1e-4, 1e-1)
//!     .values("hidden", [32usize, 64, 128])
//!     .uniform("dropout", 0.0, 0.5);
//! let folds = stratified_k_fold(&labels, 3, seed)?;
//! let results = random_search(&space, 20, seed, &folds, |p, fold| {
//!     train_and_score(p.f64("lr")?, p.usize("hidden")?, &fold.train, &fold.validation)
//! })?;
//! println!("{results}");                           // the cv_results_ table, best first
//! let model = results.refit(|p| train_on_everything(p))?;
//! ```
//!
//! - [`Space`]: listed values, uniform, log-uniform and integer ranges;
//!   [`Params`]: one candidate, read by name with its type checked.
//! - [`search`], [`grid_search`], [`random_search`], [`cross_val_score`].
//! - [`SearchResults`]: per-fold scores, mean, standard deviation, rank and
//!   time per candidate; the best; its refit; a CSV of the table.

mod cv;
mod results;
mod space;

pub use cv::{cross_val_score, grid_search, random_search, search};
pub use results::{CandidateResult, SearchResults};
pub use space::{Domain, Params, Space, Value};
