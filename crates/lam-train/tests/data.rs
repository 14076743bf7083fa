//! Data sets, the DataLoader, splits and k-fold.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::cpu;
use lam::prelude::*;
use lam_train::data::split::{
    k_fold, stratified_k_fold, stratified_split, stratified_train_val_test_split, train_test_split,
    train_val_test_split,
};
use lam_train::data::{
    class_labels, DataLoader, Dataset, Features, HostBatch, HostTargets, Sample, Subset, Target,
    TensorDataset,
};

#[test]
fn tensor_dataset_from_tensors_and_back() -> Result<()> {
    let dev = cpu();
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[4, 3], &dev)?;
    let y = Tensor::from_vec_i32(vec![1, 0, 1, 2], &[4], &dev)?;
    let ds = TensorDataset::new(&x, &y)?;
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.sample_shape(), vec![3]);
    assert_eq!(
        ds.get(2)?,
        Sample {
            features: vec![6.0f32, 7.0, 8.0].into(),
            target: Target::Class(1)
        }
    );
    assert!(matches!(ds.get(4), Err(Error::OutOfRange { .. })));
    let sel = ds.select(&[3, 0])?;
    assert_eq!(sel.features().as_f32()?, &[9.0, 10.0, 11.0, 0.0, 1.0, 2.0]);
    assert_eq!(sel.labels(), Some(&[2, 1][..]));
    assert_eq!(ds.features_tensor(&dev)?.dims(), &[4, 3]);
    assert_eq!(class_labels(&ds)?, vec![1, 0, 1, 2]);

    let reg = TensorDataset::new(&x, &Tensor::from_vec(vec![0.5; 8], &[4, 2], &dev)?)?;
    assert_eq!(reg.get(1)?.target, Target::Values(vec![0.5, 0.5]));
    assert!(class_labels(&reg).is_err());
    // Mismatched counts and dtypes are errors, not panics.
    assert!(TensorDataset::new(&x, &Tensor::from_vec_i32(vec![1, 2], &[2], &dev)?).is_err());
    assert!(TensorDataset::from_classes(vec![0.0; 5], &[2], vec![0, 1]).is_err());
    assert!(ds.clone().reshape_samples(&[1, 3])?.sample_shape() == vec![1, 3]);
    assert!(ds.reshape_samples(&[2, 2]).is_err());
    Ok(())
}

#[test]
fn subset_views_another_dataset() -> Result<()> {
    let base: Arc<dyn Dataset> = Arc::new(TensorDataset::from_classes(
        vec![0.0, 1.0, 2.0],
        &[1],
        vec![0, 1, 2],
    )?);
    let sub = Subset::new(base.clone(), vec![2, 0])?;
    assert_eq!(sub.len(), 2);
    assert_eq!(sub.get(0)?.features, Features::F32(vec![2.0]));
    assert_eq!(sub.class_of(1)?, Some(0));
    assert!(sub.get(2).is_err());
    assert!(Subset::new(base, vec![3]).is_err());
    Ok(())
}

fn loader_data(n: usize) -> TensorDataset {
    TensorDataset::from_classes(
        (0..n).map(|v| v as f32).collect(),
        &[1],
        (0..n as i32).collect(),
    )
    .expect("data")
}

fn collect(loader: &DataLoader, epoch: u64) -> Result<Vec<(Vec<f32>, Vec<i32>)>> {
    loader
        .epoch(epoch)
        .map(|b| {
            let (x, y) = b?;
            Ok((x.to_vec()?, y.to_vec_i32()?))
        })
        .collect()
}

