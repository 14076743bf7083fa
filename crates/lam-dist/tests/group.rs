//! The communicator of a local group (replicas on threads, reducing
//! through host memory) and DistributedDataParallel on it: results bitwise
//! equal everywhere, failures that end in errors within the timeout,
//! buckets queued while backward runs, SyncBatchNorm equal to BatchNorm
//! over the global batch, rank 0's buffers.

use std::time::{Duration, Instant};

use lam::nn::{BatchNorm1d, Linear, Module, ReLU, Sequential};
use lam::optim::{Optimizer, Sgd};
use lam::prelude::*;
use lam_dist::{
    local_group, Communicator, DdpConfig, DistributedDataParallel, Reduction, SyncBatchNorm,
};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `f(rank, comm)` on one thread per replica of a local group of
/// `size` and returns the results in rank order.
fn on_group<T: Send>(
    size: usize,
    timeout: Duration,
    f: impl Fn(usize, Communicator) -> T + Sync,
) -> Vec<T> {
    let comms = local_group(size, timeout).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = comms
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                let f = &f;
                s.spawn(move || f(rank, comm))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn sums_are_bitwise_equal_on_every_replica_and_in_rank_order() {
    let results = on_group(3, TIMEOUT, |rank, comm| {
        // Values whose sum depends on the order of addition.
        let mine = vec![1e8f32, 1.0 + rank as f32, -1e8, 0.1 * rank as f32];
        comm.sum_f32(mine).wait().unwrap()
    });
    let expected: Vec<f32> = (0..4)
        .map(|i| {
            (0..3)
                .map(|r| [1e8f32, 1.0 + r as f32, -1e8, 0.1 * r as f32][i])
                .fold(None, |acc: Option<f32>, v| Some(acc.map_or(v, |a| a + v)))
                .unwrap()
        })
        .collect();
    for r in &results {
        assert_eq!(r, &expected);
    }
}

#[test]
fn broadcast_and_maximum() {
    let results = on_group(3, TIMEOUT, |rank, comm| {
        let bytes = comm.broadcast(vec![rank as u8; 5], 2).wait().unwrap();
        let max = comm
            .reduce_f64(vec![rank as f64, -(rank as f64)], Reduction::Max)
            .unwrap();
        (bytes, max)
    });
    for (bytes, max) in results {
        assert_eq!(bytes, vec![2u8; 5]);
        assert_eq!(max, vec![2.0, 0.0]);
    }
}

#[test]
fn a_replica_that_never_arrives_fails_the_others_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let results = on_group(2, timeout, |rank, comm| {
        let started = Instant::now();
        let r = match rank {
            0 => comm.sum_f32(vec![1.0]).wait().map(|_| ()),
            _ => Ok(()),
        };
        (r, started.elapsed())
    });
    let (r0, took) = &results[0];
    let e = r0.as_ref().unwrap_err().to_string();
    assert!(e.contains("did not complete within"), "{e}");
    assert!(*took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn an_aborting_replica_fails_the_others_at_once_naming_it() {
    let results = on_group(2, TIMEOUT, |rank, comm| {
        let started = Instant::now();
        if rank == 1 {
            comm.abort("out of memory");
            return (Ok(()), started.elapsed());
        }
        let r = comm.sum_f32(vec![1.0]).wait().map(|_| ());
        // Every later call fails too, without waiting.
        assert!(comm.barrier().is_err());
        (r, started.elapsed())
    });
    let e = results[0].0.as_ref().unwrap_err().to_string();
    assert!(
        e.contains("replica 1") && e.contains("out of memory"),
        "{e}"
    );
    assert!(results[0].1 < TIMEOUT / 2);
}

#[test]
fn replicas_calling_different_collectives_get_an_error() {
    let results = on_group(2, TIMEOUT, |rank, comm| {
        comm.sum_f32(vec![0.0; 2 + rank]).wait().map(|_| ())
    });
    for r in results {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("disagree"), "{e}");
    }
}

fn mlp(device: &Device) -> Sequential {
    Sequential::new()
        .add(Linear::new(4, 8, device).unwrap())
        .add(ReLU)
        .add(Linear::new(8, 8, device).unwrap())
        .add(ReLU)
        .add(Linear::new(8, 2, device).unwrap())
}

#[test]
fn ddp_starts_from_rank_0s_weights_and_queues_buckets_while_backward_runs() {
    let cpu = Device::cpu();
    let results = on_group(2, TIMEOUT, |rank, comm| {
        // Different initial weights on each replica: the wrapper copies rank 0's.
        let model = lam::rng::with_generator(&lam::Generator::new(rank as u64), || mlp(&cpu));
        let ddp =
            DistributedDataParallel::new(model, &comm, DdpConfig::default().bucket_cap_mb(1e-4))
                .unwrap();
        let start: Vec<Vec<f32>> = ddp
            .parameters()
            .iter()
            .map(|p| p.to_vec().unwrap())
            .collect();
        let x = Tensor::full(&[3, 4], 0.5 + rank as f32, &cpu).unwrap();
        ddp.forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grads: Vec<Vec<f32>> = ddp
            .parameters()
            .iter()
            .map(|p| p.grad().unwrap().to_vec().unwrap())
            .collect();
        (start, grads, ddp.stats())
    });
    assert_eq!(results[0].0, results[1].0, "initial weights differ");
    assert_eq!(results[0].1, results[1].1, "averaged gradients differ");
    let stats = results[0].2;
    assert!(stats.buckets >= 3, "{stats:?}");
    // Every bucket was complete, and queued, before backward ended.
    assert_eq!(
        stats.buckets_during_backward, stats.buckets as u64,
        "{stats:?}"
    );
    assert_eq!(stats.steps, 1);
}

#[test]
fn ddp_gradient_is_the_average_and_no_sync_accumulates_locally() {
    let cpu = Device::cpu();
    let results = on_group(2, TIMEOUT, |rank, comm| {
        let model = Sequential::new().add(Linear::new(2, 1, &cpu).unwrap());
        let ddp = DistributedDataParallel::new(model, &comm, DdpConfig::default()).unwrap();
        let x = Tensor::full(&[1, 2], 1.0 + rank as f32, &cpu).unwrap();
        // Inside no_sync: a local gradient only.
        ddp.no_sync(|| {
            ddp.forward(&x)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        });
        let local = ddp.parameters()[0].grad().unwrap().to_vec().unwrap();
        // The next pass averages the accumulated total.
        ddp.forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let averaged = ddp.parameters()[0].grad().unwrap().to_vec().unwrap();
        (local, averaged)
    });
    assert_eq!(results[0].0, vec![1.0, 1.0]);
    assert_eq!(results[1].0, vec![2.0, 2.0]);
    // (2·1 + 2·2) / 2 on both.
    assert_eq!(results[0].1, vec![3.0, 3.0]);
    assert_eq!(results[1].1, vec![3.0, 3.0]);
}

#[test]
fn replicas_with_different_models_are_an_error() {
    let cpu = Device::cpu();
    let results = on_group(2, TIMEOUT, |rank, comm| {
        let model = Sequential::new().add(Linear::new(2, 1 + rank, &cpu).unwrap());
        DistributedDataParallel::new(model, &comm, DdpConfig::default()).map(|_| ())
    });
    for r in results {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("models differ"), "{e}");
    }
}

