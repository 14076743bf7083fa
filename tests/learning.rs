//! Learning tests: tiny models must actually learn with the tape and a
//! hand-written SGD loop, on every backend.

mod common;

use lam::prelude::*;

/// One plain SGD step under no_grad: p -= lr * grad.
fn sgd(params: &[&Tensor], lr: f32) -> lam::Result<()> {
    no_grad(|| {
        for p in params {
            let g = p
                .grad()
                .ok_or_else(|| lam::Error::Autograd("missing grad".into()))?;
            p.set_data(&p.sub(&g.mul_scalar(lr)?)?)?;
            p.zero_grad();
        }
        Ok(())
    })
}

conformance!(fits_a_line, |dev| {
    // y = 3x + 2 on 32 points in [-1, 1].
    let xs: Vec<f32> = (0..32).map(|i| -1.0 + 2.0 * i as f32 / 31.0).collect();
    let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x + 2.0).collect();
    let x = Tensor::from_vec(xs, &[32, 1], dev)?;
    let y = Tensor::from_vec(ys, &[32, 1], dev)?;
    let w = Tensor::zeros(&[1, 1], dev)?.requires_grad_()?;
    let b = Tensor::zeros(&[1], dev)?.requires_grad_()?;
    for _ in 0..400 {
        let pred = x.matmul(&w)?.add(&b)?;
        pred.sub(&y)?.square()?.mean_all()?.backward()?;
        sgd(&[&w, &b], 0.3)?;
    }
    let (w, b) = (w.item()?, b.item()?);
    assert!(
        (w - 3.0).abs() < 1e-3 && (b - 2.0).abs() < 1e-3,
        "w {w} b {b}"
    );
    Ok(())
});

conformance!(mlp_learns_xor, |dev| {
    lam::manual_seed(7);
    let x = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2], dev)?;
    let y = Tensor::from_vec_i32(vec![0, 1, 1, 0], &[4], dev)?;
    let w1 = Tensor::randn(&[2, 8], dev)?.requires_grad_()?;
    let b1 = Tensor::zeros(&[8], dev)?.requires_grad_()?;
    let w2 = Tensor::randn(&[8, 2], dev)?
        .mul_scalar(0.5)?
        .requires_grad_()?;
    let b2 = Tensor::zeros(&[2], dev)?.requires_grad_()?;
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..500 {
        let h = x.matmul(&w1)?.add(&b1)?.tanh()?;
        let loss = h.matmul(&w2)?.add(&b2)?.cross_entropy(&y)?;
        loss.backward()?;
        sgd(&[&w1, &b1, &w2, &b2], 0.5)?;
        last = loss.item()?;
        first.get_or_insert(last);
    }
    let pred = x
        .matmul(&w1)?
        .add(&b1)?
        .tanh()?
        .matmul(&w2)?
        .add(&b2)?
        .argmax(1, false)?;
    assert_eq!(
        pred.to_vec_i32()?,
        vec![0, 1, 1, 0],
        "loss went {first:?} -> {last}"
    );
    assert!(last < 0.05, "final loss {last}");
    Ok(())
});
