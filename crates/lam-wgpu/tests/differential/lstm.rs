//! A whole LSTM layer's loop each way (`fused_lstm_sequence` and its
//! gradient) against lam-cpu's, forwards and in reverse, with every input
//! on each of the awkward views (transposed, narrowed with odd offsets,
//! broadcast), and sizes that leave workgroups part-full (3 rows of 5
//! units, 4 steps), one step of one unit, and no steps.

use lam_core::{Backend, Layout, Storage};

use super::on_every_gpu;
use crate::common::*;

#[test]
fn lstm_sequence_matches_cpu_on_awkward_views_both_ways() {
    on_every_gpu("lstm_sequence", |dev, cpu| {
        let gpu = dev.backend();
        for (steps, b, h) in [(4, 3, 5), (1, 1, 1), (0, 2, 3)] {
            let shapes = [
                vec![steps, b, 4 * h],
                vec![4 * h, h],
                vec![b, h],
                vec![b, h],
            ];
            let views: Vec<Vec<ViewCase>> = shapes.iter().map(|s| awkward_views(s)).collect();
            for (i, xp) in views[0].iter().enumerate() {
                for reverse in [false, true] {
                    // Each other input on a view picked by the case number.
                    let pick = |k: usize| &views[k][(i + k) % views[k].len()];
                    let ins = [xp, pick(1), pick(2), pick(3)];
                    let data: Vec<Vec<f32>> = ins
                        .iter()
                        .enumerate()
                        .map(|(k, v)| values(v.len, 200 + k as u64, -1.0, 1.0))
                        .collect();
                    let case = format!(
                        "{steps}x{b}x{h}, xp {}, w_hh {}, h0 {}, c0 {}, reverse {reverse}",
                        ins[0].name, ins[1].name, ins[2].name, ins[3].name
                    );
                    let run = |be: &dyn Backend| -> Vec<Vec<f32>> {
                        let s: Vec<Storage> = data.iter().map(|d| up(be, d)).collect();
                        let v = |k: usize| (&s[k], &ins[k].layout);
                        let (hs, cs, gates) = be
                            .fused_lstm_sequence(v(0), v(1), v(2), v(3), reverse)
                            .expect("the forward")
                            .expect("the backend runs the whole loop");
                        let states = [steps + 1, b, h];
                        let mut out = vec![
                            down(be, &hs, &states),
                            down(be, &cs, &states),
                            down(be, &gates, &[steps, b, 4 * h]),
                        ];
                        // The gradient, from a grad_hs on a transposed
                        // view and a narrowed grad_c.
                        let g_hs = values(steps * b * h, 210, -1.0, 1.0);
                        let g_c = values((b + 2) * (h + 2), 211, -1.0, 1.0);
                        let (g_hs, g_c) = (up(be, &g_hs), up(be, &g_c));
                        let hs_t = Layout::contiguous(&[b, steps, h])
                            .permute(&[1, 0, 2])
                            .unwrap();
                        let c_n = Layout::contiguous(&[b + 2, h + 2])
                            .narrow(0, 1, b)
                            .unwrap()
                            .narrow(1, 2, h)
                            .unwrap();
                        let whole = |n: &[usize]| Layout::contiguous(n);
                        let (d_xp, d_h, d_c, _) = be
                            .fused_lstm_sequence_grad(
                                (&g_hs, &hs_t),
                                (&g_c, &c_n),
                                (&gates, &whole(&[steps, b, 4 * h])),
                                (&cs, &whole(&states)),
                                v(1),
                                reverse,
                            )
                            .expect("the gradient")
                            .expect("the backend runs the whole loop");
                        out.push(down(be, &d_xp, &[steps, b, 4 * h]));
                        out.push(down(be, &d_h, &[b, h]));
                        out.push(down(be, &d_c, &[b, h]));
                        out
                    };
                    let (got, want) = (run(gpu), run(cpu));
                    let names = ["hs", "cs", "gates", "d_xp", "d_h", "d_c"];
                    for ((name, g), w) in names.iter().zip(&got).zip(&want) {
                        assert_close(&format!("{case}: {name}"), g, w, 1e-5, 1e-4);
                    }
                }
            }
        }
    });
}