#[test]
fn loader_batches_in_order_with_and_without_drop_last() -> Result<()> {
    let dev = cpu();
    let loader = DataLoader::new(loader_data(10), 4, &dev)?;
    assert_eq!(loader.num_batches(), 3);
    let batches = collect(&loader, 0)?;
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].0, vec![8.0, 9.0]);
    assert_eq!(batches[0].1, vec![0, 1, 2, 3]);
    let (x, y) = loader.epoch(0).next().expect("one batch")?;
    assert_eq!((x.dims(), y.dims()), (&[4usize, 1][..], &[4usize][..]));
    let dropped = DataLoader::new(loader_data(10), 4, &dev)?.drop_last(true);
    assert_eq!(collect(&dropped, 0)?.len(), 2);
    assert!(DataLoader::new(loader_data(3), 0, &dev).is_err());
    assert_eq!(
        DataLoader::new(loader_data(0), 4, &dev)?.epoch(0).count(),
        0
    );
    Ok(())
}

#[test]
fn shuffle_is_a_pure_function_of_seed_and_epoch() -> Result<()> {
    let dev = cpu();
    let a = DataLoader::new(loader_data(50), 8, &dev)?
        .shuffle(true)
        .seed(3);
    let b = DataLoader::new(loader_data(50), 8, &dev)?
        .shuffle(true)
        .seed(3)
        .prefetch(0);
    assert_eq!(
        collect(&a, 5)?,
        collect(&b, 5)?,
        "prefetching must not change the batches"
    );
    assert_eq!(a.epoch_order(7), b.epoch_order(7));
    assert_ne!(a.epoch_order(0), a.epoch_order(1));
    let c = DataLoader::new(loader_data(50), 8, &dev)?
        .shuffle(true)
        .seed(4);
    assert_ne!(a.epoch_order(0), c.epoch_order(0));
    // Every sample exactly once.
    let seen: BTreeSet<i32> = collect(&a, 2)?.into_iter().flat_map(|(_, y)| y).collect();
    assert_eq!(seen.len(), 50);
    Ok(())
}

#[test]
fn transforms_get_per_batch_seeds_and_errors_end_the_epoch() -> Result<()> {
    let dev = cpu();
    let add_seed = |b: &mut HostBatch, seed: u64| -> Result<()> {
        let v = (seed % 1000) as f32;
        b.x.as_f32_mut()?.iter_mut().for_each(|x| *x = v);
        Ok(())
    };
    let l = DataLoader::new(loader_data(8), 4, &dev)?
        .seed(9)
        .transform(add_seed);
    let e0 = collect(&l, 0)?;
    assert_eq!(e0, collect(&l, 0)?);
    assert_ne!(e0[0].0, e0[1].0, "batches get different seeds");
    assert_ne!(e0, collect(&l, 1)?, "epochs get different seeds");

    let failing = |b: &mut HostBatch, _: u64| -> Result<()> {
        if b.indices.contains(&5) {
            return Err(Error::invalid("test", "bad batch"));
        }
        Ok(())
    };
    for prefetch in [0, 2] {
        let l = DataLoader::new(loader_data(8), 4, &dev)?
            .transform(failing)
            .prefetch(prefetch);
        let items: Vec<_> = l.epoch(0).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok() && items[1].is_err());
    }
    Ok(())
}

struct Panicky;

impl Dataset for Panicky {
    fn len(&self) -> usize {
        4
    }
    fn sample_shape(&self) -> Vec<usize> {
        vec![1]
    }
    fn get(&self, index: usize) -> Result<Sample> {
        if index == 2 {
            panic!("sample 2 is cursed");
        }
        Ok(Sample {
            features: vec![0.0f32].into(),
            target: Target::Class(0),
        })
    }
}

#[test]
fn a_panicking_dataset_becomes_an_error() -> Result<()> {
    let l = DataLoader::new(Panicky, 2, &cpu())?;
    let items: Vec<_> = l.epoch(0).collect();
    assert!(items[0].is_ok());
    let msg = items[1].as_ref().expect_err("panic").to_string();
    assert!(msg.contains("cursed"), "{msg}");
    Ok(())
}

#[test]
fn dropping_an_epoch_early_stops_the_worker() -> Result<()> {
    let l = DataLoader::new(loader_data(1000), 1, &cpu())?.prefetch(1);
    let mut it = l.epoch(0);
    assert!(it.next().is_some());
    drop(it); // must not hang
    Ok(())
}

