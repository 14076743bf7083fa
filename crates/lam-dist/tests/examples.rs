//! Smoke test of examples/ddp_digits.rs: two CPU replicas of one process,
//! two epochs, with SyncBatchNorm; rank 0 alone writes the history.

#[path = "../../../examples/ddp_digits.rs"]
#[allow(dead_code)]
mod ddp_digits;

use lam_dist::{launch, DeviceSpec, LaunchConfig};

#[test]
fn ddp_digits_trains_on_two_replicas() {
    let dir = std::env::temp_dir().join(format!("lam-dist-ddp-digits-{}", std::process::id()));
    let opts = ddp_digits::Options {
        epochs: 2,
        out_dir: dir.clone(),
        quiet: true,
        sync_bn: true,
    };
    let config = LaunchConfig::from_env()
        .unwrap()
        .devices(vec![DeviceSpec::Cpu, DeviceSpec::Cpu]);
    let reports = launch(&config, |replica| ddp_digits::run(&opts, &replica)).unwrap();
    assert_eq!(reports.len(), 2);
    let scores = |r: &lam_train::trainer::FitReport| -> Vec<_> {
        r.history
            .records
            .iter()
            .map(|e| (e.train_loss, e.val_loss, e.val_accuracy))
            .collect()
    };
    assert_eq!(scores(&reports[0]), scores(&reports[1]));
    let accuracy = reports[0].history.records[1].val_accuracy.unwrap();
    // 64-128-10 on digits reaches well over 80% in two epochs.
    assert!(accuracy > 0.8, "test accuracy {accuracy}");
    assert!(dir.join("history.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
