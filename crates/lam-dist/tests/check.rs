//! Runs `lam-dist-check` (the program the MPI tests run under `mpirun`)
//! as a local group of replicas on threads of one process: the same
//! scenarios, reducing through host memory instead of MPI.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the check program with `LAM_DIST_DEVICES=devices`; its stdout,
/// stderr and success.
fn run(devices: &str, args: &[&str], timeout_s: &str) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_lam-dist-check"))
        .args(args)
        .env("LAM_DIST_DEVICES", devices)
        .env("LAM_DIST_TIMEOUT", timeout_s)
        .output()
        .expect("the check program starts");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.success())
}

fn assert_ok_lines(stdout: &str, stderr: &str, ok: bool, replicas: usize) {
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines = stdout.lines().filter(|l| l.starts_with("OK ")).count();
    assert_eq!(lines, replicas, "stdout:\n{stdout}");
}

#[test]
fn two_and_three_cpu_replicas_match_one_process_with_the_whole_batch() {
    for (devices, n) in [("cpu,cpu", 2), ("cpu,cpu,cpu", 3)] {
        let (out, err, ok) = run(devices, &["equiv", "cpu"], "60");
        assert_ok_lines(&out, &err, ok, n);
        assert!(out.contains("max |Δw|"), "{out}");
    }
}

#[test]
fn sync_batch_norm_replicas_match_batch_norm_over_the_whole_batch() {
    let (out, err, ok) = run("cpu,cpu", &["equiv", "cpu", "syncbn"], "60");
    assert_ok_lines(&out, &err, ok, 2);
}

#[test]
fn two_gpu_replicas_match_one_process_with_the_whole_batch() {
    if lam_wgpu::list_adapters().is_empty() {
        assert_ne!(
            std::env::var("LAM_REQUIRE_GPU").as_deref(),
            Ok("1"),
            "LAM_REQUIRE_GPU=1 but no GPU adapter was found"
        );
        eprintln!("skipped: no GPU adapter (LAM_REQUIRE_GPU=1 makes this fail)");
        return;
    }
    let (out, err, ok) = run("gpu,gpu", &["equiv", "gpu"], "120");
    assert_ok_lines(&out, &err, ok, 2);
}

#[test]
fn a_replica_that_stops_makes_the_other_fail_with_an_error() {
    let started = Instant::now();
    let (out, err, ok) = run("cpu,cpu", &["fault", "stop"], "10");
    assert!(!ok, "the run must fail\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("OK fault rank 0"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(err.contains("on purpose"), "the cause is reported: {err}");
    // A local group fails at once, well within the 10 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
