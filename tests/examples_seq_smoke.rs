//! The sequence examples (`forecast`, `char_lm`) run in their tiny
//! configurations on the CPU.
//!
//! Each example is compiled into this test as a module (its `main` unused),
//! so its `run` is called directly with its `quick` configuration.

#[allow(dead_code)]
#[path = "../examples/forecast.rs"]
mod forecast;

#[allow(dead_code)]
#[path = "../examples/char_lm.rs"]
mod char_lm;

use lam::prelude::*;

/// The closed-form autoregression recovers an exact AR(2) recurrence.
#[test]
fn autoregression_recovers_a_known_recurrence() {
    let mut series = vec![1.0, 0.5];
    for t in 2..60 {
        let next = 0.3 + 0.6 * series[t - 1] - 0.2 * series[t - 2];
        series.push(next + if t % 3 == 0 { 0.1 } else { -0.05 });
    }
    let targets: Vec<usize> = (2..60).collect();
    let coef = forecast::fit_autoregression(&series, &targets, 2).unwrap();
    let fitted: Vec<f64> = targets
        .iter()
        .map(|&t| forecast::predict_autoregression(&coef, &series[t - 2..t]))
        .collect();
    let truth: Vec<f64> = targets.iter().map(|&t| series[t]).collect();
    // Least squares is at least as good as the generating coefficients.
    let generating: Vec<f64> = targets
        .iter()
        .map(|&t| 0.3 - 0.2 * series[t - 2] + 0.6 * series[t - 1])
        .collect();
    assert!(forecast::rmse(&fitted, &truth) <= forecast::rmse(&generating, &truth) + 1e-9);
}

#[test]
fn forecast_quick_run_is_finite_and_plots() {
    let mut cfg = forecast::Config::quick();
    cfg.out_dir = std::env::temp_dir().join(format!("lam-seq-smoke-{}", std::process::id()));
    let report = forecast::run(&cfg, &Device::cpu()).unwrap();
    assert!(report.rmse.is_finite() && report.rmse > 0.0, "{report:?}");
    // On 1947–2008 the AR baseline beats "same as last year" clearly.
    assert!(report.ar_rmse < report.naive_rmse, "{report:?}");
    let svg = std::fs::read_to_string(&report.plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<polyline").count() == 3);
    std::fs::remove_dir_all(&cfg.out_dir).ok();
}

#[test]
fn char_lm_quick_run_beats_uniform_and_samples() {
    for transformer in [false, true] {
        let cfg = char_lm::Config {
            transformer,
            ..char_lm::Config::quick()
        };
        let report = char_lm::run(&cfg, &Device::cpu()).unwrap();
        let v = report.vocab as f64;
        assert!(report.bigram_perplexity < v / 2.0, "{report:?}");
        let ppl = report.perplexities[0];
        assert!(ppl.is_finite() && ppl < v, "{report:?}");
        assert_eq!(
            report.sample.chars().count(),
            "Alice ".len() + cfg.sample_len
        );
    }
}
