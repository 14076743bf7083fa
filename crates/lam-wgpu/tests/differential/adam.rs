//! The fused Adam, AdamW and SGD steps against the CPU's, over three steps.

use lam_core::backend::AdamStep;

use super::{on_every_gpu, pair};
use crate::common::*;

#[test]
fn fused_adam_matches_cpu_for_adam_and_adamw() {
    on_every_gpu("fused adam", |dev, cpu| {
        let gpu = dev.backend();
        let n = 1000;
        for decoupled in [false, true] {
            let init = [values(n, 101, -1.0, 1.0), vec![0.0; n], vec![0.0; n]];
            let (gp, cp) = pair(gpu, cpu, &init[0]);
            let (gm, cm) = pair(gpu, cpu, &init[1]);
            let (gv, cv) = pair(gpu, cpu, &init[2]);
            for step in 1..=3u32 {
                let grad = values(n, 110 + u64::from(step), -0.5, 0.5);
                let (gg, cg) = pair(gpu, cpu, &grad);
                let s = AdamStep {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.05,
                    decoupled,
                    step,
                };
                assert!(
                    gpu.fused_adam(&gp, &gg, &gm, &gv, &s).unwrap(),
                    "gpu fuses adam"
                );
                if !cpu.fused_adam(&cp, &cg, &cm, &cv, &s).unwrap() {
                    eprintln!("fused adam: the CPU does not fuse Adam; comparing GPU runs only");
                    return;
                }
            }
            for (name, g, c) in [("param", &gp, &cp), ("m", &gm, &cm), ("v", &gv, &cv)] {
                let case = format!("adam (decoupled {decoupled}) {name}");
                assert_close(&case, &down(gpu, g, &[n]), &down(cpu, c, &[n]), 1e-6, 1e-5);
            }
        }
    });
}

#[test]
fn fused_sgd_matches_cpu_with_and_without_momentum() {
    use lam_core::backend::SgdStep;
    on_every_gpu("fused sgd", |dev, cpu| {
        let gpu = dev.backend();
        let n = 1000;
        for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
            let (gp, cp) = pair(gpu, cpu, &values(n, 201, -1.0, 1.0));
            let (gb, cb) = pair(gpu, cpu, &vec![0.0; n]);
            for step in 0..3u64 {
                let (gg, cg) = pair(gpu, cpu, &values(n, 210 + step, -0.5, 0.5));
                let s = SgdStep {
                    lr: 0.05,
                    momentum,
                    dampening: 0.1 * f32::from(u8::from(!nesterov)),
                    nesterov,
                    weight_decay: 0.01,
                    first: step == 0,
                };
                let (gbuf, cbuf) = match momentum != 0.0 {
                    true => (Some(&gb), Some(&cb)),
                    false => (None, None),
                };
                assert!(gpu.fused_sgd(&gp, &gg, gbuf, &s).unwrap(), "gpu fuses sgd");
                assert!(cpu.fused_sgd(&cp, &cg, cbuf, &s).unwrap(), "cpu fuses sgd");
            }
            let case = format!("sgd (momentum {momentum}, nesterov {nesterov})");
            assert_close(
                &case,
                &down(gpu, &gp, &[n]),
                &down(cpu, &cp, &[n]),
                1e-6,
                1e-5,
            );
            assert_close(
                &case,
                &down(gpu, &gb, &[n]),
                &down(cpu, &cb, &[n]),
                1e-6,
                1e-5,
            );
        }
    });
}
