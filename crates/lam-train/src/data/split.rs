//! Seeded splits of a data set, as lists of sample indices (feed them to
//! [`super::TensorDataset::select`] or [`super::Subset::new`]).
//!
//! - [`train_test_split`], [`train_val_test_split`]: a seeded shuffle cut
//!   into parts; the held-out sizes round up, as scikit-learn's do.
//! - [`stratified_split`], [`stratified_train_val_test_split`]: every class
//!   keeps its share in every part. Per-class counts are
//!   `fraction × class size` rounded by the largest-remainder rule, so the
//!   held-out total is exactly `⌈fraction × n⌉`.
//! - [`k_fold`], [`stratified_k_fold`]: `k` folds for cross-validation;
//!   fold sizes differ by at most one, and stratified folds deal each class
//!   round-robin so every fold sees every class.
//!
//! Every result is sorted and is a pure function of its inputs and `seed`.

use lam_core::rng::Generator;
use lam_core::{Error, Result};

use crate::seed::derive_seed;

/// One cross-validation fold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// Indices to train on.
    pub train: Vec<usize>,
    /// Indices to validate on.
    pub validation: Vec<usize>,
}

/// Shuffles `0..n` with `seed` and holds out `⌈test_fraction × n⌉` for testing.
pub fn train_test_split(
    n: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let n_test = held_out("train_test_split", n, test_fraction)?;
    let perm = Generator::new(derive_seed(&[seed, 0x5b17])).permutation(n);
    Ok((sorted(&perm[n_test..]), sorted(&perm[..n_test])))
}

/// Three parts `(train, validation, test)` of `0..n`; the fractions are of `n`.
pub fn train_val_test_split(
    n: usize,
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    let n_test = held_out("train_val_test_split", n, test_fraction)?;
    let n_val = held_out("train_val_test_split", n, val_fraction)?;
    check_remaining("train_val_test_split", n, n_val + n_test)?;
    let perm = Generator::new(derive_seed(&[seed, 0x5b17, 3])).permutation(n);
    Ok((
        sorted(&perm[n_val + n_test..]),
        sorted(&perm[n_test..n_test + n_val]),
        sorted(&perm[..n_test]),
    ))
}

/// `(train, test)` of the samples labelled `labels`, each class split in proportion.
pub fn stratified_split(
    labels: &[i32],
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let n_test = held_out("stratified_split", labels.len(), test_fraction)?;
    let g = Generator::new(derive_seed(&[seed, 0x57a7]));
    let groups = class_groups(labels, &g);
    let quotas = largest_remainder(
        &groups.iter().map(|(_, m)| m.len()).collect::<Vec<_>>(),
        n_test,
    );
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for ((_, members), q) in groups.iter().zip(quotas) {
        test.extend_from_slice(&members[..q]);
        train.extend_from_slice(&members[q..]);
    }
    Ok((sorted(&train), sorted(&test)))
}

/// `(train, validation, test)`, each class split in proportion; the
/// fractions are of the whole.
pub fn stratified_train_val_test_split(
    labels: &[i32],
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    let n = labels.len();
    let n_val = held_out("stratified_train_val_test_split", n, val_fraction)?;
    let n_test = held_out("stratified_train_val_test_split", n, test_fraction)?;
    check_remaining("stratified_train_val_test_split", n, n_val + n_test)?;
    let (rest, test) = stratified_split(labels, test_fraction, seed)?;
    let rest_labels: Vec<i32> = rest.iter().map(|&i| labels[i]).collect();
    let (train, val) = stratified_split(
        &rest_labels,
        n_val as f64 / rest.len() as f64,
        derive_seed(&[seed, 2]),
    )?;
    Ok((
        train.iter().map(|&i| rest[i]).collect(),
        val.iter().map(|&i| rest[i]).collect(),
        test,
    ))
}

