//! Ensembles: hand-checked voting rules, and on the digits data an ensemble
//! of independently seeded MLPs is at least as accurate as its mean member.

mod common;

use common::{cpu, Mlp};
use lam::loss::cross_entropy;
use lam::nn::Module;
use lam::optim::Adam;
use lam::prelude::*;
use lam_train::data::split::stratified_split;
use lam_train::data::DataLoader;
use lam_train::ensemble::{average_probabilities, majority_vote, Ensemble, Voting};
use lam_train::metrics::accuracy;
use lam_train::trainer::{TrainConfig, Trainer};

#[test]
fn voting_rules_by_hand() -> Result<()> {
    assert_eq!(
        majority_vote(&[vec![0, 1, 2], vec![0, 2, 1], vec![1, 2, 0]], 3)?,
        vec![0, 2, 0]
    );
    assert_eq!(
        average_probabilities(&[vec![1.0, 0.0], vec![0.0, 1.0]])?,
        vec![0.5, 0.5]
    );
    assert!(majority_vote(&[vec![0], vec![0, 1]], 2).is_err());
    assert!(majority_vote(&[vec![3]], 2).is_err());
    assert!(average_probabilities(&[]).is_err());
    assert!(Ensemble::new(vec![], Voting::Soft).is_err());
    Ok(())
}

#[test]
fn ensemble_is_a_module() -> Result<()> {
    let dev = cpu();
    let members: Vec<Box<dyn Module>> = (0..3)
        .map(|_| Ok(Box::new(Mlp::new(4, 5, 3, &dev)?) as Box<dyn Module>))
        .collect::<Result<_>>()?;
    let ens = Ensemble::new(members, Voting::Soft)?;
    assert_eq!(ens.state_dict().len(), 12);
    assert!(ens.state_dict()[4].0.starts_with("1.fc1"));
    let x = Tensor::randn(&[6, 4], &dev)?;
    let p = ens.predict_proba(&x)?.to_vec()?;
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert_eq!(ens.forward(&x)?.dims(), &[6, 3]);
    assert_eq!(ens.predict(&x)?.len(), 6);
    assert!(ens.forward(&Tensor::randn(&[6, 5], &dev)?).is_err());
    Ok(())
}

#[test]
fn ensemble_beats_its_mean_member_on_digits() -> Result<()> {
    let dev = cpu();
    let data = lam_train::datasets::digits(lam_train::datasets::digits_path())?;
    let labels = data.labels().expect("classes").to_vec();
    let (train_idx, test_idx) = stratified_split(&labels, 0.3, 17)?;
    let scale = |d: lam_train::data::TensorDataset| -> Result<_> {
        let x = d.features_tensor(&dev)?.div_scalar(16.0)?;
        d.with_features(&x)
    };
    let train = scale(data.select(&train_idx)?)?;
    let test = scale(data.select(&test_idx)?)?;
    let x_test = test.features_tensor(&dev)?;
    let y_test = test.labels().expect("classes").to_vec();

    // Weak, different members: few epochs, small hidden layer, own seeds.
    let mut members: Vec<Box<dyn Module>> = Vec::new();
    let mut member_acc = Vec::new();
    for seed in 0..5u64 {
        manual_seed(100 + seed);
        let model = Mlp::new(64, 12, 10, &dev)?;
        let mut opt = Adam::new(model.parameters(), 3e-3)?;
        let loader = DataLoader::new(train.clone(), 32, &dev)?
            .shuffle(true)
            .seed(seed);
        let config = TrainConfig {
            epochs: 3,
            quiet: true,
            ..TrainConfig::default()
        };
        Trainer::new(&model, &mut opt, cross_entropy)
            .config(config)
            .fit(&loader, None)?;
        model.eval();
        let pred = no_grad(|| model.forward(&x_test)?.argmax(-1, false)?.to_vec_i32())?;
        member_acc.push(accuracy(&y_test, &pred)?);
        members.push(Box::new(model));
    }
    let mean = member_acc.iter().sum::<f64>() / member_acc.len() as f64;
    let soft = Ensemble::new(members, Voting::Soft)?;
    let soft_acc = accuracy(&y_test, &soft.predict(&x_test)?)?;
    assert!(
        soft_acc >= mean,
        "soft {soft_acc} < mean member {mean} ({member_acc:?})"
    );
    let hard = soft.with_voting(Voting::Hard);
    let hard_acc = accuracy(&y_test, &hard.predict(&x_test)?)?;
    assert!(
        hard_acc >= mean,
        "hard {hard_acc} < mean member {mean} ({member_acc:?})"
    );
    assert!(mean > 0.5, "members learned something: {member_acc:?}");
    Ok(())
}
