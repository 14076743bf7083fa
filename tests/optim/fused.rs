//! The fused updates (Backend `fused_adam`, `fused_sgd`) against the
//! composed ops they stand for, parameters and optimizer state alike, and
//! SGD as one backend call per parameter.

use lam::optim::{Adam, AdamW, Optimizer, Sgd};
use lam::{Device, Result};

use crate::common;
use crate::conformance;

use super::Problem;

conformance!(fused_adam_matches_the_composed_update, |dev| {
    for decoupled in [false, true] {
        let a = Problem::new(dev)?;
        let b = Problem::new(dev)?;
        let (mut fused, mut composed): (Box<dyn Optimizer>, Box<dyn Optimizer>) = if decoupled {
            (
                Box::new(AdamW::new(a.params(), 0.02)?.weight_decay(0.1).l1(0.01)),
                Box::new(
                    AdamW::new(b.params(), 0.02)?
                        .weight_decay(0.1)
                        .l1(0.01)
                        .fused(false),
                ),
            )
        } else {
            (
                Box::new(Adam::new(a.params(), 0.02)?.weight_decay(0.1).l1(0.01)),
                Box::new(
                    Adam::new(b.params(), 0.02)?
                        .weight_decay(0.1)
                        .l1(0.01)
                        .fused(false),
                ),
            )
        };
        for _ in 0..10 {
            a.step(fused.as_mut())?;
            b.step(composed.as_mut())?;
        }
        common::close(&a.w.to_vec()?, &b.w.to_vec()?, 1e-5);
        common::close(&a.b.to_vec()?, &b.b.to_vec()?, 1e-5);
        let (sa, sb) = (fused.state_dict()?, composed.state_dict()?);
        for (pa, pb) in sa.params.iter().zip(&sb.params) {
            let (pa, pb) = (pa.as_ref().expect("state"), pb.as_ref().expect("state"));
            assert_eq!(pa.step, pb.step);
            for (name, t) in &pa.buffers {
                common::close(&t.to_vec()?, &pb.buffers[name].to_vec()?, 1e-5);
            }
        }
    }
    Ok(())
});

conformance!(fused_sgd_matches_the_composed_update, |dev| {
    // (momentum, dampening, nesterov, weight decay): plain, with decay,
    // momentum (whose first step sets the buffer), dampening, Nesterov.
    let configs = [
        (0.0, 0.0, false, 0.0),
        (0.0, 0.0, false, 0.1),
        (0.9, 0.0, false, 0.05),
        (0.9, 0.3, false, 0.0),
        (0.8, 0.0, true, 0.01),
    ];
    for (momentum, dampening, nesterov, decay) in configs {
        let sgd = |params| -> Result<Sgd> {
            Ok(Sgd::new(params, 0.05)?
                .momentum(momentum)
                .dampening(dampening)
                .nesterov(nesterov)
                .weight_decay(decay))
        };
        let (a, b) = (Problem::new(dev)?, Problem::new(dev)?);
        let mut fused = sgd(a.params())?;
        let mut composed = sgd(b.params())?.fused(false);
        for _ in 0..10 {
            a.step(&mut fused)?;
            b.step(&mut composed)?;
        }
        let case = format!("momentum {momentum} dampening {dampening} nesterov {nesterov}");
        for (x, y) in [(&a.w, &b.w), (&a.b, &b.b)] {
            let (x, y) = (x.to_vec()?, y.to_vec()?);
            if dev.is_gpu() {
                common::close(&x, &y, 1e-6);
            } else {
                // The CPU's fused loop computes the composed ops in order.
                assert_eq!(x, y, "{case}");
            }
        }
        let (sa, sb) = (fused.state_dict()?, composed.state_dict()?);
        for (pa, pb) in sa.params.iter().zip(&sb.params) {
            let (pa, pb) = (pa.as_ref().expect("state"), pb.as_ref().expect("state"));
            assert_eq!(pa.buffers.len(), pb.buffers.len(), "{case}");
            for (name, t) in &pa.buffers {
                common::close(&t.to_vec()?, &pb.buffers[name].to_vec()?, 1e-6);
            }
        }
    }
    Ok(())
});

#[test]
fn sgd_is_one_fused_op_per_parameter() {
    use lam::DeviceExt;
    let devices = [
        Some(Device::cpu()),
        common::gpu("vulkan"),
        common::gpu("gl"),
    ];
    for device in devices.into_iter().flatten() {
        let (dev, recorder) = lam::testing::Recorder::device(&device);
        let problem = Problem::new(&dev).expect("problem");
        let mut opt = Sgd::new(problem.params(), 0.1)
            .expect("sgd")
            .momentum(0.9)
            .weight_decay(1e-4);
        problem.step(&mut opt).expect("a first step");
        let before = recorder.calls();
        problem.step(&mut opt).expect("a second step");
        let after = recorder.calls();
        let fused = |calls: &std::collections::BTreeMap<&str, u64>| calls.get("fused_sgd").copied();
        let (before, after) = (fused(&before).unwrap_or(0), fused(&after).unwrap_or(0));
        assert_eq!(
            after - before,
            2,
            "one call per parameter on {}",
            device.name()
        );
    }
}
