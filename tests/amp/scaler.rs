//! The `GradScaler`: PyTorch's scale sequence, skipped steps and
//! `state_dict` (`fixtures/f16/f16.json`), refused states and misuse, and
//! its unscale as one backend call with the bits of the composed ops.

use std::collections::BTreeMap;

use lam::amp::{GradScaler, GradScalerState};
use lam::optim::{Optimizer, Sgd};
use lam::{Device, Generator, Result, Tensor};

use crate::common;
use crate::conformance;

conformance!(
    grad_scaler_follows_pytorch_and_skips_overflowed_steps,
    |dev| {
        let case = common::fixture::read("f16/f16.json")["scaler"].clone();
        let num = |v: &serde_json::Value| -> f32 {
            match v.as_str() {
                Some("inf") => f32::INFINITY,
                Some("nan") => f32::NAN,
                _ => v.as_f64().expect("a number") as f32,
            }
        };
        let list = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array().expect("a list").iter().map(num).collect()
        };
        let p = Tensor::from_slice(&list(&case["p0"]), &[3], dev)?.requires_grad_()?;
        let mut opt = Sgd::new(vec![p.clone()], num(&case["lr"]))?;
        let mut scaler = GradScaler::new()
            .init_scale(num(&case["init_scale"]))
            .growth_interval(case["growth_interval"].as_u64().expect("an int") as u32);
        let coeffs = case["coeffs"].as_array().expect("coeffs");
        assert_eq!(coeffs.len(), 10);
        for (t, c) in coeffs.iter().enumerate() {
            opt.zero_grad();
            let c = Tensor::from_slice(&list(c), &[3], dev)?;
            let loss = c.mul(&p)?.sum_all()?;
            scaler.scale(&loss)?.backward()?;
            let stepped = scaler.step(&mut opt)?;
            scaler.update()?;
            assert_eq!(
                stepped,
                case["stepped"][t].as_bool().expect("a bool"),
                "step {t}"
            );
            assert_eq!(
                scaler.get_scale(),
                num(&case["scales"][t]),
                "scale after step {t}"
            );
            common::close(&p.to_vec()?, &list(&case["params"][t]), 1e-6);
        }
        let state = scaler.state_dict();
        let torch = &case["state_dict"];
        assert_eq!(
            state,
            GradScalerState {
                scale: num(&torch["scale"]),
                growth_factor: num(&torch["growth_factor"]),
                backoff_factor: num(&torch["backoff_factor"]),
                growth_interval: torch["growth_interval"].as_u64().expect("an int") as u32,
                growth_tracker: torch["_growth_tracker"].as_u64().expect("an int") as u32,
            }
        );
        // The state round-trips; impossible states are refused, changing nothing.
        let mut other = GradScaler::new();
        other.load_state_dict(&state)?;
        assert_eq!(other.state_dict(), state);
        for bad in [
            GradScalerState {
                scale: f32::INFINITY,
                ..state
            },
            GradScalerState {
                scale: 0.0,
                ..state
            },
            GradScalerState {
                backoff_factor: 1.5,
                ..state
            },
            GradScalerState {
                growth_factor: 0.5,
                ..state
            },
            GradScalerState {
                growth_interval: 0,
                ..state
            },
            GradScalerState {
                growth_tracker: 3,
                ..state
            },
        ] {
            assert!(other.load_state_dict(&bad).is_err(), "{bad:?}");
            assert_eq!(other.state_dict(), state);
        }
        // Unscaling twice before an update, or updating with nothing stepped, is an error.
        scaler.scale(&p.sum_all()?)?.backward()?;
        scaler.unscale_(&opt)?;
        assert!(scaler.unscale_(&opt).is_err());
        assert!(scaler.step(&mut opt)?);
        scaler.update()?;
        assert!(scaler.update().is_err());
        // A disabled scaler passes everything through.
        let mut off = GradScaler::new().enabled(false);
        let loss = p.sum_all()?;
        assert_eq!(off.scale(&loss)?.item()?, loss.item()?);
        assert_eq!(off.get_scale(), 1.0);
        assert!(off.step(&mut opt)?);
        off.update()?;
        Ok(())
    }
);

// The scaler's unscale is one backend call for every gradient (Backend
// `fused_unscale`) where the device has it, with the bits and the verdict
// of the composed ops: gradients of several shapes and views, with and
// without an infinity or a NaN among them.
conformance!(unscale_is_one_call_with_the_composed_bits, |dev| {
    for poison in [
        None,
        Some(f32::INFINITY),
        Some(f32::NEG_INFINITY),
        Some(f32::NAN),
    ] {
        let run = |dev: &Device| -> Result<(Vec<Vec<u32>>, bool, u64)> {
            let gen = Generator::new(21);
            let (rec, recorder) = lam::testing::Recorder::device(dev);
            let grads = [
                Tensor::randn_with(&[3, 5], &rec, &gen)?.mul_scalar(1e4)?,
                Tensor::randn_with(&[4, 6], &rec, &gen)?.t()?,
                Tensor::randn_with(&[7], &rec, &gen)?.narrow(0, 2, 4)?,
            ];
            let mut params = Vec::new();
            for (k, g) in grads.iter().enumerate() {
                let p = Tensor::zeros(g.dims(), &rec)?.requires_grad_()?;
                let g = match poison {
                    Some(v) if k == 1 => g.mul(&Tensor::full(&[1], v, &rec)?)?,
                    _ => g.clone(),
                };
                p.set_grad(Some(g))?;
                params.push(p);
            }
            let mut opt = Sgd::new(params.clone(), 0.1)?;
            let before = recorder.calls();
            let mut scaler = GradScaler::new().init_scale(1024.0);
            scaler.unscale_(&opt)?;
            let calls = recorder.calls();
            // Elementwise ops run only where the backend declined.
            let count = |m: &BTreeMap<&str, u64>| m.get("unary").copied().unwrap_or(0);
            let composed = count(&calls) - count(&before);
            let stepped = scaler.step(&mut opt)?;
            let bits = params
                .iter()
                .map(|p| -> Result<Vec<u32>> {
                    let g = p.grad().expect("a gradient").to_vec()?;
                    Ok(g.iter().map(|v| v.to_bits()).collect())
                })
                .collect::<Result<_>>()?;
            Ok((bits, stepped, composed))
        };
        let (got, stepped, composed) = run(dev)?;
        let (want, want_stepped, _) = run(&common::unfused(dev))?;
        assert_eq!(got, want, "{poison:?}");
        assert_eq!(stepped, want_stepped, "{poison:?}");
        assert_eq!(stepped, poison.is_none(), "{poison:?}");
        assert_eq!(composed > 0, common::is_unfused(dev), "{poison:?}");
    }
    Ok(())
});
