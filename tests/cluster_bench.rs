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
    let trials: f64 = match std::env::var("ADMF_BENCH_TRIALS").as_deref() {
        Ok("10000") => 10_000.0,
        _ => 1_000.0,
    };
    // The first job after slurmctld starts waited 1.5-1.7 s on the test
    // cluster, against at most about a second later on: one trivial job
    // first, so that every round sees a controller as a site runs it.
    let warm_up = slurm()
        .command("sbatch")
        .args(["--wait", "--output=/dev/null", "--wrap=true"])
        .output()
        .unwrap();
    assert!(warm_up.status.success(), "{warm_up:?}");
    let rounds: usize = std::env::var("ADMF_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for round in 1..=rounds {
        // slurmctld schedules on a cycle of about a second: start each
        // round at another point of it, not in step with the last.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::thread::sleep(std::time::Duration::from_millis(u64::from(nanos % 1000)));
        let local = sweep();
        let t_local = timed(local.path(), &[], &["-j", "2"]);
        let on_slurm = sweep();
        let log_start = slurmctld_log().len();
        let t_slurm = timed(
            on_slurm.path(),
            &[],
            &["--executor", "slurm", "--max-jobs", "2"],
        );
        let overhead = t_slurm - t_local;
        println!(
            "round {round}, {trials} trials: local -j2 {t_local:.2}s, slurm (2 job slots) \
             {t_slurm:.2}s, overhead per trial {:.2} ms, ratio {:.2}",
            overhead * 1000.0 / trials,
            t_slurm / t_local
        );
        // slurmctld starts a batch job only from its main scheduler,
        // which its background loop runs about once a second: split that
        // wait (first submission to first allocation, from slurmctld's
        // log) off the overhead.
        match first_job_wait(&slurmctld_log()[log_start..]) {
            Some(wait) => println!(
                "  slurmctld held the first job {:.0} ms after sbatch; the rest \
                 (slurmd's launch, admf's own) is {:.2} ms per trial",
                wait * 1000.0,
                (overhead - wait) * 1000.0 / trials
            ),
            None => println!("  no submission and allocation of the build in slurmctld's log"),
        }
    }
}

fn slurmctld_log() -> String {
    std::fs::read_to_string(slurm().dir.join("log/slurmctld.log")).unwrap_or_default()
}

/// Seconds from the first `_slurm_rpc_submit_batch_job` to the first
/// `sched: Allocate` in a stretch of slurmctld's log (millisecond
/// timestamps, `[YYYY-MM-DDTHH:MM:SS.mmm]`).
fn first_job_wait(log: &str) -> Option<f64> {
    let stamp = |line: &str| -> Option<f64> {
        let time = line
            .strip_prefix('[')?
            .split(']')
            .next()?
            .split('T')
            .nth(1)?;
        let mut parts = time.split(':');
        let hours: f64 = parts.next()?.parse().ok()?;
        let minutes: f64 = parts.next()?.parse().ok()?;
        let seconds: f64 = parts.next()?.parse().ok()?;
        Some(hours * 3600.0 + minutes * 60.0 + seconds)
    };
    let first = |needle: &str| log.lines().find(|l| l.contains(needle)).and_then(stamp);
    let submitted = first("_slurm_rpc_submit_batch_job: JobId=")?;
    let allocated = first("sched: Allocate JobId=")?;
    // A build that spans midnight.
    Some((allocated - submitted).rem_euclid(86_400.0))
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
    // For comparison: an interactive allocation is granted inside the
    // request (no wait for the main scheduler's next run), and a step
    // in it starts as soon as slurmd launches it.
    for round in 0..5 {
        let marker = dir.path().join(format!("step-{round}"));
        let started = Instant::now();
        let out = slurm()
            .command("salloc")
            .args(["--no-shell", "--job-name=admf-bench-salloc"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let granted = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let id = stderr
            .split("Granted job allocation ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("salloc names the job it was granted")
            .to_string();
        let step = slurm()
            .command("srun")
            .arg(format!("--jobid={id}"))
            .args(["touch", &marker.display().to_string()])
            .output()
            .unwrap();
        assert!(step.status.success(), "{step:?}");
        assert!(marker.exists(), "the step did not run");
        println!(
            "allocation {round}: salloc {:.0} ms, srun step done after {:.0} ms",
            granted * 1000.0,
            started.elapsed().as_secs_f64() * 1000.0
        );
        let _ = slurm().command("scancel").arg(&id).output();
    }
}

#[test]
fn first_job_wait_reads_slurmctld_timestamps() {
    let log = "[2026-11-30T17:36:55.900] debug:  sched: Running job scheduler for default depth.\n\
               [2026-11-30T17:36:55.946] _slurm_rpc_submit_batch_job: JobId=7 InitPrio=1 usec=1101\n\
               [2026-11-30T17:36:55.985] _slurm_rpc_submit_batch_job: JobId=8 InitPrio=1 usec=1903\n\
               [2026-11-30T17:36:56.969] sched: Allocate JobId=7 NodeList=localhost #CPUs=1\n\
               [2026-11-30T17:36:56.970] sched: Allocate JobId=8 NodeList=localhost #CPUs=1\n";
    let wait = first_job_wait(log).unwrap();
    assert!((wait - 1.023).abs() < 1e-9, "{wait}");
    // Submitted before midnight, started after it.
    let log = "[2026-11-30T23:59:59.800] _slurm_rpc_submit_batch_job: JobId=9 usec=1\n\
               [2026-12-01T00:00:00.300] sched: Allocate JobId=9 NodeList=localhost\n";
    assert!((first_job_wait(log).unwrap() - 0.5).abs() < 1e-9);
    // A build whose job never started.
    assert_eq!(
        first_job_wait("[2026-11-30T17:36:55.946] _slurm_rpc_submit_batch_job: JobId=7\n"),
        None
    );
}