#[test]
fn splits_are_seeded_disjoint_and_complete() -> Result<()> {
    let (train, test) = train_test_split(10, 0.25, 1)?;
    assert_eq!((train.len(), test.len()), (7, 3));
    assert_eq!(
        train_test_split(10, 0.25, 1)?,
        (train.clone(), test.clone())
    );
    assert_ne!(train_test_split(10, 0.25, 2)?.1, test);
    let all: BTreeSet<usize> = train.iter().chain(&test).copied().collect();
    assert_eq!(all.len(), 10);
    let (a, b, c) = train_val_test_split(20, 0.2, 0.1, 5)?;
    assert_eq!((a.len(), b.len(), c.len()), (14, 4, 2));
    assert!(train_test_split(10, 1.0, 1).is_err());
    assert!(train_test_split(0, 0.5, 1).is_err());
    assert!(train_val_test_split(10, 0.6, 0.5, 1).is_err());
    Ok(())
}

#[test]
fn stratified_splits_keep_class_proportions() -> Result<()> {
    let labels: Vec<i32> = (0..100)
        .map(|i| {
            if i < 70 {
                0
            } else if i < 90 {
                1
            } else {
                2
            }
        })
        .collect();
    let (train, test) = stratified_split(&labels, 0.2, 7)?;
    assert_eq!(test.len(), 20);
    let count = |idx: &[usize], c: i32| idx.iter().filter(|&&i| labels[i] == c).count();
    assert_eq!(
        (count(&test, 0), count(&test, 1), count(&test, 2)),
        (14, 4, 2)
    );
    assert_eq!(train.len() + test.len(), 100);
    let (tr, va, te) = stratified_train_val_test_split(&labels, 0.1, 0.2, 7)?;
    assert_eq!((tr.len(), va.len(), te.len()), (70, 10, 20));
    assert_eq!((count(&va, 0), count(&va, 1), count(&va, 2)), (7, 2, 1));
    let all: BTreeSet<usize> = tr.iter().chain(&va).chain(&te).copied().collect();
    assert_eq!(all.len(), 100);
    Ok(())
}

#[test]
fn k_fold_partitions_and_stratifies() -> Result<()> {
    let folds = k_fold(11, 3, true, 1)?;
    let sizes: Vec<usize> = folds.iter().map(|f| f.validation.len()).collect();
    assert_eq!(sizes, vec![4, 4, 3]);
    let mut seen = BTreeSet::new();
    for f in &folds {
        assert_eq!(f.train.len() + f.validation.len(), 11);
        assert!(f.train.iter().all(|i| !f.validation.contains(i)));
        seen.extend(f.validation.iter().copied());
    }
    assert_eq!(seen.len(), 11);
    assert_eq!(k_fold(6, 3, false, 0)?[0].validation, vec![0, 1]);
    let labels: Vec<i32> = (0..30).map(|i| (i % 3 == 0) as i32).collect();
    for f in stratified_k_fold(&labels, 5, 2)? {
        let pos = f.validation.iter().filter(|&&i| labels[i] == 1).count();
        assert_eq!((f.validation.len(), pos), (6, 2));
    }
    assert!(k_fold(3, 4, false, 0).is_err());
    assert!(stratified_k_fold(&labels, 1, 0).is_err());
    Ok(())
}

