//! Layers under autocast: every layer whose products run in `F16` trains
//! within f16 rounding of `F32`; convolution blocks (convolution, batch
//! norm, ReLU) run in halves; a convolution keeps halves for its gradient.

use lam::amp;
use lam::nn::Module;
use lam::{DType, Device, Generator, Result, Tensor};

use crate::common;
use crate::conformance;

/// Forward output and parameter gradients of `layer` on `x` (loss: the mean
/// square of the output), under autocast to `dtype`; backward inside the
/// region when `backward_inside` (it runs in the recorded dtypes either way).
fn run_layer(
    layer: &dyn Module,
    x: &Tensor,
    dtype: DType,
    backward_inside: bool,
    output: DType,
) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
    let dev = x.device();
    for p in layer.parameters() {
        p.zero_grad();
    }
    let loss = {
        let _ac = amp::autocast_forced(&dev, dtype)?;
        let y = layer.forward(x)?;
        assert_eq!(y.dtype(), output, "{}: a layer's output", layer.type_name());
        let loss = y.square()?.mean_all()?;
        if backward_inside {
            loss.backward()?;
        }
        (y, loss)
    };
    let (y, loss) = loss;
    if !backward_inside {
        loss.backward()?;
    }
    let mut grads = Vec::new();
    for p in layer.parameters() {
        let g = p.grad().expect("every parameter gets a gradient");
        assert_eq!(
            g.dtype(),
            DType::F32,
            "{}: a parameter's gradient",
            layer.type_name()
        );
        grads.push(g.to_vec()?);
    }
    Ok((y.to_vec()?, grads))
}

/// A layer, the shape of the input it is run on and the dtype of its output
/// under autocast.
type LayerCase = (Box<dyn Module>, Vec<usize>, DType);

// Every layer whose products autocast runs in F16 — the recurrent layers,
// attention, the transformer block, convolutions — trains under it on every
// device: F32 outputs and gradients within f16 rounding of plain F32 ones.
conformance!(every_product_layer_runs_under_autocast, |dev| {
    use lam::nn::{
        Conv1d, Conv2d, MultiheadAttention, RnnConfig, TransformerEncoderLayer, GRU, LSTM, RNN,
    };
    let gen = Generator::new(11);
    let build = || -> Result<Vec<LayerCase>> {
        let two = RnnConfig::default().num_layers(2);
        Ok(vec![
            (
                Box::new(LSTM::with_config(5, 6, two, dev)?),
                vec![4, 3, 5],
                DType::F32,
            ),
            (
                Box::new(LSTM::with_config(
                    5,
                    6,
                    two.bidirectional(true).proj_size(3),
                    dev,
                )?),
                vec![4, 3, 5],
                DType::F32,
            ),
            (
                Box::new(GRU::with_config(5, 6, two, dev)?),
                vec![4, 3, 5],
                DType::F32,
            ),
            (Box::new(RNN::new(5, 6, dev)?), vec![4, 3, 5], DType::F32),
            (
                Box::new(MultiheadAttention::new(8, 2, dev)?),
                vec![5, 2, 8],
                DType::F16,
            ),
            (
                Box::new(TransformerEncoderLayer::new(8, 2, dev)?),
                vec![5, 2, 8],
                DType::F32,
            ),
            (
                Box::new(Conv2d::new(3, 4, 3, dev)?),
                vec![2, 3, 6, 6],
                DType::F16,
            ),
            (
                Box::new(Conv1d::new(3, 4, 3, dev)?),
                vec![2, 3, 7],
                DType::F16,
            ),
        ])
    };
    let layers = lam::rng::with_generator(&gen, build)?;
    for (layer, shape, output) in &layers {
        // Dropout off, so both runs compute the same function.
        layer.eval();
        let x = Tensor::randn_with(shape, dev, &gen)?;
        let (y32, g32) = run_layer(layer.as_ref(), &x, DType::F32, false, DType::F32)?;
        let (y16, g16) = run_layer(layer.as_ref(), &x, DType::F16, false, *output)?;
        let inside = run_layer(layer.as_ref(), &x, DType::F16, true, *output)?;
        assert_eq!(
            (&y16, &g16),
            (&inside.0, &inside.1),
            "backward inside the region"
        );
        let name = layer.type_name();
        let scale = |v: &[f32]| v.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        let near = |a: &[f32], b: &[f32], what: &str| {
            let tol = 2e-2 * scale(b);
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= tol,
                    "{name}: {what}[{k}] is {x} under autocast, {y} in f32 (tolerance {tol})"
                );
            }
        };
        near(&y16, &y32, "output");
        for (k, (a, b)) in g16.iter().zip(&g32).enumerate() {
            near(a, b, &format!("gradient {k}"));
        }
    }
    Ok(())
});

