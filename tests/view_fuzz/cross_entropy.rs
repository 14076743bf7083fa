//! Cross-entropy on random views of logits and targets (Backend
//! `fused_cross_entropy`, or the composite on the unfused devices), and the
//! configurable loss whose options leave the fused path.

use lam::loss::{CrossEntropyLoss, Reduction};

use super::harness::{index, normal, Case, Rng};

pub const COVERS: &[&str] = &["cross_entropy"];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let (rows, classes) = (rng.size(), 1 + rng.size());
    let smoothing = rng.pick(&[0.0, 0.1]);
    let reduction = rng.pick(&[Reduction::Mean, Reduction::Sum, Reduction::None]);
    vec![
        Case::new(
            "cross_entropy",
            vec![normal(&[rows, classes]), index(&[rows], classes)],
            |t| Ok(vec![t[0].cross_entropy(&t[1])?]),
        )
        .tol(1e-5),
        Case::new(
            "CrossEntropyLoss",
            vec![normal(&[rows, classes]), index(&[rows], classes)],
            move |t| {
                let loss = CrossEntropyLoss::new()
                    .label_smoothing(smoothing)
                    .reduction(reduction);
                Ok(vec![loss.forward(&t[0], &t[1])?])
            },
        )
        .tol(1e-5),
    ]
}
