//! Metrics against scikit-learn's values (fixtures/gen_metrics.py), and
//! their bad-input errors.

mod common;

use common::{assert_all_close, assert_close, f32s, f64s, fixture, i32s};
use lam::prelude::*;
use lam_train::metrics::*;

const TOL: f64 = 1e-12;

/// The cases of fixture `rel`: at least `min`, so a fixture that lost its
/// cases fails instead of passing with nothing checked.
fn cases(rel: &str, min: usize) -> Vec<serde_json::Value> {
    let fx = fixture(rel);
    let cases = fx["cases"].as_array().expect("cases").clone();
    assert!(
        cases.len() >= min,
        "{rel} has {} cases, expected at least {min}",
        cases.len()
    );
    cases
}

#[test]
fn classification_matches_sklearn() -> Result<()> {
    for case in &cases("metrics/classification.json", 3) {
        let name = case["name"].as_str().expect("name");
        let (t, p) = (i32s(&case["y_true"]), i32s(&case["y_pred"]));
        assert_close(
            &format!("{name} accuracy"),
            accuracy(&t, &p)?,
            case["accuracy"].as_f64().expect("acc"),
            TOL,
        );
        let cm = ConfusionMatrix::new(&t, &p)?;
        let want_cm: Vec<Vec<u64>> = case["confusion_matrix"]
            .as_array()
            .expect("cm")
            .iter()
            .map(|r| i32s(r).into_iter().map(|v| v as u64).collect())
            .collect();
        assert_eq!(cm.counts(), &want_cm[..], "{name} confusion matrix");
        assert_eq!(
            cm.labels(),
            &i32s(&case["per_class"]["labels"])[..],
            "{name} labels"
        );

        let report = classification_report(&t, &p)?;
        let pc = &case["per_class"];
        let got = |f: fn(&ClassScores) -> f64| report.per_class.iter().map(f).collect::<Vec<_>>();
        assert_all_close(
            &format!("{name} precision"),
            &got(|c| c.precision),
            &f64s(&pc["precision"]),
            TOL,
        );
        assert_all_close(
            &format!("{name} recall"),
            &got(|c| c.recall),
            &f64s(&pc["recall"]),
            TOL,
        );
        assert_all_close(&format!("{name} f1"), &got(|c| c.f1), &f64s(&pc["f1"]), TOL);
        let support: Vec<i32> = report.per_class.iter().map(|c| c.support as i32).collect();
        assert_eq!(support, i32s(&pc["support"]));
        for (avg, key) in [
            (Average::Macro, "macro"),
            (Average::Micro, "micro"),
            (Average::Weighted, "weighted"),
        ] {
            let w = &case[key];
            assert_close(
                &format!("{name} {key} p"),
                precision(&t, &p, avg)?,
                w["precision"].as_f64().expect("p"),
                TOL,
            );
            assert_close(
                &format!("{name} {key} r"),
                recall(&t, &p, avg)?,
                w["recall"].as_f64().expect("r"),
                TOL,
            );
            assert_close(
                &format!("{name} {key} f1"),
                f1_score(&t, &p, avg)?,
                w["f1"].as_f64().expect("f"),
                TOL,
            );
        }
    }
    Ok(())
}

#[test]
fn binary_roc_matches_sklearn() -> Result<()> {
    for case in &cases("metrics/binary_roc.json", 3) {
        let name = case["name"].as_str().expect("name");
        let truth: Vec<bool> = i32s(&case["y_true"]).into_iter().map(|v| v == 1).collect();
        let scores = f32s(&case["scores"]);
        let roc = roc_curve(&truth, &scores)?;
        assert_all_close(&format!("{name} fpr"), &roc.fpr, &f64s(&case["fpr"]), TOL);
        assert_all_close(&format!("{name} tpr"), &roc.tpr, &f64s(&case["tpr"]), TOL);
        assert_all_close(
            &format!("{name} thresholds"),
            &roc.thresholds,
            &f64s(&case["thresholds"]),
            TOL,
        );
        assert_close(
            &format!("{name} auc"),
            roc_auc(&truth, &scores)?,
            case["auc"].as_f64().expect("auc"),
            TOL,
        );
        let labels: Vec<i32> = truth.iter().map(|&t| t as i32).collect();
        let pred: Vec<i32> = scores.iter().map(|&s| (s > 0.5) as i32).collect();
        let f1 = f1_score(&labels, &pred, Average::Binary(1))?;
        assert_close(
            &format!("{name} binary f1"),
            f1,
            case["f1_binary"].as_f64().expect("f1"),
            TOL,
        );
    }
    Ok(())
}