// Under autocast a convolution rounds its image and weight to F16 and
// returns F16 (computed in f32 from the halves, its bias added in f32, the
// output rounded once), as PyTorch's; batch norm and ReLU on halves return
// halves; each keeps halves for its gradient, and the parameters' gradients
// are F32 and close to those of f32 training.
conformance!(autocast_convolution_blocks_run_in_halves, |dev| {
    use lam::nn::functional::{batch_norm, conv2d};
    let gen = Generator::new(5);
    let x = Tensor::randn_with(&[2, 4, 8, 8], dev, &gen)?;
    let w = Tensor::randn_with(&[8, 4, 3, 3], dev, &gen)?.requires_grad_()?;
    let b = Tensor::randn_with(&[8], dev, &gen)?.requires_grad_()?;
    let gamma = Tensor::randn_with(&[8], dev, &gen)?.requires_grad_()?;
    let block = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
        let y = conv2d(x, w, Some(&b), 1, 1, 1, 1)?;
        batch_norm(&y, None, None, Some(&gamma), None, true, 0.1, 1e-5)?.relu()
    };
    let halves = |t: &Tensor| t.detach().to_dtype(DType::F16)?.to_dtype(DType::F32);
    let bits = |t: &Tensor| -> Result<Vec<u16>> {
        Ok(t.to_vec_f16()?.iter().map(|h| h.to_bits()).collect())
    };
    let mut grads = Vec::new();
    for mixed in [false, true] {
        for p in [&w, &b, &gamma] {
            p.zero_grad();
        }
        let _ac = amp::autocast_forced(dev, if mixed { DType::F16 } else { DType::F32 })?;
        let y = conv2d(&x, &w, Some(&b), 1, 1, 1, 1)?;
        let z = block(&x, &w)?;
        if mixed {
            assert_eq!(y.dtype(), DType::F16);
            assert_eq!(z.dtype(), DType::F16);
            // The f32 convolution of the rounded operands, rounded once;
            // batch norm of the halves in f32, rounded once.
            let want = {
                let _off = amp::autocast(dev, DType::F32)?;
                conv2d(&halves(&x)?, &halves(&w)?, Some(&b), 1, 1, 1, 1)?
            };
            // Neighbouring halves where F16 products run on cooperative
            // matrices (see common::assert_same_halves).
            common::assert_same_halves(
                &y.to_dtype(DType::F32)?.to_vec()?,
                &want.to_dtype(DType::F16)?.to_dtype(DType::F32)?.to_vec()?,
                common::f16_products_reassociate(dev),
                "conv2d",
            );
            let bn = |t: &Tensor| batch_norm(t, None, None, Some(&gamma), None, true, 0.1, 1e-5);
            let want = bn(&y.to_dtype(DType::F32)?)?.to_dtype(DType::F16)?;
            assert_eq!(bits(&bn(&y)?)?, bits(&want)?, "batch_norm");
        }
        z.to_dtype(DType::F32)?.square()?.mean_all()?.backward()?;
        let g: Vec<Vec<f32>> = [&w, &b, &gamma]
            .iter()
            .map(|p| {
                let g = p.grad().expect("a gradient");
                assert_eq!(g.dtype(), DType::F32);
                g.to_vec()
            })
            .collect::<Result<_>>()?;
        grads.push(g);
    }
    for (k, (a, e)) in grads[1].iter().zip(&grads[0]).enumerate() {
        let scale = e.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        common::close(a, e, 3e-2 * scale);
        assert!(a.iter().all(|v| v.is_finite()), "gradient {k}");
    }
    Ok(())
});

// What a convolution under autocast keeps: the image and the weight as
// halves. A 1×1 convolution of 512 image elements into 1024 outputs holds
// the halves (1,024 + 64 bytes) and its F16 output (2,048). (What is kept
// is lam-core's choice, the same on every device; a CPU device of its own
// counts exactly, with no other test's buffers.)
#[test]
fn autocast_convolutions_keep_halves() -> Result<()> {
    let dev = Device::new(std::sync::Arc::new(lam_cpu::CpuBackend::new()));
    let x = Tensor::randn(&[2, 4, 8, 8], &dev)?;
    let w = Tensor::randn(&[8, 4, 1, 1], &dev)?.requires_grad_()?;
    let before = dev.stats().bytes_live;
    let _ac = amp::autocast_forced(&dev, DType::F16)?;
    let y = lam::nn::functional::conv2d(&x, &w, None, 1, 0, 1, 1)?;
    assert_eq!(y.dtype(), DType::F16);
    assert_eq!(dev.stats().bytes_live - before, 1024 + 64 + 2048);
    Ok(())
}
