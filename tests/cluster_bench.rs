//! Figures for BENCHMARKS.md, not tests: ignored by default, run with
//! `cargo build --release && ADMF_BENCH_BIN=target/release/admf cargo test
//! --test cluster_bench -- --ignored --nocapture --test-threads 1`.
//! They need the servers `scripts/test.sh` installs, and print ratios;
//! nothing here asserts a time.

mod cluster_support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cluster_support::{buildgrid, s3, slurm};

const TRIALS_WORKFLOW: &str = "data: {source: csv, symbols: [SPY], path: prices.csv}\n\
    strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}\n\
    phases:\n  - sweep:\n      mode: signal_generation\n\
    \x20     grid: {lookback: \"range(2, 101, 1)\", threshold: \"range(0.0, 0.009, 0.001)\"}\n";

/// A project with a 1,000-trial sweep over 300 bars; 10,000 trials with
/// `ADMF_BENCH_TRIALS=10000` (a hundred thresholds instead of ten), to
/// tell the cost of each trial from the cost of starting a job.
fn sweep() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".admf"), "").unwrap();
    let full =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/SPY_D.csv"))
            .unwrap();
    let head: Vec<&str> = full.lines().take(301).collect();
    std::fs::write(dir.path().join("prices.csv"), head.join("\n") + "\n").unwrap();
    let workflow = match std::env::var("ADMF_BENCH_TRIALS").as_deref() {
        Ok("10000") => TRIALS_WORKFLOW.replace("0.009", "0.099"),
        _ => TRIALS_WORKFLOW.to_string(),
    };
    std::fs::write(dir.path().join("sweep.yaml"), workflow).unwrap();
    dir
}

/// Wall seconds of one `admf build`, which must succeed.
fn timed(dir: &Path, env: &[(&str, String)], args: &[&str]) -> f64 {
    // ADMF_BENCH_BIN: measure another admf (a release build) than the
    // one this test binary was built with.
    let admf = std::env::var("ADMF_BENCH_BIN").unwrap_or(env!("CARGO_BIN_EXE_admf").into());
    let mut command = Command::new(admf);
    command
        .current_dir(dir)
        .env("SLURM_CONF", &slurm().conf)
        .env("ADMF_FULL_PATH", "1")
        .env_remove("ADMF_REMOTE")
        .arg("build")
        .arg("sweep.yaml")
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let started = Instant::now();
    let out = command.output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ADMF_BENCH_VERBOSE: the build's own closing lines, to tell its time
    // from the process's.
    if std::env::var_os("ADMF_BENCH_VERBOSE").is_some() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        println!("  {args:?}: {seconds:.2}s wall: {tail}");
    }
    seconds
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn overhead_per_packed_trial_on_slurm() {
    let local = sweep();
    let t_local = timed(local.path(), &[], &["-j", "2"]);
    let on_slurm = sweep();
    let t_slurm = timed(
        on_slurm.path(),
        &[],
        &["--executor", "slurm", "--max-jobs", "2"],
    );
    let trials: f64 = match std::env::var("ADMF_BENCH_TRIALS").as_deref() {
        Ok("10000") => 10_000.0,
        _ => 1_000.0,
    };
    println!(
        "{trials} trials: local -j2 {t_local:.2}s, slurm (2 job slots) {t_slurm:.2}s, \
         overhead per trial {:.2} ms, ratio {:.2}",
        (t_slurm - t_local) * 1000.0 / trials,
        t_slurm / t_local
    );
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn remote_hit_path_against_the_local_hit_path() {
    let url = format!(
        "s3://admf/bench-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let env = s3().env();
    let first = sweep();
    timed(first.path(), &env, &["--remote", &url]);
    // Local hits: every key looked up in the local store (the full rule).
    let t_local = timed(first.path(), &[], &[]);
    // Remote hits: an empty store, every entry fetched from the remote.
    let second = sweep();
    let t_remote = timed(second.path(), &env, &["--remote", &url]);
    println!(
        "1,000-trial sweep, all hits: local {t_local:.2}s, remote {t_remote:.2}s, ratio {:.2}",
        t_remote / t_local
    );
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn remote_hit_path_over_reapi_against_the_local_hit_path() {
    let url = buildgrid().url("main");
    let first = sweep();
    timed(first.path(), &[], &["--remote", &url]);
    let t_local = timed(first.path(), &[], &[]);
    let second = sweep();
    let t_remote = timed(second.path(), &[], &["--remote", &url]);
    println!(
        "1,000-trial sweep, all hits over REAPI: local {t_local:.2}s, remote {t_remote:.2}s, ratio {:.2}",
        t_remote / t_local
    );
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn slurm_job_start_latency() {
    // How long a trivial batch job takes from `sbatch` to the first line
    // of its script, on the test cluster: a floor under any packed build.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let marker = dir.path().join(format!("started-{round}"));
        let started = Instant::now();
        let out = slurm()
            .command("sbatch")
            .arg("--parsable")
            .arg(format!("--output={}", dir.path().join("out").display()))
            .arg(format!("--wrap=touch {}", marker.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let submitted = started.elapsed().as_secs_f64();
        while !marker.exists() {
            assert!(started.elapsed().as_secs() < 30, "the job did not start");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        println!(
            "job {round}: sbatch {:.0} ms, script started after {:.0} ms",
            submitted * 1000.0,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
}