#[test]
fn bad_bucket_sizes_are_errors() {
    let cpu = Device::cpu();
    let comm = Communicator::single();
    for mb in [0.0, -1.0, f64::NAN] {
        let model = Sequential::new().add(Linear::new(2, 1, &cpu).unwrap());
        let config = DdpConfig {
            bucket_cap_mb: mb,
            ..DdpConfig::default()
        };
        let e = DistributedDataParallel::new(model, &comm, config)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bucket_cap_mb"), "{e}");
    }
}

/// Input `[8, 3]` with per-channel spread, the same on every replica.
fn batch(device: &Device) -> Tensor {
    let values: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.0).collect();
    Tensor::from_vec(values, &[8, 3], device).unwrap()
}

#[test]
fn sync_batch_norm_over_two_halves_is_batch_norm_over_the_whole_batch() {
    let cpu = Device::cpu();
    let weights =
        Tensor::from_vec((0..24).map(|i| (i % 5) as f32).collect(), &[8, 3], &cpu).unwrap();
    // One process, BatchNorm over all 8 rows.
    let bn = BatchNorm1d::new(3, &cpu).unwrap();
    let x = batch(&cpu).requires_grad_().unwrap();
    let y = bn.forward(&x).unwrap();
    y.mul(&weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (y_all, dx_all) = (y.to_vec().unwrap(), x.grad().unwrap().to_vec().unwrap());
    let running: Vec<Vec<f32>> = bn
        .state_dict()
        .iter()
        .map(|(_, t)| t.to_dtype(DType::F32).unwrap().to_vec().unwrap())
        .collect();
    // Two replicas, four rows each.
    let halves = on_group(2, TIMEOUT, |rank, comm| {
        let sbn = SyncBatchNorm::new(BatchNorm1d::new(3, &cpu).unwrap(), &comm);
        let x = batch(&cpu)
            .narrow(0, rank * 4, 4)
            .unwrap()
            .contiguous()
            .unwrap()
            .requires_grad_()
            .unwrap();
        let y = sbn.forward(&x).unwrap();
        let w = weights.narrow(0, rank * 4, 4).unwrap();
        // Each replica's loss is its part of the global sum.
        y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        let running: Vec<Vec<f32>> = sbn
            .state_dict()
            .iter()
            .map(|(_, t)| t.to_dtype(DType::F32).unwrap().to_vec().unwrap())
            .collect();
        (
            y.to_vec().unwrap(),
            x.grad().unwrap().to_vec().unwrap(),
            running,
        )
    });
    let y_sync: Vec<f32> = halves.iter().flat_map(|h| h.0.clone()).collect();
    let dx_sync: Vec<f32> = halves.iter().flat_map(|h| h.1.clone()).collect();
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-5);
    assert!(close(&y_sync, &y_all), "{y_sync:?} vs {y_all:?}");
    assert!(close(&dx_sync, &dx_all), "{dx_sync:?} vs {dx_all:?}");
    for h in &halves {
        for (a, b) in h.2.iter().zip(&running) {
            assert!(close(a, b), "running statistics {a:?} vs {b:?}");
        }
    }
}

#[test]
fn ddp_copies_rank_0s_batch_norm_statistics_at_each_training_forward() {
    let cpu = Device::cpu();
    let results = on_group(2, TIMEOUT, |rank, comm| {
        let model = Sequential::new()
            .add(Linear::new(3, 3, &cpu).unwrap())
            .add(BatchNorm1d::new(3, &cpu).unwrap());
        let ddp = DistributedDataParallel::new(model, &comm, DdpConfig::default()).unwrap();
        let mut opt = Sgd::new(ddp.parameters(), 0.1).unwrap();
        for step in 0..2 {
            let x = batch(&cpu).add_scalar((rank * 10 + step) as f32).unwrap();
            opt.zero_grad();
            ddp.forward(&x)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step().unwrap();
        }
        // The next training forward starts from rank 0's statistics.
        ddp.sync_buffers().unwrap();
        let state: Vec<Vec<f32>> = ddp
            .state_dict()
            .iter()
            .map(|(_, t)| t.to_dtype(DType::F32).unwrap().to_vec().unwrap())
            .collect();
        state
    });
    assert_eq!(results[0], results[1]);
}
