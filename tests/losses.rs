//! Losses: values and gradients against PyTorch (fixtures/losses/losses.json,
//! made by fixtures/make_loss_fixtures.py), the fused cross-entropy against
//! the general path, gradient checks of every loss, and bad input.

mod common;

use common::fixture;

use lam::loss::{
    self, BceLoss, BceWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, Loss, MseLoss, NllLoss,
    Reduction, SmoothL1Loss,
};
use lam::testing::{gradcheck, GradCheck};
use lam::{DType, Device, Error, Result, Tensor};
use serde_json::Value;

/// Loss values and gradients against float64 references.
const TOL: f32 = 2e-5;

fn tensor(v: &Value, dev: &Device) -> Result<Tensor> {
    fixture::tensor(v, DType::F32, dev)
}

/// The loss a fixture case describes, configured from its options.
fn configured(case: &Value, dev: &Device) -> Result<Box<dyn Loss>> {
    let opts = &case["options"];
    let reduction = match opts["reduction"].as_str() {
        Some("sum") => Reduction::Sum,
        Some("none") => Reduction::None,
        _ => Reduction::Mean,
    };
    let f = |key: &str| opts[key].as_f64().map(|v| v as f32);
    let weight = case.get("weight").map(|w| tensor(w, dev)).transpose()?;
    let loss: Box<dyn Loss> = match case["loss"].as_str().expect("loss") {
        "cross_entropy" => {
            let mut l = CrossEntropyLoss::new().reduction(reduction);
            if let Some(e) = f("label_smoothing") {
                l = l.label_smoothing(e);
            }
            if let Some(i) = opts["ignore_index"].as_i64() {
                l = l.ignore_index(i as i32);
            }
            if let Some(w) = weight {
                l = l.weight(w);
            }
            Box::new(l)
        }
        "nll_loss" => {
            let mut l = NllLoss::new().reduction(reduction);
            if let Some(i) = opts["ignore_index"].as_i64() {
                l = l.ignore_index(i as i32);
            }
            if let Some(w) = weight {
                l = l.weight(w);
            }
            Box::new(l)
        }
        "mse_loss" => Box::new(MseLoss::new().reduction(reduction)),
        "l1_loss" => Box::new(L1Loss::new().reduction(reduction)),
        "smooth_l1_loss" => Box::new(
            SmoothL1Loss::new()
                .beta(f("beta").unwrap_or(1.0))
                .reduction(reduction),
        ),
        "huber_loss" => Box::new(
            HuberLoss::new()
                .delta(f("delta").unwrap_or(1.0))
                .reduction(reduction),
        ),
        "binary_cross_entropy" => {
            let mut l = BceLoss::new().reduction(reduction);
            if let Some(w) = weight {
                l = l.weight(w);
            }
            Box::new(l)
        }
        "binary_cross_entropy_with_logits" => {
            let mut l = BceWithLogitsLoss::new().reduction(reduction);
            if let Some(w) = weight {
                l = l.weight(w);
            }
            if let Some(pw) = case.get("pos_weight") {
                l = l.pos_weight(tensor(pw, dev)?);
            }
            Box::new(l)
        }
        other => panic!("unknown loss {other}"),
    };
    Ok(loss)
}

fn run_case(case: &Value, dev: &Device) -> Result<()> {
    let name = case["name"].as_str().expect("name");
    let kind = case["loss"].as_str().expect("loss");
    let input = tensor(&case["input"], dev)?.requires_grad_()?;
    let class_indices = matches!(kind, "cross_entropy" | "nll_loss")
        && case["target"]["shape"] != case["input"]["shape"];
    let target = if class_indices {
        fixture::tensor(&case["target"], DType::I32, dev)?
    } else {
        let t = tensor(&case["target"], dev)?;
        if case.get("target_grad").is_some() {
            t.requires_grad_()?
        } else {
            t
        }
    };
    let out = configured(case, dev)?.forward(&input, &target)?;
    fixture::expect_close_within(&format!("{name}: output"), &out, &case["output"], TOL, TOL)?;
    out.mul(&tensor(&case["grad_output"], dev)?)?
        .sum_all()?
        .backward()?;
    let grad = input
        .grad()
        .ok_or_else(|| Error::invalid("fixture", format!("{name}: no input grad")))?;
    let what = format!("{name}: input grad");
    fixture::expect_close_within(&what, &grad, &case["input_grad"], TOL, TOL)?;
    if let Some(tg) = case.get("target_grad") {
        let grad = target
            .grad()
            .ok_or_else(|| Error::invalid("fixture", format!("{name}: no target grad")))?;
        fixture::expect_close_within(&format!("{name}: target grad"), &grad, tg, TOL, TOL)?;
    }
    Ok(())
}

