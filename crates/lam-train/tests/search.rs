//! Hyper-parameter search (`lam_train::search`).
//!
//! - The per-fold scores of every candidate equal a hand-written loop over
//!   the same stratified folds.
//! - A linear softmax model trained to convergence with a grid of L2
//!   strengths finds scikit-learn's `GridSearchCV(LogisticRegression)` best
//!   strength and ranking on the same folds (`fixtures/search/logistic.json`,
//!   by `fixtures/make_search_fixtures.py`).
//! - Spaces: grids in declared order, seeded draws inside their ranges,
//!   ranks with ties, the CSV table, and errors for what cannot be searched.

mod common;

use common::{blobs, cpu, f32s, f64s, fixture, Mlp, Scratch};
use lam::prelude::*;
use lam_train::data::split::{stratified_k_fold, Fold};
use lam_train::data::DataLoader;
use lam_train::search::{
    cross_val_score, grid_search, random_search, search, Params, Space, Value,
};
use lam_train::trainer::{evaluate, TrainConfig, Trainer};

/// Trains an MLP with `params` on `fold.train` of `data`, returns the
/// validation accuracy.
fn fit_and_score(
    data: &lam_train::data::TensorDataset,
    params: &Params,
    fold: &Fold,
) -> lam::Result<f64> {
    let dev = cpu();
    lam::manual_seed(11);
    let model = Mlp::new(2, params.usize("hidden")?, 3, &dev)?;
    let mut opt = lam::optim::Adam::new(model.parameters(), params.f64("lr")? as f32)?;
    let train = DataLoader::new(data.select(&fold.train)?, 16, &dev)?
        .shuffle(true)
        .seed(5);
    let val = DataLoader::new(data.select(&fold.validation)?, 64, &dev)?;
    Trainer::new(&model, &mut opt, lam::loss::cross_entropy)
        .config(TrainConfig {
            epochs: 2,
            quiet: true,
            ..TrainConfig::default()
        })
        .fit(&train, None)?;
    let scores = evaluate(&model, &val, &lam::loss::cross_entropy)?;
    scores
        .accuracy
        .ok_or_else(|| Error::invalid("test", "a classifier has an accuracy"))
}