/// `k` folds of `0..n`: consecutive runs of a seeded shuffle (or of `0..n`
/// in order when `shuffle` is false); the first `n % k` folds are one larger.
pub fn k_fold(n: usize, k: usize, shuffle: bool, seed: u64) -> Result<Vec<Fold>> {
    check_k("k_fold", n, k)?;
    let order = if shuffle {
        Generator::new(derive_seed(&[seed, 0xf01d])).permutation(n)
    } else {
        (0..n).collect()
    };
    let mut assignment = vec![0usize; n];
    let mut start = 0;
    for f in 0..k {
        let size = n / k + usize::from(f < n % k);
        for &i in &order[start..start + size] {
            assignment[i] = f;
        }
        start += size;
    }
    Ok(folds_from(&assignment, k))
}

/// `k` folds in which every class is spread as evenly as it can be.
pub fn stratified_k_fold(labels: &[i32], k: usize, seed: u64) -> Result<Vec<Fold>> {
    check_k("stratified_k_fold", labels.len(), k)?;
    let g = Generator::new(derive_seed(&[seed, 0x5f01d]));
    let mut assignment = vec![0usize; labels.len()];
    // Dealing continues across classes, so fold sizes also differ by at most one.
    let mut next = 0;
    for (_, members) in class_groups(labels, &g) {
        for i in members {
            assignment[i] = next % k;
            next += 1;
        }
    }
    Ok(folds_from(&assignment, k))
}

/// Each class (sorted) with its members in a seeded random order.
fn class_groups(labels: &[i32], g: &Generator) -> Vec<(i32, Vec<usize>)> {
    let mut classes: Vec<i32> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    classes
        .into_iter()
        .map(|c| {
            let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
            let perm = g.permutation(members.len());
            (c, perm.into_iter().map(|p| members[p]).collect())
        })
        .collect()
}

/// Splits `total` over groups of `sizes` in proportion, by largest remainder
/// (ties to the larger group, then the earlier one).
fn largest_remainder(sizes: &[usize], total: usize) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    if n == 0 {
        return vec![0; sizes.len()];
    }
    let exact: Vec<f64> = sizes
        .iter()
        .map(|&s| s as f64 * total as f64 / n as f64)
        .collect();
    let mut quota: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra)
            .then(sizes[b].cmp(&sizes[a]))
            .then(a.cmp(&b))
    });
    let mut left = total - quota.iter().sum::<usize>();
    for &i in order.iter().cycle().take(sizes.len() * 2) {
        if left == 0 {
            break;
        }
        if quota[i] < sizes[i] {
            quota[i] += 1;
            left -= 1;
        }
    }
    quota
}

fn folds_from(assignment: &[usize], k: usize) -> Vec<Fold> {
    (0..k)
        .map(|f| Fold {
            train: (0..assignment.len())
                .filter(|&i| assignment[i] != f)
                .collect(),
            validation: (0..assignment.len())
                .filter(|&i| assignment[i] == f)
                .collect(),
        })
        .collect()
}

fn held_out(op: &'static str, n: usize, fraction: f64) -> Result<usize> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::invalid(
            op,
            format!("a fraction must be in [0, 1), found {fraction}"),
        ));
    }
    let k = (fraction * n as f64 - 1e-9).ceil().max(0.0) as usize;
    check_remaining(op, n, k)?;
    Ok(k)
}

fn check_remaining(op: &'static str, n: usize, held: usize) -> Result<()> {
    if held >= n && n > 0 || n == 0 {
        return Err(Error::invalid(
            op,
            format!("holding out {held} of {n} samples leaves none to train on"),
        ));
    }
    Ok(())
}

fn check_k(op: &'static str, n: usize, k: usize) -> Result<()> {
    if k < 2 || k > n {
        return Err(Error::invalid(
            op,
            format!("need 2 ≤ k ≤ n, found k = {k}, n = {n}"),
        ));
    }
    Ok(())
}

fn sorted(v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}