conformance!(pytorch_values_and_gradients, |dev| {
    let cases = fixture::file_cases("losses/losses.json", 50);
    fixture::run_cases(&cases, dev, run_case)
});

conformance!(functions_are_the_default_structs, |dev| {
    let x = Tensor::from_vec(vec![0.3, -1.2, 2.0, 0.7, 0.1, -0.4], &[2, 3], dev)?;
    let y = Tensor::from_vec(vec![0.5, -1.0, 1.0, 0.0, 0.3, 0.2], &[2, 3], dev)?;
    let p = Tensor::from_vec(vec![0.2, 0.9, 0.5, 0.6, 0.1, 0.3], &[2, 3], dev)?;
    let t = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0], &[2, 3], dev)?;
    let c = Tensor::from_vec_i32(vec![2, 0], &[2], dev)?;
    let pairs = [
        (
            loss::cross_entropy(&x, &c)?,
            CrossEntropyLoss::new().forward(&x, &c)?,
        ),
        (loss::nll_loss(&x, &c)?, NllLoss::new().forward(&x, &c)?),
        (loss::mse_loss(&x, &y)?, MseLoss::new().forward(&x, &y)?),
        (loss::l1_loss(&x, &y)?, L1Loss::new().forward(&x, &y)?),
        (
            loss::smooth_l1_loss(&x, &y, 0.5)?,
            SmoothL1Loss::new().beta(0.5).forward(&x, &y)?,
        ),
        (
            loss::huber_loss(&x, &y, 0.5)?,
            HuberLoss::new().delta(0.5).forward(&x, &y)?,
        ),
        (
            loss::binary_cross_entropy(&p, &t)?,
            BceLoss::new().forward(&p, &t)?,
        ),
        (
            loss::binary_cross_entropy_with_logits(&x, &t)?,
            BceWithLogitsLoss::new().forward(&x, &t)?,
        ),
    ];
    for (a, b) in pairs {
        assert_eq!(a.dims(), &[] as &[usize]);
        assert_eq!(a.item()?, b.item()?);
    }
    Ok(())
});

conformance!(fused_cross_entropy_matches_the_general_path, |dev| {
    // Plain mean cross-entropy takes the backend's fused kernel; unit class
    // weights force the composed path, which must agree.
    let logits = Tensor::randn(&[17, 5], dev)?.mul_scalar(3.0)?;
    let targets = Tensor::randint(0, 5, &[17], dev)?;
    let ones = Tensor::ones(&[5], dev)?;
    let a = logits.detach().requires_grad_()?;
    let b = logits.detach().requires_grad_()?;
    let fused = loss::cross_entropy(&a, &targets)?;
    let general = CrossEntropyLoss::new().weight(ones).forward(&b, &targets)?;
    common::close(&[fused.item()?], &[general.item()?], 1e-5);
    fused.backward()?;
    general.backward()?;
    let (ga, gb) = (a.grad().expect("grad"), b.grad().expect("grad"));
    common::close(&ga.to_vec()?, &gb.to_vec()?, 1e-6);
    Ok(())
});

conformance!(ignored_targets_contribute_nothing, |dev| {
    let x = Tensor::from_vec(
        vec![0.3, -1.2, 2.0, 0.7, 0.1, -0.4, 1.0, 1.5, -2.0],
        &[3, 3],
        dev,
    )?;
    let with_ignored = Tensor::from_vec_i32(vec![2, -100, 1], &[3], dev)?;
    let kept_rows = x.index_select(0, &Tensor::from_vec_i32(vec![0, 2], &[2], dev)?)?;
    let kept = Tensor::from_vec_i32(vec![2, 1], &[2], dev)?;
    common::close(
        &[loss::cross_entropy(&x, &with_ignored)?.item()?],
        &[loss::cross_entropy(&kept_rows, &kept)?.item()?],
        1e-6,
    );
    // Every target ignored: PyTorch's mean is 0/0 = NaN, the sum 0.
    let all = Tensor::from_vec_i32(vec![-100; 3], &[3], dev)?;
    assert!(loss::cross_entropy(&x, &all)?.item()?.is_nan());
    assert_eq!(
        CrossEntropyLoss::new()
            .reduction(Reduction::Sum)
            .forward(&x, &all)?
            .item()?,
        0.0
    );
    let none = CrossEntropyLoss::new()
        .reduction(Reduction::None)
        .forward(&x, &with_ignored)?;
    assert_eq!(none.to_vec()?[1], 0.0);
    Ok(())
});