#[test]
fn per_fold_scores_equal_a_hand_written_loop() -> lam::Result<()> {
    let data = blobs(15, 4);
    let labels = data.labels().expect("labels").to_vec();
    let folds = stratified_k_fold(&labels, 3, 9)?;
    let space = Space::new()
        .values("lr", [0.003, 0.05])
        .values("hidden", [4usize, 16]);
    let results = grid_search(&space, &folds, |p, fold| fit_and_score(&data, p, fold))?;
    assert_eq!(results.rows.len(), 4);
    let mut checked = 0;
    for lr in [0.003, 0.05] {
        for hidden in [4usize, 16] {
            let params = Params::new([("lr", Value::from(lr)), ("hidden", Value::from(hidden))]);
            let mut by_hand = Vec::new();
            for fold in &folds {
                by_hand.push(fit_and_score(&data, &params, fold)?);
            }
            let row = results
                .rows
                .iter()
                .find(|r| r.params == params)
                .expect("every candidate has a row");
            assert_eq!(row.split_scores, by_hand, "{params}");
            let mean = by_hand.iter().sum::<f64>() / 3.0;
            assert_eq!(row.mean, mean);
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
    // cross_val_score is the same loop for one configuration.
    let params = &results.best().params;
    let scores = cross_val_score(&folds, |fold| fit_and_score(&data, params, fold))?;
    assert_eq!(scores, results.best().split_scores);
    // The rows are best first, and the best learns the blobs.
    assert!(results.rows.windows(2).all(|w| w[0].mean >= w[1].mean));
    assert!(results.best().mean > 0.8, "{results}");
    Ok(())
}

/// A linear softmax model `x W + b` trained to convergence (full batch,
/// Nesterov momentum) on the sum of cross-entropies + ||W||² / 2C, divided by
/// the number of samples; returns the validation log-loss, negated.
fn logistic_score(x: &Tensor, y: &[i32], c: f64, fold: &Fold) -> lam::Result<f64> {
    let dev = x.device();
    let take = |rows: &[usize]| -> lam::Result<(Tensor, Tensor)> {
        let idx: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let labels: Vec<i32> = rows.iter().map(|&r| y[r]).collect();
        Ok((
            x.index_select(0, &Tensor::from_vec_i32(idx, &[rows.len()], &dev)?)?,
            Tensor::from_vec_i32(labels, &[rows.len()], &dev)?,
        ))
    };
    let (xt, yt) = take(&fold.train)?;
    let (xv, yv) = take(&fold.validation)?;
    let n = fold.train.len() as f32;
    let w = Tensor::zeros(&[4, 3], &dev)?.requires_grad_()?;
    let b = Tensor::zeros(&[3], &dev)?.requires_grad_()?;
    // 1/L: the cross-entropy's curvature is at most half the trace of the
    // standardized features' covariance (2), the penalty's 1/(C n).
    let lr = 1.0 / (2.0 + 1.0 / (c as f32 * n));
    let mut opt = lam::optim::Sgd::new(vec![w.clone(), b.clone()], lr)?
        .momentum(0.9)
        .nesterov(true);
    let mut converged = false;
    for step in 0..4000 {
        opt.zero_grad();
        let logits = xt.matmul(&w)?.add(&b)?;
        let penalty = w.square()?.sum_all()?.mul_scalar(0.5 / (c as f32 * n))?;
        lam::loss::cross_entropy(&logits, &yt)?
            .add(&penalty)?
            .backward()?;
        if step % 100 == 99 {
            let g = [w.grad(), b.grad()]
                .into_iter()
                .flatten()
                .flat_map(|g| g.to_vec().expect("read"))
                .fold(0.0f32, |m, v| m.max(v.abs()));
            if g < 1e-6 {
                converged = true;
                break;
            }
        }
        opt.step()?;
    }
    assert!(converged, "C = {c} did not converge");
    let logits = no_grad(|| xv.matmul(&w)?.add(&b))?;
    Ok(-f64::from(lam::loss::cross_entropy(&logits, &yv)?.item()?))
}

#[test]
fn l2_grid_matches_sklearn_grid_search_cv() -> lam::Result<()> {
    let doc = fixture("search/logistic.json");
    let dev = cpu();
    let shape: Vec<usize> = common::i32s(&doc["x"]["shape"])
        .iter()
        .map(|&d| d as usize)
        .collect();
    let x = Tensor::from_vec(f32s(&doc["x"]["data"]), &shape, &dev)?;
    let y = common::i32s(&doc["y"]);
    let folds: Vec<Fold> = doc["folds"]
        .as_array()
        .expect("folds")
        .iter()
        .map(|f| Fold {
            train: common::i32s(&f["train"])
                .iter()
                .map(|&i| i as usize)
                .collect(),
            validation: common::i32s(&f["validation"])
                .iter()
                .map(|&i| i as usize)
                .collect(),
        })
        .collect();
    let grid = f64s(&doc["C"]);
    let space = Space::new().values("C", grid.clone());
    let results = grid_search(&space, &folds, |p, fold| {
        logistic_score(&x, &y, p.f64("C")?, fold)
    })?;
    let want_means = f64s(&doc["mean_test_score"]);
    let want_ranks = common::i32s(&doc["rank_test_score"]);
    let want_splits: Vec<Vec<f64>> = doc["split_test_scores"]
        .as_array()
        .expect("splits")
        .iter()
        .map(f64s)
        .collect();
    for (i, c) in grid.iter().enumerate() {
        let row = results
            .rows
            .iter()
            .find(|r| r.params.f64("C").ok() == Some(*c))
            .expect("a row per C");
        assert!(
            (row.mean - want_means[i]).abs() < 1e-4,
            "C = {c}: mean {} vs scikit-learn's {}",
            row.mean,
            want_means[i]
        );
        for (k, split) in want_splits.iter().enumerate() {
            assert!(
                (row.split_scores[k] - split[i]).abs() < 1e-4,
                "C = {c}, fold {k}"
            );
        }
        assert_eq!(row.rank as i32, want_ranks[i], "C = {c}: {results}");
    }
    assert_eq!(
        results.best().params.f64("C")?,
        doc["best_C"].as_f64().expect("best C")
    );
    Ok(())
}

#[test]
fn spaces_grids_and_draws() -> lam::Result<()> {
    let space = Space::new()
        .values("hidden", [32usize, 64])
        .values("optimizer", ["adam", "sgd"])
        .values("augment", [false, true]);
    let grid = space.grid()?;
    assert_eq!(grid.len(), 8);
    assert_eq!(
        grid[0].to_string(),
        "hidden=32, optimizer=adam, augment=false"
    );
    assert_eq!(
        grid[1].to_string(),
        "hidden=32, optimizer=adam, augment=true"
    );
    assert_eq!(
        grid[7].to_string(),
        "hidden=64, optimizer=sgd, augment=true"
    );
    assert_eq!(grid[6].text("optimizer")?, "sgd");
    assert!(grid[5].bool("augment")?);

    let space = Space::new()
        .log_uniform("lr", 1e-4, 1e-1)
        .uniform("dropout", 0.0, 0.5)
        .int_range("batch", 16, 18)
        .values("weight_decay", [0.0, 1e-4]);
    let draws = space.sample(400, 3)?;
    assert_eq!(draws, space.sample(400, 3)?);
    assert_ne!(draws, space.sample(400, 4)?);
    let lrs: Vec<f64> = draws.iter().map(|p| p.f64("lr").expect("lr")).collect();
    assert!(lrs.iter().all(|&l| (1e-4..1e-1).contains(&l)));
    // Log-uniform: each decade gets about a third of the draws.
    let low_decade = lrs.iter().filter(|&&l| l < 1e-3).count();
    assert!(
        (100..170).contains(&low_decade),
        "{low_decade} of 400 below 1e-3"
    );
    let mut batches: Vec<usize> = draws.iter().map(|p| p.usize("batch").expect("b")).collect();
    batches.sort_unstable();
    batches.dedup();
    assert_eq!(batches, [16, 17, 18]);
    assert!(draws
        .iter()
        .all(|p| (0.0..0.5).contains(&p.f64("dropout").expect("dropout"))));

    // A random search tries exactly the draws.
    let folds = stratified_k_fold(&[0, 0, 1, 1, 0, 1], 2, 0)?;
    let results = random_search(&space, 5, 3, &folds, |p, _| p.f64("lr"))?;
    let mut tried: Vec<f64> = results.rows.iter().map(|r| r.mean).collect();
    tried.sort_by(f64::total_cmp);
    let mut drawn: Vec<f64> = space
        .sample(5, 3)?
        .iter()
        .map(|p| p.f64("lr").expect("lr"))
        .collect();
    drawn.sort_by(f64::total_cmp);
    assert_eq!(tried, drawn);
    Ok(())
}

#[test]
fn ranks_ties_and_the_table() -> lam::Result<()> {
    let folds = stratified_k_fold(&[0, 1, 0, 1], 2, 0)?;
    let space = Space::new().values("k", [0i64, 1, 2, 3]);
    // Means 0.5, 1.0, 1.0, NaN.
    let results = search(space.grid()?, &folds, |p, fold| {
        Ok(match p.usize("k")? {
            0 => 0.5,
            3 => f64::NAN,
            _ => 1.0 + fold.validation.len() as f64 * 0.0,
        })
    })?;
    let ranks: Vec<(usize, usize)> = results
        .rows
        .iter()
        .map(|r| (r.params.usize("k").expect("k"), r.rank))
        .collect();
    assert_eq!(ranks, [(1, 1), (2, 1), (0, 3), (3, 4)]);
    assert_eq!(results.refit(|p| p.usize("k"))?, 1);
    let dir = Scratch::new("search-csv");
    results.write_csv(dir.path("results.csv"))?;
    let csv = std::fs::read_to_string(dir.path("results.csv")).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "rank,k,mean_score,std_score,split0_score,split1_score,fit_seconds"
    );
    assert!(lines[1].starts_with("1,1,1,0,1,1,"), "{csv}");
    assert_eq!(lines.len(), 5);
    assert!(results.to_string().contains("k=2"));
    Ok(())
}

#[test]
fn what_cannot_be_searched_is_an_error() {
    let message = |r: lam::Result<Vec<Params>>| r.expect_err("an error").to_string();
    let e = message(Space::new().log_uniform("lr", 1e-3, 1e-1).grid());
    assert!(e.contains("a grid needs a list of values"), "{e}");
    let e = message(Space::new().grid());
    assert!(e.contains("no hyper-parameters"), "{e}");
    let e = message(Space::new().log_uniform("lr", 0.0, 1.0).sample(1, 0));
    assert!(e.contains("0 < low < high"), "{e}");
    let e = message(Space::new().values::<f64>("x", []).grid());
    assert!(e.contains("`x`"), "{e}");
    let p = Params::new([("hidden", Value::from("big"))]);
    let e = p.usize("hidden").expect_err("a word").to_string();
    assert!(e.contains("expected a whole number"), "{e}");
    let e = p.f64("lr").expect_err("missing").to_string();
    assert!(e.contains("no hyper-parameter `lr`"), "{e}");
    let folds = stratified_k_fold(&[0, 1, 0, 1], 2, 0).expect("folds");
    let e = search(vec![p], &folds, |_, _| {
        Err(Error::invalid("fit", "diverged"))
    })
    .expect_err("a failing fit")
    .to_string();
    assert!(
        e.contains("candidate hidden=big") && e.contains("diverged"),
        "{e}"
    );
    let e = cross_val_score(&[], |_| Ok(1.0))
        .expect_err("no folds")
        .to_string();
    assert!(e.contains("no folds"), "{e}");
}
