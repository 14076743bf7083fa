//! Learning-rate schedulers: the rates of every kind against PyTorch's
//! (`fixtures/optim/schedulers.json`), resuming with `set_epoch` and
//! `load_state_dict`, and invalid settings.

use lam::optim::{
    CosineAnnealing, ExponentialLr, MultiStepLr, PlateauMode, ReduceLrOnPlateau, Scheduler, StepLr,
    ThresholdMode,
};

use crate::common::fixture;

#[test]
fn schedulers_match_pytorch() {
    for case in fixture::file_cases("optim/schedulers.json", 8) {
        let name = case["name"].as_str().expect("name");
        let o = &case["options"];
        let f = |k: &str| o[k].as_f64().map(|v| v as f32);
        let u = |k: &str| o[k].as_u64();
        let expected: Vec<f32> = case["lrs"]
            .as_array()
            .expect("lrs")
            .iter()
            .map(|v| v.as_f64().expect("lr") as f32)
            .collect();
        let base = case["base_lr"].as_f64().expect("base_lr") as f32;
        let actual: Vec<f32> = if case["kind"] == "plateau" {
            let mut s = ReduceLrOnPlateau::new(base)
                .factor(f("factor").unwrap_or(0.1))
                .patience(u("patience").unwrap_or(10))
                .threshold(f("threshold").unwrap_or(1e-4))
                .cooldown(u("cooldown").unwrap_or(0))
                .min_lr(f("min_lr").unwrap_or(0.0));
            if o["mode"] == "max" {
                s = s.mode(PlateauMode::Max);
            }
            if o["threshold_mode"] == "abs" {
                s = s.threshold_mode(ThresholdMode::Abs);
            }
            let mut lrs = vec![s.lr()];
            for m in case["metrics"].as_array().expect("metrics") {
                lrs.push(
                    s.step_with(m.as_f64().expect("metric") as f32)
                        .expect("valid plateau"),
                );
            }
            lrs
        } else {
            let mut s: Box<dyn Scheduler> = match case["kind"].as_str().expect("kind") {
                "step" => Box::new(
                    StepLr::new(
                        base,
                        u("step_size").expect("step_size"),
                        f("gamma").expect("gamma"),
                    )
                    .expect("step_size > 0"),
                ),
                "multistep" => {
                    let ms: Vec<u64> = o["milestones"]
                        .as_array()
                        .expect("milestones")
                        .iter()
                        .map(|m| m.as_u64().expect("m"))
                        .collect();
                    Box::new(MultiStepLr::new(base, &ms, f("gamma").expect("gamma")))
                }
                "exponential" => Box::new(ExponentialLr::new(base, f("gamma").expect("gamma"))),
                "cosine" => Box::new(
                    CosineAnnealing::new(base, u("total").expect("total"))
                        .eta_min(f("eta_min").unwrap_or(0.0))
                        .warmup(u("warmup").unwrap_or(0), f("start_factor").unwrap_or(1.0)),
                ),
                other => panic!("unknown scheduler {other}"),
            };
            let mut lrs = vec![s.lr()];
            for _ in 1..expected.len() {
                lrs.push(s.step());
            }
            lrs
        };
        if let Err(e) = lam::testing::assert_close(&actual, &expected, 1e-7, 1e-5) {
            panic!("{name}: {e}\nactual:   {actual:?}\nexpected: {expected:?}");
        }
    }
}

#[test]
fn schedulers_resume_with_set_epoch() {
    let mut a = CosineAnnealing::new(0.1, 20).warmup(3, 0.1).eta_min(1e-3);
    let run: Vec<f32> = (0..12).map(|_| a.step()).collect();
    let mut b = CosineAnnealing::new(0.1, 20).warmup(3, 0.1).eta_min(1e-3);
    b.set_epoch(6);
    let resumed: Vec<f32> = (0..6).map(|_| b.step()).collect();
    assert_eq!(&run[6..], &resumed[..]);
    assert_eq!(a.epoch(), 12);
    // Past the end the rate stays at eta_min.
    assert_eq!(a.lr_at(25), 1e-3);

    let mut p = ReduceLrOnPlateau::new(0.1).patience(0).cooldown(1);
    for m in [1.0, 1.0, 0.5] {
        p.step_with(m).expect("valid");
    }
    let mut q = ReduceLrOnPlateau::new(0.5).patience(0).cooldown(1);
    q.load_state_dict(&p.state_dict()).expect("loads");
    for m in [0.9, 0.9, 0.9] {
        assert_eq!(
            p.step_with(m).expect("valid"),
            q.step_with(m).expect("valid")
        );
    }
    assert!(StepLr::new(0.1, 0, 0.5).is_err());
    assert!(ReduceLrOnPlateau::new(0.1)
        .factor(1.5)
        .step_with(1.0)
        .is_err());
}