conformance!(binary_losses_stay_finite_at_the_extremes, |dev| {
    // Logits of ±100 and probabilities of exactly 0 and 1: finite losses and gradients.
    let logits =
        Tensor::from_vec(vec![100.0, -100.0, 100.0, -100.0], &[4], dev)?.requires_grad_()?;
    let t = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[4], dev)?;
    let l = BceWithLogitsLoss::new()
        .reduction(Reduction::None)
        .forward(&logits, &t)?;
    common::close(&l.to_vec()?, &[0.0, 0.0, 100.0, 100.0], 1e-5);
    l.sum_all()?.backward()?;
    common::close(
        &logits.grad().expect("grad").to_vec()?,
        &[0.0, 0.0, 1.0, -1.0],
        1e-6,
    );

    let p = Tensor::from_vec(vec![0.0, 1.0, 0.0, 1.0], &[4], dev)?.requires_grad_()?;
    let l = BceLoss::new().reduction(Reduction::None).forward(&p, &t)?;
    common::close(&l.to_vec()?, &[100.0, 100.0, 0.0, 0.0], 1e-5);
    l.sum_all()?.backward()?;
    let g = p.grad().expect("grad").to_vec()?;
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    assert_eq!(g[2], 0.0);
    assert!(g[0] < -1e11 && g[1] > 1e11, "{g:?}");
    Ok(())
});

// Gradient checks: analytic gradients of every loss and option against
// central finite differences.

fn cpu() -> Device {
    use lam::DeviceExt;
    Device::cpu()
}

fn values(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &cpu()).expect("tensor")
}

#[test]
fn gradcheck_class_losses() -> Result<()> {
    let dev = cpu();
    let x = Tensor::randn(&[4, 3], &dev)?;
    let t = Tensor::from_vec_i32(vec![2, -100, 0, 1], &[4], &dev)?;
    let w = values(&[0.5, 2.0, 1.5], &[3]);
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let ce = CrossEntropyLoss::new()
            .weight(w.clone())
            .label_smoothing(0.2)
            .reduction(reduction);
        gradcheck(
            |v| ce.forward(&v[0], &t),
            std::slice::from_ref(&x),
            GradCheck::default(),
        )?;
        let nll = NllLoss::new().weight(w.clone()).reduction(reduction);
        gradcheck(
            |v| nll.forward(&v[0], &t),
            std::slice::from_ref(&x),
            GradCheck::default(),
        )?;
    }
    // Probability targets: differentiable in both arguments.
    let p = Tensor::rand(&[4, 3], &dev)?;
    let ce = CrossEntropyLoss::new().weight(w).label_smoothing(0.1);
    gradcheck(|v| ce.forward(&v[0], &v[1]), &[x, p], GradCheck::default())?;
    // [N, C, d] input.
    let xk = Tensor::randn(&[2, 3, 4], &dev)?;
    let tk = Tensor::from_vec_i32(vec![0, 2, 1, 1, 2, -100, 0, 1], &[2, 4], &dev)?;
    let ce = CrossEntropyLoss::new().label_smoothing(0.1);
    gradcheck(|v| ce.forward(&v[0], &tk), &[xk], GradCheck::default())
}

#[test]
fn gradcheck_regression_losses() -> Result<()> {
    // |x - y| stays away from the kinks (0, 0.5, 0.7) by more than the step.
    let x = values(&[0.3, -1.2, 2.0, 0.7, 0.1, -0.4], &[2, 3]);
    let y = values(&[0.5, -1.0, 0.9, 0.0, 0.3, 0.6], &[2, 3]);
    let pair = [x, y];
    let tol = GradCheck::default();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        gradcheck(
            |v| MseLoss::new().reduction(reduction).forward(&v[0], &v[1]),
            &pair,
            tol,
        )?;
        gradcheck(
            |v| L1Loss::new().reduction(reduction).forward(&v[0], &v[1]),
            &pair,
            tol,
        )?;
        let sl1 = SmoothL1Loss::new().beta(0.5).reduction(reduction);
        gradcheck(|v| sl1.forward(&v[0], &v[1]), &pair, tol)?;
        let huber = HuberLoss::new().delta(0.7).reduction(reduction);
        gradcheck(|v| huber.forward(&v[0], &v[1]), &pair, tol)?;
    }
    Ok(())
}

#[test]
fn gradcheck_binary_losses() -> Result<()> {
    let p = values(&[0.2, 0.9, 0.5, 0.6, 0.15, 0.3], &[2, 3]);
    // Targets inside (0, 1): the finite differences step them by ±eps, and
    // BCE refuses targets outside [0, 1], as PyTorch does.
    let y = values(&[0.95, 0.2, 0.7, 0.05, 0.4, 0.9], &[2, 3]);
    let x = values(&[1.3, -0.2, 2.5, -3.0, 0.4, 0.0], &[2, 3]);
    let w = values(&[0.5, 1.0, 2.0], &[3]);
    let tol = GradCheck::default();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let bce = BceLoss::new().weight(w.clone()).reduction(reduction);
        gradcheck(|v| bce.forward(&v[0], &v[1]), &[p.clone(), y.clone()], tol)?;
        let logits = BceWithLogitsLoss::new()
            .weight(w.clone())
            .pos_weight(values(&[2.0, 0.5, 1.0], &[3]))
            .reduction(reduction);
        gradcheck(
            |v| logits.forward(&v[0], &v[1]),
            &[x.clone(), y.clone()],
            tol,
        )?;
    }
    Ok(())
}

