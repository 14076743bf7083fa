//! ROC curves and the area under them, as scikit-learn computes them.
//!
//! [`roc_curve`] follows `sklearn.metrics.roc_curve` with its default
//! `drop_intermediate=True`: scores are sorted in decreasing order, one
//! point is kept per distinct score, points on a straight segment are
//! dropped, and the curve starts at `(0, 0)` with threshold `+∞`.
//! [`auc`] is the trapezoidal rule; [`roc_auc`] is the binary
//! `roc_auc_score`, and [`roc_auc_ovr`] the multi-class one-vs-rest macro
//! average (`multi_class="ovr", average="macro"`).

use lam_core::{Error, Result};

use super::classification::check_pair;

/// Points of a ROC curve, by decreasing threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    /// False positive rates, from 0 to 1.
    pub fpr: Vec<f64>,
    /// True positive rates, from 0 to 1.
    pub tpr: Vec<f64>,
    /// The score at or above which a sample counts as positive (first: `+∞`).
    pub thresholds: Vec<f64>,
}

impl RocCurve {
    /// The area under this curve.
    pub fn auc(&self) -> Result<f64> {
        auc(&self.fpr, &self.tpr)
    }
}

/// The ROC curve of `scores` (higher means more likely positive) against
/// `y_true`. Both classes must be present.
pub fn roc_curve(y_true: &[bool], scores: &[f32]) -> Result<RocCurve> {
    check_pair("roc_curve", y_true.len(), scores.len())?;
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::invalid(
            "roc_curve",
            format!("score {i} is not finite ({})", scores[i]),
        ));
    }
    let positives = y_true.iter().filter(|&&t| t).count();
    if positives == 0 || positives == y_true.len() {
        return Err(Error::invalid(
            "roc_curve",
            "only one class is present in y_true; the ROC curve is undefined",
        ));
    }
    // Decreasing score; a stable sort keeps ties in input order, as NumPy's mergesort.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Cumulative counts at the last position of each distinct score.
    let (mut tps, mut fps, mut thresholds) = (Vec::new(), Vec::new(), Vec::new());
    let mut tp = 0u64;
    for (k, &i) in order.iter().enumerate() {
        tp += u64::from(y_true[i]);
        let last_of_value = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last_of_value {
            tps.push(tp as f64);
            fps.push((k + 1) as f64 - tp as f64);
            thresholds.push(scores[i] as f64);
        }
    }
    // drop_intermediate: keep the ends and every point where the slope changes.
    if tps.len() > 2 {
        let keep: Vec<usize> = (0..tps.len())
            .filter(|&k| {
                k == 0
                    || k + 1 == tps.len()
                    || fps[k + 1] - 2.0 * fps[k] + fps[k - 1] != 0.0
                    || tps[k + 1] - 2.0 * tps[k] + tps[k - 1] != 0.0
            })
            .collect();
        tps = keep.iter().map(|&k| tps[k]).collect();
        fps = keep.iter().map(|&k| fps[k]).collect();
        thresholds = keep.iter().map(|&k| thresholds[k]).collect();
    }
    let (p, n) = (*tps.last().unwrap_or(&1.0), *fps.last().unwrap_or(&1.0));
    let mut curve = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    curve.fpr.extend(fps.iter().map(|f| f / n));
    curve.tpr.extend(tps.iter().map(|t| t / p));
    curve.thresholds.extend(thresholds);
    Ok(curve)
}

/// The area under the curve through `(x[i], y[i])` by the trapezoidal rule;
/// `x` must be monotonic (increasing or decreasing).
pub fn auc(x: &[f64], y: &[f64]) -> Result<f64> {
    check_pair("auc", x.len(), y.len())?;
    if x.len() < 2 {
        return Err(Error::invalid(
            "auc",
            format!("need at least 2 points, found {}", x.len()),
        ));
    }
    let increasing = x.windows(2).all(|w| w[1] >= w[0]);
    let decreasing = x.windows(2).all(|w| w[1] <= w[0]);
    if !increasing && !decreasing {
        return Err(Error::invalid(
            "auc",
            "x is neither increasing nor decreasing",
        ));
    }
    let area: f64 = x
        .windows(2)
        .zip(y.windows(2))
        .map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0)
        .sum();
    Ok(if decreasing && !increasing {
        -area
    } else {
        area
    })
}

/// The area under the ROC curve of a binary problem.
pub fn roc_auc(y_true: &[bool], scores: &[f32]) -> Result<f64> {
    roc_curve(y_true, scores)?.auc()
}

/// One ROC curve per class `c` (class `c` against the rest), from
/// probabilities `probs: [N, n_classes]` row-major.
pub fn roc_curves_ovr(y_true: &[i32], probs: &[f32], n_classes: usize) -> Result<Vec<RocCurve>> {
    if n_classes < 2 || probs.len() != y_true.len() * n_classes {
        return Err(Error::invalid(
            "roc_curves_ovr",
            format!(
                "need {} × n_classes (≥ 2) probabilities, found {} for n_classes = {n_classes}",
                y_true.len(),
                probs.len()
            ),
        ));
    }
    if let Some(&c) = y_true.iter().find(|&&c| c < 0 || c as usize >= n_classes) {
        return Err(Error::invalid(
            "roc_curves_ovr",
            format!("label {c} is outside 0..{n_classes}"),
        ));
    }
    (0..n_classes)
        .map(|c| {
            let truth: Vec<bool> = y_true.iter().map(|&t| t as usize == c).collect();
            let col: Vec<f32> = probs.chunks(n_classes).map(|row| row[c]).collect();
            roc_curve(&truth, &col)
                .map_err(|e| Error::invalid("roc_curves_ovr", format!("class {c}: {e}")))
        })
        .collect()
}

/// The one-vs-rest macro-averaged ROC AUC of `probs: [N, n_classes]`.
pub fn roc_auc_ovr(y_true: &[i32], probs: &[f32], n_classes: usize) -> Result<f64> {
    let curves = roc_curves_ovr(y_true, probs, n_classes)?;
    let total = curves.iter().map(|c| c.auc()).sum::<Result<f64>>()?;
    Ok(total / n_classes as f64)
}
