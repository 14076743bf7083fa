//! Scalers and filters against scikit-learn / SciPy / NumPy
//! (fixtures/gen_preprocess.py), scaler save/load, and augmentation.

mod common;

use common::{assert_all_close, cpu, f32s, fixture, Scratch};
use lam::prelude::*;
use lam_train::data::{DataLoader, TensorDataset};
use lam_train::preprocess::*;
use serde_json::Value;

fn tensor(v: &Value, dev: &Device) -> Result<Tensor> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    Tensor::from_vec(f32s(&v["data"]), &shape, dev)
}

fn as_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_vec()?.into_iter().map(f64::from).collect())
}

fn expect(v: &Value) -> Vec<f64> {
    f32s(&v["data"]).into_iter().map(f64::from).collect()
}

#[test]
fn scalers_match_sklearn() -> Result<()> {
    let dev = cpu();
    let fx = fixture("preprocess/scalers.json");
    let (train, test) = (tensor(&fx["train"], &dev)?, tensor(&fx["test"], &dev)?);
    let mut scalers: Vec<(&str, Box<dyn Scaler>)> = vec![
        ("min_max", Box::new(MinMaxScaler::new())),
        ("min_max_symmetric", Box::new(MinMaxScaler::symmetric())),
        ("standard", Box::new(Standardizer::new())),
    ];
    for (name, s) in &mut scalers {
        let fitted = s.fit_transform(&train)?;
        assert_all_close(
            &format!("{name} train"),
            &as_f64(&fitted)?,
            &expect(&fx[*name]["train"]),
            1e-5,
        );
        assert_all_close(
            &format!("{name} test"),
            &as_f64(&s.transform(&test)?)?,
            &expect(&fx[*name]["test"]),
            1e-5,
        );
        let back = s.inverse_transform(&fitted)?;
        assert_all_close(
            &format!("{name} inverse"),
            &as_f64(&back)?,
            &as_f64(&train)?,
            1e-5,
        );
        let mut host = test.to_vec()?;
        s.transform_slice(&mut host)?;
        assert_all_close(
            &format!("{name} slice"),
            &host.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &expect(&fx[*name]["test"]),
            1e-5,
        );
    }
    Ok(())
}

#[test]
fn scalers_save_and_load_exactly() -> Result<()> {
    let dev = cpu();
    let dir = Scratch::new("scaler");
    let x = Tensor::from_vec(vec![1.0, -2.0, 0.3, 4.0, 5.5, 0.1], &[3, 2], &dev)?;
    let mut mm = MinMaxScaler::with_range(-2.0, 3.0)?;
    mm.fit(&x)?;
    let mut st = Standardizer::new();
    st.fit(&x)?;
    mm.save(&dir.path("mm.json"))?;
    st.save(&dir.path("st.json"))?;
    assert_eq!(MinMaxScaler::load(&dir.path("mm.json"))?, mm);
    assert_eq!(Standardizer::load(&dir.path("st.json"))?, st);
    let loaded = load_scaler(&dir.path("st.json"))?;
    assert_eq!(loaded.transform(&x)?.to_vec()?, st.transform(&x)?.to_vec()?);
    // Wrong kind, broken file, wrong shape, unfitted: errors.
    assert!(matches!(
        Standardizer::load(&dir.path("mm.json")),
        Err(Error::Format { .. })
    ));
    std::fs::write(
        dir.path("bad.json"),
        "{\"kind\": \"standard\", \"shape\": [3]",
    )
    .expect("write");
    assert!(matches!(
        load_scaler(&dir.path("bad.json")),
        Err(Error::Format { .. })
    ));
    assert!(st.transform(&Tensor::zeros(&[2, 3], &dev)?).is_err());
    assert!(Standardizer::new().transform(&x).is_err());
    assert!(MinMaxScaler::with_range(1.0, 1.0).is_err());
    assert!(Standardizer::new()
        .fit(&Tensor::from_vec(vec![f32::NAN, 1.0], &[2, 1], &dev)?)
        .is_err());
    Ok(())
}

