//! Sliding windows on random views (Backend `unfold`, `fold`): im2col and
//! col2im directly, convolution in 1-d and 2-d with stride, padding,
//! dilation and groups (in f32 and under autocast), and average pooling.

use lam::nn::functional::{adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, fold, unfold};
use lam::nn::{Size2, Window};

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut out = Vec::new();
    let (n, c) = (rng.pick(&[1, 2]), rng.pick(&[1, 2, 3]));
    let (h, w) = (3 + rng.below(4), 3 + rng.below(5));
    let k = rng.pick(&[1, 2, 3]);
    let (s, p, d) = (rng.pick(&[1, 2]), rng.below(2), rng.pick(&[1, 2]));
    let window = Window::new("view_fuzz", Size2::from(k), s.into(), p.into(), d.into())
        .expect("a valid window");
    let win = window;
    out.push(Case::new("unfold", vec![normal(&[n, c, h, w])], move |t| {
        Ok(vec![unfold(&t[0], &win, 0.0)?])
    }));
    if let Ok(o) = window.output_size("view_fuzz", h, w) {
        let cols = [c, k * k, n, o.h * o.w];
        let win = window;
        out.push(
            Case::new("fold", vec![normal(&cols)], move |t| {
                Ok(vec![fold(&t[0], &win, &[n, c, h, w])?])
            })
            .tol(1e-5),
        );
    }
    let groups = if c % 2 == 0 && rng.chance(0.5) { 2 } else { 1 };
    let out_c = groups * rng.pick(&[1, 2]);
    out.push(
        Case::new(
            "conv2d",
            vec![
                normal(&[n, c, h, w]),
                normal(&[out_c, c / groups, k, k]),
                normal(&[out_c]),
            ],
            move |t| Ok(vec![conv2d(&t[0], &t[1], Some(&t[2]), s, p, d, groups)?]),
        )
        .tol(1e-5),
    );
    // Under autocast (Backend `fused_conv2d_f16` where the backend has it):
    // an F16 output from the halves of the image and the weight.
    out.push(
        Case::new(
            "conv2d autocast",
            vec![
                normal(&[n, c, h, w]),
                normal(&[out_c, c / groups, k, k]),
                normal(&[out_c]),
            ],
            move |t| {
                let _ac = lam::amp::autocast_forced(&t[0].device(), lam::DType::F16)?;
                Ok(vec![conv2d(&t[0], &t[1], Some(&t[2]), s, p, d, groups)?])
            },
        )
        .tol(1e-5),
    );
    out.push(
        Case::new(
            "conv1d",
            vec![normal(&[n, c, w + 2]), normal(&[2, c, k])],
            move |t| Ok(vec![conv1d(&t[0], &t[1], None, s, p, d, 1)?]),
        )
        .tol(1e-5),
    );
    out.push(
        Case::new("avg_pool2d", vec![normal(&[n, c, h, w])], move |t| {
            Ok(vec![
                avg_pool2d(&t[0], 2, 1, 0, true)?,
                adaptive_avg_pool2d(&t[0], (2, 2))?,
            ])
        })
        .tol(1e-5),
    );
    out
}
