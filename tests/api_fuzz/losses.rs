//! The losses of the fuzz (`lam::loss`), on random inputs and targets
//! (class indices or probabilities).

use lam::loss::{CrossEntropyLoss, NllLoss};

use super::Call;

/// Every loss call.
pub(super) const CALLS: &[(&str, Call)] = &[
    // Losses on random inputs and targets.
    ("CrossEntropyLoss", |r, d| {
        let loss = CrossEntropyLoss::new()
            .ignore_index(r.below(3) as i32 - 1)
            .label_smoothing(r.float());
        let target = if r.below(2) == 0 {
            r.index(d)?
        } else {
            r.tensor(d)?
        };
        loss.forward(&r.tensor(d)?, &target)?.to_vec().map(drop)
    }),
    ("NllLoss", |r, d| {
        NllLoss::new()
            .forward(&r.tensor(d)?, &r.index(d)?)?
            .to_vec()
            .map(drop)
    }),
    ("mse_loss", |r, d| {
        lam::loss::mse_loss(&r.tensor(d)?, &r.tensor(d)?).map(drop)
    }),
    ("huber_loss", |r, d| {
        lam::loss::huber_loss(&r.tensor(d)?, &r.tensor(d)?, r.float()).map(drop)
    }),
    ("binary_cross_entropy", |r, d| {
        lam::loss::binary_cross_entropy(&r.tensor(d)?, &r.tensor(d)?).map(drop)
    }),
];
