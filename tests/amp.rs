//! Automatic mixed precision: autocast runs products in `F16` with `F32`
//! master weights and gradients, and is a no-op where half precision is not
//! native; a small MLP trained under autocast with a `GradScaler` reaches
//! the loss of `F32` training; the scaler skips the steps whose gradients
//! overflow and follows PyTorch's scale sequence exactly.
//!
//! Layout under `tests/amp/`: `scaler` (the `GradScaler` against PyTorch,
//! fused unscaling), `layers` (every layer with products, convolution
//! blocks), `linear` (autocast's Linear, bit for bit) and `conv` (autocast's
//! convolution, bit for bit); here autocast's dtypes and MLP training.

mod common;
#[path = "amp/conv.rs"]
mod conv;
#[path = "amp/layers.rs"]
mod layers;
#[path = "amp/linear.rs"]
mod linear;
#[path = "amp/scaler.rs"]
mod scaler;

use lam::amp::{self, GradScaler};
use lam::nn::{Linear, Module};
use lam::optim::{Adam, Optimizer};
use lam::{DType, Device, Generator, Result, Tensor};

conformance!(autocast_runs_products_in_f16_and_the_rest_in_f32, |dev| {
    let gen = Generator::new(4);
    let layer = lam::rng::with_generator(&gen, || Linear::new(6, 5, dev))?;
    let x = Tensor::randn_with(&[4, 6], dev, &gen)?;
    let w = Tensor::randn_with(&[6, 3], dev, &gen)?.requires_grad_()?;
    let plain = layer.forward(&x)?.to_vec()?;
    {
        let guard = amp::autocast_forced(dev, DType::F16)?;
        assert!(guard.enabled());
        assert_eq!(amp::autocast_dtype(dev), Some(DType::F16));
        let p = x.matmul(&w)?;
        assert_eq!(p.dtype(), DType::F16);
        // A Linear's product is F16, its bias added in F32, its output
        // rounded to F16 (PyTorch's autocast Linear returns half too).
        let y = layer.forward(&x)?;
        assert_eq!(y.dtype(), DType::F16);
        // Within f16 rounding of the inputs and the product (|y| < 8 here).
        common::close(&y.to_vec()?, &plain, 2e-2);
        // Softmax, reductions and losses stay F32.
        assert_eq!(p.softmax(-1)?.dtype(), DType::F32);
        assert_eq!(p.sum_all()?.dtype(), DType::F32);
        // Elementwise ops follow their operands: F16 stays F16 except on
        // autocast's float32 list and in comparisons; F16 with F32 is F32.
        assert_eq!(p.gelu()?.dtype(), DType::F16);
        assert_eq!(p.relu()?.mul(&p)?.dtype(), DType::F16);
        assert_eq!(p.exp()?.dtype(), DType::F32);
        assert_eq!(p.gt(&p)?.dtype(), DType::F32);
        assert_eq!(p.add(&p.to_dtype(DType::F32)?)?.dtype(), DType::F32);
        // An F32 region inside turns it off.
        {
            let _off = amp::autocast(dev, DType::F32)?;
            assert_eq!(x.matmul(&w)?.dtype(), DType::F32);
        }
        assert_eq!(x.matmul(&w)?.dtype(), DType::F16);
        // Gradients reach the F32 weights as F32.
        p.square()?.sum_all()?.backward()?;
        let g = w.grad().expect("a gradient");
        assert_eq!(g.dtype(), DType::F32);
        let want = x.t()?.matmul(&x.matmul(&w.detach())?)?.mul_scalar(2.0)?;
        common::close(&g.to_vec()?, &want.to_vec()?, 5e-2);
    }
    assert_eq!(amp::autocast_dtype(dev), None);
    assert_eq!(x.matmul(&w)?.dtype(), DType::F32);
    // The plain guard follows the device: on only where f16 is native.
    let guard = amp::autocast(dev, DType::F16)?;
    assert_eq!(guard.enabled(), dev.backend().native_f16());
    let want = if guard.enabled() {
        DType::F16
    } else {
        DType::F32
    };
    assert_eq!(x.matmul(&w)?.dtype(), want);
    drop(guard);
    let closure = amp::with_autocast(dev, DType::F16, || x.matmul(&w).map(|t| t.dtype()))??;
    assert_eq!(closure, want);
    assert!(amp::autocast(dev, DType::I32).is_err());
    // A backward pass inside a region runs the rules as recorded: a Linear
    // used outside autocast gets F32 gradients equal to plain ones.
    let out = layer.forward(&x)?.square()?.sum_all()?;
    {
        let _ac = amp::autocast_forced(dev, DType::F16)?;
        out.backward()?;
    }
    let grads: Vec<Tensor> = layer.parameters().iter().filter_map(|p| p.grad()).collect();
    assert_eq!(grads.len(), 2);
    for p in layer.parameters() {
        let g = p.grad().expect("a gradient");
        assert_eq!(g.dtype(), DType::F32);
        p.zero_grad();
    }
    layer.forward(&x)?.square()?.sum_all()?.backward()?;
    for (p, g) in layer.parameters().iter().zip(&grads) {
        common::close(&g.to_vec()?, &p.grad().expect("a gradient").to_vec()?, 1e-5);
    }
    Ok(())
});

/// Two layers, ReLU between.
struct Mlp {
    a: Linear,
    b: Linear,
}

impl Mlp {
    fn new(dev: &Device) -> Result<Mlp> {
        lam::rng::with_generator(&Generator::new(11), || {
            Ok(Mlp {
                a: Linear::new(8, 16, dev)?,
                b: Linear::new(16, 3, dev)?,
            })
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.b.forward(&self.a.forward(x)?.relu()?)
    }

    fn parameters(&self) -> Vec<Tensor> {
        let mut p = self.a.parameters();
        p.extend(self.b.parameters());
        p
    }
}

/// The loss after each of `steps` Adam steps on a fixed batch, in F32 or
/// under autocast with a GradScaler.
fn train(dev: &Device, mixed: bool, steps: usize) -> Result<Vec<f32>> {
    let gen = Generator::new(2);
    let x = Tensor::randn_with(&[32, 8], dev, &gen)?;
    let rule = Tensor::randn_with(&[8, 3], dev, &gen)?;
    let y = x.matmul(&rule)?.argmax(-1, false)?;
    let model = Mlp::new(dev)?;
    let mut opt = Adam::new(model.parameters(), 0.02)?;
    let mut scaler = GradScaler::new().enabled(mixed);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = {
            let _ac = amp::autocast_forced(dev, if mixed { DType::F16 } else { DType::F32 })?;
            lam::loss::cross_entropy(&model.forward(&x)?, &y)?
        };
        assert_eq!(loss.dtype(), DType::F32);
        scaler.scale(&loss)?.backward()?;
        assert!(scaler.step(&mut opt)?, "no gradient overflows here");
        scaler.update()?;
        opt.zero_grad();
        losses.push(loss.item()?);
    }
    Ok(losses)
}

conformance!(autocast_training_reaches_the_f32_loss, |dev| {
    let full = train(dev, false, 40)?;
    let mixed = train(dev, true, 40)?;
    let (first, last32, last16) = (full[0], full[39], mixed[39]);
    assert!(last32 < first / 3.0, "f32 training did not learn: {full:?}");
    let gap = (last16 - last32).abs();
    assert!(
        gap <= 0.02 + 0.1 * last32,
        "mixed precision ended at {last16}, f32 at {last32} (from {first})\n{mixed:?}\n{full:?}"
    );
    Ok(())
});