#[test]
fn integer_features_batch_as_i32_beside_targets_in_the_shapes_losses_take() -> Result<()> {
    let dev = cpu();
    // Six "sentences" of three token ids each.
    let ids: Vec<i32> = (0..18).collect();
    let x = Tensor::from_vec_i32(ids.clone(), &[6, 3], &dev)?;
    let classes = Tensor::from_vec_i32(vec![0, 1, 2, 0, 1, 2], &[6], &dev)?;
    let ds = TensorDataset::new(&x, &classes)?;
    assert_eq!(ds.features(), &Features::I32(ids.clone()));
    assert_eq!(ds.features_tensor(&dev)?.dtype(), DType::I32);
    assert_eq!(ds.get(1)?.features, Features::I32(vec![3, 4, 5]));
    assert_eq!(
        ds.select(&[5, 0])?.features().as_i32()?,
        &[15, 16, 17, 0, 1, 2]
    );
    // Asking integer ids for real values is an error naming both dtypes.
    let e = ds
        .features()
        .as_f32()
        .expect_err("I32 features are not F32");
    assert!(
        matches!(
            e,
            Error::DTypeMismatch {
                expected: DType::F32,
                found: DType::I32,
                ..
            }
        ),
        "{e}"
    );

    // cross_entropy's targets: I32 ids [B, T] and I32 classes [B].
    let loader = DataLoader::new(ds, 4, &dev)?;
    let (xb, yb) = loader.epoch(0).next().expect("a batch")?;
    assert_eq!((xb.dtype(), xb.dims()), (DType::I32, &[4usize, 3][..]));
    assert_eq!(xb.to_vec_i32()?, ids[..12].to_vec());
    assert_eq!((yb.dtype(), yb.dims()), (DType::I32, &[4usize][..]));

    // Binary cross-entropy's targets: F32 0/1 [N] become [B, 1].
    let flags = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.0], &[6], &dev)?;
    let loader = DataLoader::new(TensorDataset::new(&x, &flags)?, 4, &dev)?;
    let (xb, yb) = loader.epoch(0).next().expect("a batch")?;
    assert_eq!(xb.dtype(), DType::I32);
    assert_eq!((yb.dtype(), yb.dims()), (DType::F32, &[4usize, 1][..]));
    assert_eq!(yb.to_vec()?, vec![0.0, 1.0, 1.0, 0.0]);

    // From vectors, and the same checks of sizes as for values.
    let from_vec = TensorDataset::from_parts(ids, &[3], HostTargets::Classes(vec![1; 6]))?;
    assert_eq!(from_vec.features().dtype(), DType::I32);
    assert!(
        TensorDataset::from_parts(vec![1i32; 5], &[3], HostTargets::Classes(vec![0; 2])).is_err()
    );
    Ok(())
}

/// Samples whose dtype changes half-way: a data set that breaks the rule.
struct MixedDtypes;

impl Dataset for MixedDtypes {
    fn len(&self) -> usize {
        4
    }
    fn sample_shape(&self) -> Vec<usize> {
        vec![2]
    }
    fn get(&self, index: usize) -> Result<Sample> {
        let features = if index < 2 {
            Features::I32(vec![1, 2])
        } else {
            Features::F32(vec![1.0, 2.0])
        };
        Ok(Sample {
            features,
            target: Target::Class(0),
        })
    }
}

#[test]
fn a_batch_mixing_feature_dtypes_is_an_error_and_transforms_name_the_dtype() -> Result<()> {
    let dev = cpu();
    let items: Vec<_> = DataLoader::new(MixedDtypes, 4, &dev)?.epoch(0).collect();
    let e = items[0].as_ref().expect_err("mixed dtypes");
    assert!(e.to_string().contains("share one dtype"), "{e}");
    // A transform written for real values says what it found.
    let x = Tensor::from_vec_i32(vec![1, 2, 3, 4], &[2, 2], &dev)?;
    let y = Tensor::from_vec_i32(vec![0, 1], &[2], &dev)?;
    let scale = |b: &mut HostBatch, _: u64| -> Result<()> {
        b.x.as_f32_mut()?.iter_mut().for_each(|v| *v *= 2.0);
        Ok(())
    };
    let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 2, &dev)?.transform(scale);
    let e = loader
        .epoch(0)
        .next()
        .expect("a batch")
        .expect_err("I32 batch");
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    // So does image augmentation.
    let augment = lam_train::preprocess::Augment::new().hflip(1.0);
    let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 2, &dev)?.transform(augment);
    let e = loader
        .iter()
        .next()
        .expect("a batch")
        .expect_err("I32 batch");
    assert!(
        matches!(
            e,
            Error::DTypeMismatch {
                op: "Augment",
                found: DType::I32,
                ..
            }
        ),
        "{e}"
    );
    Ok(())
}

