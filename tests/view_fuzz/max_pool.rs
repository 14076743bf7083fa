//! Max pooling on random views (Backend `max_pool`, `max_pool_grad`), with
//! padding and dilation, so windows that hang over the edge are covered;
//! and in ceil mode, whose last windows run past the padding, with the
//! indices PyTorch returns.

use lam::nn::functional::{max_pool2d, max_pool2d_with_indices};
use lam::nn::MaxPool2dConfig;

use super::harness::{normal, Case, Rng};

pub const COVERS: &[&str] = &[];

pub fn cases(rng: &mut Rng) -> Vec<Case> {
    (0..4).flat_map(|_| one_round(rng)).collect()
}

fn one_round(rng: &mut Rng) -> Vec<Case> {
    let (n, c) = (rng.pick(&[1, 2]), rng.pick(&[1, 3]));
    let (h, w) = (3 + rng.below(4), 3 + rng.below(4));
    let (k, s, p, d) = (2, rng.pick(&[1, 2]), rng.below(2), rng.pick(&[1, 2]));
    let config = MaxPool2dConfig::default()
        .stride(s)
        .padding(p)
        .dilation(d)
        .ceil_mode(true);
    vec![
        Case::new("max_pool2d", vec![normal(&[n, c, h, w])], move |t| {
            Ok(vec![max_pool2d(&t[0], k, s, p, d)?])
        }),
        Case::new(
            "max_pool2d ceil_mode",
            vec![normal(&[n, c, h, w])],
            move |t| Ok(vec![max_pool2d_with_indices(&t[0], k, config)?.0]),
        ),
        Case::new(
            "max_pool2d indices",
            vec![normal(&[n, c, h, w])],
            move |t| {
                let (_, indices) = max_pool2d_with_indices(&t[0], k, config)?;
                Ok(vec![indices])
            },
        )
        .no_grad(),
    ]
}