#[test]
fn filters_match_scipy() -> Result<()> {
    let dev = cpu();
    let fx = fixture("preprocess/filters.json");
    let images = tensor(&fx["images"], &dev)?;
    let gray = tensor(&fx["gray"], &dev)?;
    let noisy = tensor(&fx["noisy"], &dev)?;
    let blur = gaussian_blur(&images, 1.0)?;
    assert_eq!(blur.dims(), images.dims());
    assert_all_close(
        "gaussian σ=1",
        &as_f64(&blur)?,
        &expect(&fx["gaussian_sigma1"]),
        1e-5,
    );
    assert_all_close(
        "gaussian σ=0.6",
        &as_f64(&gaussian_blur(&gray, 0.6)?)?,
        &expect(&fx["gaussian_sigma0_6_gray"]),
        1e-5,
    );
    assert_all_close(
        "median 3",
        &as_f64(&median_filter(&noisy, 3)?)?,
        &expect(&fx["median3"]),
        0.0,
    );
    assert_all_close(
        "median 5",
        &as_f64(&median_filter(&gray, 5)?)?,
        &expect(&fx["median5_gray"]),
        0.0,
    );
    let series = f32s(&fx["series"]["data"]);
    let ma: Vec<f64> = moving_average(&series, 5)?
        .into_iter()
        .map(f64::from)
        .collect();
    assert_all_close("moving average", &ma, &expect(&fx["moving_average5"]), 1e-6);
    let t = Tensor::from_vec(series.clone(), &[1, series.len()], &dev)?;
    assert_eq!(moving_average_tensor(&t, 5)?.dims(), &[1, series.len() - 4]);
    // Bad arguments.
    assert!(gaussian_blur(&images, 0.0).is_err());
    assert!(median_filter(&images, 2).is_err());
    assert!(
        median_filter(&Tensor::zeros(&[4, 4], &dev)?, 3).is_err(),
        "rank 2 is not a batch"
    );
    assert!(moving_average(&series, 0).is_err());
    assert!(moving_average(&series[..3], 4).is_err());
    assert!(moving_average_tensor(&Tensor::zeros(&[2, 3], &dev)?, 4).is_err());
    Ok(())
}

#[test]
fn warp_affine_known_values() -> Result<()> {
    // A 3×3 plane: identity, a 90° turn (exact at integer points), a shift.
    let p: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    assert_eq!(warp_affine(&p, 3, 3, 0.0, 1.0, 0.0, 0.0)?, p);
    let turned = warp_affine(&p, 3, 3, std::f32::consts::FRAC_PI_2, 1.0, 0.0, 0.0)?;
    let want = [3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0];
    for (g, w) in turned.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{turned:?}");
    }
    let shifted = warp_affine(&p, 3, 3, 0.0, 1.0, 0.0, 1.0)?;
    assert_eq!(shifted, vec![0.0, 1.0, 2.0, 0.0, 4.0, 5.0, 0.0, 7.0, 8.0]);
    let half = warp_affine(&p, 3, 3, 0.0, 1.0, 0.5, 0.0)?;
    assert!(
        (half[4] - 3.5).abs() < 1e-6,
        "bilinear halfway between 2 and 5: {half:?}"
    );
    assert!(warp_affine(&p, 2, 3, 0.0, 1.0, 0.0, 0.0).is_err());
    assert!(warp_affine(&p, 3, 3, 0.0, 0.0, 0.0, 0.0).is_err());
    Ok(())
}

#[test]
fn augmentation_is_seeded_and_shape_preserving() -> Result<()> {
    let dev = cpu();
    let x = Tensor::rand(&[4, 1, 8, 8], &dev)?;
    let aug = Augment::new()
        .rotate(15.0)
        .scale(0.9, 1.1)
        .translate(0.1)
        .random_crop(1)
        .hflip(0.5)
        .noise(0.05);
    let a = aug.apply_tensor(&x, 1)?;
    assert_eq!(a.dims(), x.dims());
    assert_eq!(
        a.to_vec()?,
        aug.apply_tensor(&x, 1)?.to_vec()?,
        "same seed, same result"
    );
    assert_ne!(a.to_vec()?, aug.apply_tensor(&x, 2)?.to_vec()?);
    assert_ne!(a.to_vec()?, x.to_vec()?);
    assert_eq!(
        Augment::new().apply_tensor(&x, 3)?.to_vec()?,
        x.to_vec()?,
        "identity pipeline"
    );

    // Flipping with p = 1 twice gives the image back; [N, H, W] works too.
    let g = Tensor::rand(&[2, 3, 5], &dev)?;
    let flip = Augment::new().hflip(1.0).vflip(1.0);
    assert_eq!(
        flip.apply_tensor(&flip.apply_tensor(&g, 0)?, 9)?.to_vec()?,
        g.to_vec()?
    );
    let once = flip.apply_tensor(&g, 0)?.to_vec()?;
    assert_eq!(
        once[0],
        g.to_vec()?[14],
        "both flips move the last pixel first"
    );

    // Noise has the asked-for spread.
    let zeros = Tensor::zeros(&[64, 1, 8, 8], &dev)?;
    let noisy = Augment::new()
        .noise(0.5)
        .apply_tensor(&zeros, 4)?
        .to_vec()?;
    let var = noisy.iter().map(|v| (v * v) as f64).sum::<f64>() / noisy.len() as f64;
    assert!((var.sqrt() - 0.5).abs() < 0.03, "std {}", var.sqrt());

    assert!(Augment::new().hflip(2.0).apply_tensor(&x, 0).is_err());
    assert!(Augment::new().scale(0.0, 1.0).apply_tensor(&x, 0).is_err());
    assert!(Augment::new()
        .apply_tensor(&Tensor::zeros(&[8], &dev)?, 0)
        .is_err());
    Ok(())
}

