//! `for batch in &loader`: each pass is the loader's next epoch, reshuffled
//! from the loader's seed, its generator or the current generator, and a
//! hand-written loop resumes exactly with `set_epoch`.

mod common;

use common::cpu;
use lam::prelude::*;
use lam::rng::{self, Generator};
use lam_train::data::{DataLoader, TensorDataset};

/// Sample `i` has the feature `i`, so a batch's values are its indices.
fn numbered(n: usize) -> TensorDataset {
    TensorDataset::from_classes((0..n).map(|v| v as f32).collect(), &[1], vec![0; n]).expect("data")
}

/// The sample order of one pass of `batches`.
fn order(batches: impl IntoIterator<Item = Result<(Tensor, Tensor)>>) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for batch in batches {
        let (x, _) = batch?;
        out.extend(x.to_vec()?.into_iter().map(|v| v as usize));
    }
    Ok(out)
}

#[test]
fn each_pass_over_a_seeded_loader_is_the_next_epoch() -> Result<()> {
    let loader = DataLoader::new(numbered(20), 6, &cpu())?
        .shuffle(true)
        .seed(7);
    assert_eq!(loader.next_epoch(), 0);
    let mut passes = Vec::new();
    for _ in 0..3 {
        passes.push(order(&loader)?);
    }
    assert_eq!(loader.next_epoch(), 3);
    for (e, pass) in passes.iter().enumerate() {
        assert_eq!(pass, &loader.epoch_order(e as u64), "pass {e} is epoch {e}");
        let mut sorted = pass.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>(), "every sample once");
    }
    assert_ne!(passes[0], passes[1], "reshuffled every epoch");
    assert_ne!(passes[1], passes[2]);
    // `epoch(e)` reads any epoch and leaves the count alone.
    assert_eq!(order(loader.epoch(1))?, passes[1]);
    assert_eq!(loader.next_epoch(), 3);

    // A loop resumed after one finished epoch sees what the first one saw.
    let resumed = DataLoader::new(numbered(20), 6, &cpu())?
        .shuffle(true)
        .seed(7);
    resumed.set_epoch(1);
    assert_eq!(order(&resumed)?, passes[1]);
    assert_eq!(order(resumed.iter())?, passes[2]);

    // A clone starts from the original's count and counts on its own.
    let copy = loader.clone();
    assert_eq!(order(&copy)?, loader.epoch_order(3));
    assert_eq!((copy.next_epoch(), loader.next_epoch()), (4, 3));
    Ok(())
}

#[test]
fn passes_draw_their_shuffles_from_the_loaders_generator_or_the_current_one() -> Result<()> {
    let passes = |loader: &DataLoader| -> Result<Vec<Vec<usize>>> {
        (0..3).map(|_| order(loader)).collect()
    };
    // The loader's own generator: the same seed, the same passes.
    let g = Generator::new(11);
    let a = passes(
        &DataLoader::new(numbered(16), 5, &cpu())?
            .shuffle(true)
            .generator(&g),
    )?;
    let g = Generator::new(11);
    let b = passes(
        &DataLoader::new(numbered(16), 5, &cpu())?
            .shuffle(true)
            .generator(&g),
    )?;
    assert_eq!(a, b);
    assert!(a[0] != a[1] && a[1] != a[2], "reshuffled every pass: {a:?}");

    // Neither: the current generator, as PyTorch's loader uses the global one.
    let plain = DataLoader::new(numbered(16), 5, &cpu())?.shuffle(true);
    let c = rng::with_generator(&Generator::new(5), || passes(&plain))?;
    // The order is a function of the drawn seed and the epoch number.
    plain.set_epoch(0);
    let d = rng::with_generator(&Generator::new(5), || passes(&plain))?;
    assert_eq!(c, d);
    assert_ne!(c[0], c[1]);

    // In order without shuffling, every pass.
    let ordered = DataLoader::new(numbered(7), 3, &cpu())?;
    assert_eq!(passes(&ordered)?, vec![(0..7).collect::<Vec<_>>(); 3]);
    Ok(())
}

#[test]
fn the_trainer_numbers_its_epochs_whatever_the_loaders_count() -> Result<()> {
    use common::{weight_bits, Mlp};
    use lam_train::trainer::{TrainConfig, Trainer};
    type Weights = Vec<(String, Vec<u32>)>;
    let train = |passes_before: u64| -> Result<(Weights, u64)> {
        let dev = cpu();
        let x = Tensor::from_vec(
            (0..40).map(|v| (v % 7) as f32 / 7.0).collect(),
            &[20, 2],
            &dev,
        )?;
        let y = Tensor::from_vec_i32((0..20).map(|v| v % 2).collect(), &[20], &dev)?;
        let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 6, &dev)?.shuffle(true);
        for _ in 0..passes_before {
            order(&loader)?;
        }
        let model = rng::with_generator(&Generator::new(1), || Mlp::new(2, 4, 2, &dev))?;
        let mut opt = lam::optim::Sgd::new(model.parameters(), 0.1)?;
        let config = TrainConfig {
            epochs: 3,
            quiet: true,
            seed: 9,
            ..Default::default()
        };
        Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
            .config(config)
            .fit(&loader, None)?;
        Ok((weight_bits(&model), loader.next_epoch()))
    };
    let (fresh, count) = train(0)?;
    assert_eq!(count, 0, "fit numbers its epochs itself");
    let (after_passes, count) = train(4)?;
    assert_eq!(count, 4);
    assert_eq!(
        fresh, after_passes,
        "the loader's count changes nothing in fit"
    );
    Ok(())
}