// Bad input: an error naming the problem, never a panic.

#[test]
fn mismatched_shapes_and_dtypes_are_errors() -> Result<()> {
    let dev = cpu();
    let a = Tensor::zeros(&[3], &dev)?;
    let b = Tensor::zeros(&[3, 1], &dev)?;
    let e = loss::mse_loss(&a, &b).unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { op: "mse_loss", .. }),
        "{e}"
    );
    let ints = Tensor::from_vec_i32(vec![1, 2, 3], &[3], &dev)?;
    assert!(matches!(
        loss::l1_loss(&ints, &a),
        Err(Error::DTypeMismatch { .. })
    ));
    let w = Tensor::ones(&[2, 2], &dev)?;
    let e = BceLoss::new()
        .weight(w)
        .forward(&a.sigmoid()?, &a)
        .unwrap_err();
    assert!(e.to_string().contains("weight"), "{e}");
    let e = BceWithLogitsLoss::new()
        .pos_weight(Tensor::ones(&[4], &dev)?)
        .forward(&a, &a)
        .unwrap_err();
    assert!(e.to_string().contains("pos_weight"), "{e}");
    Ok(())
}

#[test]
fn bad_class_targets_are_errors() -> Result<()> {
    let dev = cpu();
    let x = Tensor::randn(&[3, 4], &dev)?;
    let too_big = Tensor::from_vec_i32(vec![0, 4, 1], &[3], &dev)?;
    let e = loss::cross_entropy(&x, &too_big).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfRange {
                index: 4,
                size: 4,
                ..
            }
        ),
        "{e}"
    );
    let negative = Tensor::from_vec_i32(vec![0, -1, 1], &[3], &dev)?;
    assert!(matches!(
        loss::cross_entropy(&x, &negative),
        Err(Error::OutOfRange { index: -1, .. })
    ));
    assert!(matches!(
        loss::nll_loss(&x, &too_big),
        Err(Error::OutOfRange { index: 4, .. })
    ));
    let wrong_len = Tensor::from_vec_i32(vec![0, 1], &[2], &dev)?;
    assert!(matches!(
        loss::cross_entropy(&x, &wrong_len),
        Err(Error::ShapeMismatch { .. })
    ));
    // Float labels are not probabilities: the error says to convert them.
    let float_labels = Tensor::from_vec(vec![0.0, 1.0, 2.0], &[3], &dev)?;
    let e = loss::cross_entropy(&x, &float_labels).unwrap_err();
    assert!(e.to_string().contains("to_labels"), "{e}");
    assert!(loss::cross_entropy(&x, &float_labels.to_labels()?).is_ok());
    let e = loss::nll_loss(&x, &float_labels).unwrap_err();
    assert!(e.to_string().contains("I32"), "{e}");
    let ok = Tensor::from_vec_i32(vec![0, 1, 2], &[3], &dev)?;
    let e = CrossEntropyLoss::new()
        .weight(Tensor::ones(&[3], &dev)?)
        .forward(&x, &ok)
        .unwrap_err();
    assert!(e.to_string().contains("class weight"), "{e}");
    let e = CrossEntropyLoss::new()
        .label_smoothing(1.5)
        .forward(&x, &ok)
        .unwrap_err();
    assert!(e.to_string().contains("label_smoothing"), "{e}");
    let scalar = Tensor::scalar(1.0, &dev)?;
    assert!(matches!(
        loss::cross_entropy(&scalar, &ok),
        Err(Error::RankMismatch { .. })
    ));
    Ok(())
}

#[test]
fn empty_inputs_and_bad_options_are_errors() -> Result<()> {
    let dev = cpu();
    let empty = Tensor::zeros(&[0, 3], &dev)?;
    let no_labels = Tensor::from_vec_i32(vec![], &[0], &dev)?;
    assert!(matches!(
        loss::cross_entropy(&empty, &no_labels),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        loss::mse_loss(&empty, &empty),
        Err(Error::Empty { .. })
    ));
    let x = Tensor::zeros(&[2], &dev)?;
    let e = SmoothL1Loss::new().beta(-1.0).forward(&x, &x).unwrap_err();
    assert!(e.to_string().contains("beta"), "{e}");
    let e = HuberLoss::new().delta(0.0).forward(&x, &x).unwrap_err();
    assert!(e.to_string().contains("delta"), "{e}");
    assert_eq!(x.dtype(), DType::F32);
    Ok(())
}