#[test]
fn augmentation_runs_inside_the_loader() -> Result<()> {
    let dev = cpu();
    let data = TensorDataset::from_classes(vec![1.0; 6 * 16], &[1, 4, 4], vec![0; 6])?;
    let loader = DataLoader::new(data, 3, &dev)?
        .seed(5)
        .transform(Augment::new().noise(0.1));
    let first: Vec<Vec<f32>> = loader
        .epoch(0)
        .map(|b| b.and_then(|(x, _)| x.to_vec()))
        .collect::<Result<_>>()?;
    let again: Vec<Vec<f32>> = loader
        .epoch(0)
        .map(|b| b.and_then(|(x, _)| x.to_vec()))
        .collect::<Result<_>>()?;
    assert_eq!(first, again);
    assert!(first[0].iter().any(|&v| v != 1.0));
    Ok(())
}

#[test]
fn imputer_misuse_is_an_error_naming_the_problem() -> Result<()> {
    let nan = f32::NAN;
    let mut mean = Imputer::new(Impute::Mean);
    let mut data = [1.0, nan, 3.0, nan];
    let msg = |r: Result<()>| r.expect_err("an error").to_string();
    assert!(msg(mean.transform_slice(&mut data)).contains("not fitted"));
    // A feature the training data never shows has no mean (a constant needs none).
    assert!(msg(mean.fit_slice(&data, &[2])).contains("feature 1 has no value"));
    let mut constant = Imputer::new(Impute::Constant(0.5));
    constant.fit_slice(&data, &[2])?;
    constant.transform_slice(&mut data)?;
    assert_eq!(data, [1.0, 0.5, 3.0, 0.5]);
    assert!(msg(Imputer::new(Impute::Constant(nan)).fit_slice(&data, &[2])).contains("finite"));
    // Only NaN is missing; shapes must match.
    assert!(msg(mean.fit_slice(&[1.0, f32::INFINITY], &[2])).contains("only NaN"));
    assert!(msg(mean.fit_slice(&[1.0, 2.0, 3.0], &[2])).contains("samples of shape"));
    mean.fit_slice(&[1.0, 2.0, 3.0, 4.0], &[2])?;
    assert_eq!(mean.fill_values(), Some(&[2.0f32, 3.0][..]));
    assert!(msg(mean.transform_slice(&mut [nan; 3])).contains("whole samples"));
    let x = Tensor::from_vec(vec![nan; 3], &[1, 3], &Device::cpu())?;
    assert!(matches!(
        mean.transform(&x),
        Err(Error::ShapeMismatch { .. })
    ));
    // A damaged file.
    let dir = Scratch::new("imputer");
    let file = dir.path("imputer.json");
    std::fs::write(
        &file,
        r#"{"kind": "imputer", "strategy": "mode", "shape": [1], "fill": [0]}"#,
    )
    .expect("write");
    assert!(msg(Imputer::load(&file).map(|_| ())).contains("unknown strategy"));
    std::fs::write(
        &file,
        r#"{"kind": "imputer", "strategy": "mean", "shape": [2], "fill": [0]}"#,
    )
    .expect("write");
    assert!(msg(Imputer::load(&file).map(|_| ())).contains("shape"));
    Ok(())
}