#[test]
fn one_vs_rest_auc_matches_sklearn() -> Result<()> {
    let fx = fixture("metrics/multiclass_roc.json");
    let case = &fx["case"];
    let (y, probs) = (i32s(&case["y_true"]), f32s(&case["probs"]));
    let c = case["n_classes"].as_u64().expect("c") as usize;
    let per: Vec<f64> = roc_curves_ovr(&y, &probs, c)?
        .iter()
        .map(|r| r.auc())
        .collect::<Result<_>>()?;
    assert_all_close("per-class auc", &per, &f64s(&case["auc_per_class"]), TOL);
    assert_close(
        "macro auc",
        roc_auc_ovr(&y, &probs, c)?,
        case["auc_ovr_macro"].as_f64().expect("auc"),
        TOL,
    );
    Ok(())
}

#[test]
fn regression_matches_sklearn() -> Result<()> {
    for case in &cases("metrics/regression.json", 3) {
        let name = case["name"].as_str().expect("name");
        let (t, p) = (f32s(&case["y_true"]), f32s(&case["y_pred"]));
        let cols = case["columns"].as_u64().expect("cols") as usize;
        assert_close(
            &format!("{name} mse"),
            mean_squared_error(&t, &p)?,
            case["mse"].as_f64().expect("mse"),
            1e-12,
        );
        assert_close(
            &format!("{name} mae"),
            mean_absolute_error(&t, &p)?,
            case["mae"].as_f64().expect("mae"),
            1e-12,
        );
        let r2 = if cols == 1 {
            r2_score(&t, &p)?
        } else {
            r2_score_columns(&t, &p, cols)?
        };
        assert_close(
            &format!("{name} r2"),
            r2,
            case["r2"].as_f64().expect("r2"),
            1e-12,
        );
    }
    Ok(())
}

#[test]
fn auc_of_hand_made_curves() -> Result<()> {
    assert_eq!(auc(&[0.0, 1.0], &[0.0, 1.0])?, 0.5);
    assert_eq!(auc(&[1.0, 0.5, 0.0], &[1.0, 1.0, 1.0])?, 1.0);
    assert!(auc(&[0.0, 1.0, 0.5], &[0.0, 1.0, 1.0]).is_err());
    Ok(())
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(accuracy(&[], &[]), Err(Error::Empty { .. })));
    assert!(accuracy(&[1, 2], &[1]).is_err());
    assert!(
        roc_curve(&[true, true], &[0.1, 0.9]).is_err(),
        "one class only"
    );
    assert!(roc_curve(&[true, false], &[f32::NAN, 0.9]).is_err());
    assert!(
        roc_auc_ovr(&[0, 5], &[0.5; 4], 2).is_err(),
        "label out of range"
    );
    assert!(
        roc_auc_ovr(&[0, 1], &[0.5; 3], 2).is_err(),
        "wrong table size"
    );
    assert!(f1_score(&[0, 1], &[0, 1], Average::Binary(4)).is_err());
    assert!(r2_score_columns(&[1.0; 5], &[1.0; 5], 2).is_err());
}

#[test]
fn logits_helpers_and_display() -> Result<()> {
    let dev = Device::cpu();
    let logits = Tensor::from_vec(vec![0.1, 2.0, -1.0, 3.0, 0.0, 0.0], &[2, 3], &dev)?;
    assert_eq!(predicted_classes(&logits)?, vec![1, 0]);
    let p = probabilities(&logits)?;
    assert!((p[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!(predicted_classes(&Tensor::zeros(&[3, 1, 2], &dev)?).is_err());
    // One logit per sample is a binary classifier: class 1 when it is > 0.
    let z = Tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3, 1], &dev)?;
    assert_eq!(predicted_classes(&z)?, vec![0, 0, 1]);
    assert_eq!(predicted_classes(&z.reshape(&[3])?)?, vec![0, 0, 1]);
    let p = probabilities(&z)?;
    assert_eq!(p.len(), 6);
    assert!((p[2] - 0.5).abs() < 1e-7 && (p[3] - 0.5).abs() < 1e-7);
    assert!((p[5] - 1.0 / (1.0 + (-2f32).exp())).abs() < 1e-6 && (p[4] + p[5] - 1.0).abs() < 1e-6);
    let cm = ConfusionMatrix::new(&[0, 1, 1], &[0, 1, 0])?;
    let text = cm.to_string();
    assert!(text.contains("t\\p") && text.lines().count() == 3, "{text}");
    assert_eq!(cm.normalized()[1], vec![0.5, 0.5]);
    let report = classification_report(&[0, 1, 1], &[0, 1, 0])?.to_string();
    assert!(
        report.contains("macro avg") && report.contains("accuracy"),
        "{report}"
    );
    Ok(())
}
