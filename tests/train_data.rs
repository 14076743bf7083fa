//! Integer features end to end, on every backend: token ids (`I32 [B, T]`)
//! through `TensorDataset` and `DataLoader` into an `Embedding` model that
//! must learn, trained by the `Trainer` with class-id targets and
//! cross-entropy, and by a hand-written `for batch in &loader` loop with
//! `F32 [B, 1]` targets and binary cross-entropy, gradient clipping and a
//! progress bar; and a next-token model trained on `I32 [B, T]` targets —
//! all from `lam_train::prelude`.

mod common;

use lam_train::prelude::*;

const VOCAB: usize = 10;
const LEN: usize = 5;
const SAMPLES: usize = 64;

/// Sequences of `LEN` token ids; the label is 1 when most of the tokens
/// are "high" (≥ VOCAB / 2). Drawn from a fixed LCG, the same everywhere.
fn sequences() -> (Vec<i32>, Vec<i32>) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % VOCAB as u64) as i32
    };
    let ids: Vec<i32> = (0..SAMPLES * LEN).map(|_| next()).collect();
    let labels = ids
        .chunks(LEN)
        .map(|s| i32::from(s.iter().filter(|&&t| t >= VOCAB as i32 / 2).count() > LEN / 2))
        .collect();
    (ids, labels)
}

/// Embedding → mean over the sequence → Linear: a bag of words.
#[derive(Module)]
struct BagOfWords {
    embed: nn::Embedding,
    out: nn::Linear,
}

impl BagOfWords {
    fn new(outputs: usize, dev: &Device) -> Result<BagOfWords> {
        Ok(BagOfWords {
            embed: nn::Embedding::new(VOCAB, 8, dev)?,
            out: nn::Linear::new(8, outputs, dev)?,
        })
    }
}

impl Module for BagOfWords {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.embed.forward(ids)?.mean(1, false)?)
    }
}

conformance!(
    an_embedding_model_learns_from_token_ids_with_the_trainer,
    |dev| {
        manual_seed(1);
        let (ids, labels) = sequences();
        let x = Tensor::from_vec_i32(ids, &[SAMPLES, LEN], dev)?;
        let y = Tensor::from_vec_i32(labels, &[SAMPLES], dev)?;
        let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 16, dev)?
            .shuffle(true)
            .seed(3);
        let (xb, yb) = loader.epoch(0).next().expect("a batch")?;
        assert_eq!((xb.dtype(), xb.dims()), (DType::I32, &[16, LEN][..]));
        assert_eq!((yb.dtype(), yb.dims()), (DType::I32, &[16][..]));

        let model = BagOfWords::new(2, dev)?;
        let mut opt = optim::Adam::new(model.parameters(), 0.05)?;
        let config = TrainConfig {
            epochs: 25,
            quiet: true,
            clip_grad: Some(GradClip::norm(1.0)),
            ..Default::default()
        };
        let report = Trainer::new(&model, &mut opt, loss::cross_entropy)
            .config(config)
            .fit(&loader, None)?;
        let first = report.history.records[0].train_loss;
        let scores = evaluate(&model, &loader, &loss::cross_entropy)?;
        assert!(scores.loss < first / 3.0, "loss {first} → {}", scores.loss);
        let accuracy = scores.accuracy.expect("a classifier");
        assert!(accuracy >= 0.95, "accuracy {accuracy}");
        Ok(())
    }
);

conformance!(
    a_hand_written_loop_over_the_loader_learns_with_binary_targets,
    |dev| {
        manual_seed(2);
        let (ids, labels) = sequences();
        let x = Tensor::from_vec_i32(ids, &[SAMPLES, LEN], dev)?;
        let flags: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let y = Tensor::from_vec(flags, &[SAMPLES], dev)?;
        let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 16, dev)?.shuffle(true);

        let model = BagOfWords::new(1, dev)?;
        let mut opt = optim::Adam::new(model.parameters(), 0.05)?;
        let mut losses = Vec::new();
        for epoch in 1..=25 {
            let mut sum = 0.0;
            for batch in progress(&loader).desc(format!("epoch {epoch}")) {
                let (x, y) = batch?;
                assert_eq!((y.dtype(), y.dims()), (DType::F32, &[16, 1][..]));
                let loss = loss::binary_cross_entropy_with_logits(&model.forward(&x)?, &y)?;
                opt.zero_grad();
                loss.backward()?;
                optim::clip_grad_norm(&model.parameters(), 1.0, 2.0)?;
                opt.step()?;
                sum += loss.item()?;
            }
            losses.push(sum / loader.num_batches() as f32);
        }
        assert_eq!(loader.next_epoch(), 25, "one loader epoch per pass");
        let (first, last) = (losses[0], losses[losses.len() - 1]);
        assert!(last < first / 3.0, "loss {first} → {last}");
        let logits = no_grad(|| model.forward(&x))?.to_vec()?;
        let correct = logits
            .iter()
            .zip(&labels)
            .filter(|(&z, &l)| i32::from(z > 0.0) == l)
            .count();
        assert!(
            correct as f32 >= 0.95 * SAMPLES as f32,
            "{correct}/{SAMPLES} right"
        );
        Ok(())
    }
);

/// Embedding → Linear at each position: next-token logits `[B, T, VOCAB]`.
#[derive(Module)]
struct Bigram {
    embed: nn::Embedding,
    out: nn::Linear,
}

impl Module for Bigram {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.embed.forward(ids)?)
    }
}

conformance!(a_next_token_model_learns_from_i32_sequence_targets, |dev| {
    manual_seed(3);
    // Each token is followed by the next id (mod VOCAB): a bigram table learns it.
    let (ids, _) = sequences();
    let next: Vec<i32> = ids.iter().map(|&t| (t + 1) % VOCAB as i32).collect();
    let x = Tensor::from_vec_i32(ids, &[SAMPLES, LEN], dev)?;
    let y = Tensor::from_vec_i32(next, &[SAMPLES, LEN], dev)?;
    let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 16, dev)?
        .shuffle(true)
        .seed(5);
    let (_, yb) = loader.epoch(0).next().expect("a batch")?;
    assert_eq!((yb.dtype(), yb.dims()), (DType::I32, &[16, LEN][..]));

    let model = Bigram {
        embed: nn::Embedding::new(VOCAB, 8, dev)?,
        out: nn::Linear::new(8, VOCAB, dev)?,
    };
    let mut opt = optim::Adam::new(model.parameters(), 0.05)?;
    // [B, T, V] logits against [B, T] ids: one row per position.
    let per_position = |logits: &Tensor, next: &Tensor| {
        loss::cross_entropy(
            &logits.reshape(&[-1, VOCAB as isize])?,
            &next.reshape(&[-1])?,
        )
    };
    let config = TrainConfig {
        epochs: 15,
        quiet: true,
        ..Default::default()
    };
    let report = Trainer::new(&model, &mut opt, per_position)
        .config(config)
        .fit(&loader, None)?;
    let losses: Vec<f64> = report
        .history
        .records
        .iter()
        .map(|r| r.train_loss)
        .collect();
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < first / 5.0, "loss {first} → {last}");
    let predicted = no_grad(|| model.forward(&x)?.argmax(-1, false))?;
    assert_eq!(
        predicted.to_vec_i32()?,
        y.to_vec_i32()?,
        "every next token right"
    );
    Ok(())
});