#[test]
fn classes_per_position_batch_as_i32_arrays() -> Result<()> {
    let dev = cpu();
    // Next-token targets: each of 5 sequences of 3 ids is followed by id + 1.
    let ids: Vec<i32> = (0..15).collect();
    let x = Tensor::from_vec_i32(ids.clone(), &[5, 3], &dev)?;
    let next = Tensor::from_vec_i32(ids.iter().map(|i| i + 1).collect(), &[5, 3], &dev)?;
    let ds = TensorDataset::new(&x, &next)?;
    assert_eq!(
        ds.get(1)?.target,
        Target::ClassArray {
            ids: vec![4, 5, 6],
            shape: vec![3]
        }
    );
    assert_eq!(ds.get(1)?.target.class(), None);
    assert!(class_labels(&ds).is_err());
    assert_eq!(
        ds.select(&[4, 0])?.targets(),
        &HostTargets::ClassArrays {
            data: vec![13, 14, 15, 1, 2, 3],
            shape: vec![3]
        }
    );
    let batches: Vec<_> = DataLoader::new(ds, 2, &dev)?
        .epoch(0)
        .collect::<Result<_>>()?;
    let (xb, yb) = &batches[2];
    assert_eq!((xb.dims(), yb.dims()), (&[1usize, 3][..], &[1usize, 3][..]));
    assert_eq!(
        (yb.dtype(), yb.to_vec_i32()?),
        (DType::I32, vec![13, 14, 15])
    );
    assert_eq!(batches[0].1.dims(), &[2, 3]);

    // Segmentation masks: I32 [N, H, W] → [B, H, W].
    let images = Tensor::zeros(&[4, 1, 2, 2], &dev)?;
    let masks = Tensor::from_vec_i32((0..16).map(|v| v % 3).collect(), &[4, 2, 2], &dev)?;
    let loader = DataLoader::new(TensorDataset::new(&images, &masks)?, 3, &dev)?;
    let (_, yb) = loader.epoch(0).next().expect("a batch")?;
    assert_eq!(yb.dims(), &[3, 2, 2]);
    assert_eq!(yb.to_vec_i32()?, masks.to_vec_i32()?[..12].to_vec());

    // What cannot be batched is an error, not a panic.
    let empty = Tensor::from_vec_i32(vec![], &[5, 0], &dev)?;
    assert!(TensorDataset::new(&x, &empty).is_err(), "a zero-size shape");
    let cube = Tensor::zeros(&[5, 2, 2], &dev)?;
    assert!(
        TensorDataset::new(&x, &cube).is_err(),
        "F32 targets are [N] or [N, k]"
    );
    assert!(HostTargets::class_arrays(vec![1, 2, 3], &[2]).is_err());
    let array = |ids: Vec<i32>, shape: Vec<usize>| Target::ClassArray { ids, shape };
    for mixed in [
        vec![array(vec![1, 2], vec![2]), array(vec![1, 2, 3], vec![3])],
        vec![array(vec![1, 2], vec![2]), array(vec![1, 2, 3], vec![2])],
        vec![array(vec![1, 2], vec![2]), Target::Class(1)],
        vec![Target::Class(1), Target::Values(vec![1.0])],
        vec![Target::Values(vec![1.0]), Target::Values(vec![1.0, 2.0])],
        vec![array(vec![1, 2, 3], vec![2])],
    ] {
        let e = HostTargets::collect(mixed.clone()).expect_err("not one kind and size");
        assert!(e.to_string().contains("sample"), "{mixed:?}: {e}");
    }
    let two = HostTargets::collect(vec![array(vec![1, 2], vec![2]), array(vec![3, 4], vec![2])])?;
    assert_eq!(two.to_tensor(&dev)?.dims(), &[2, 2]);
    Ok(())
}
