//! `admf build --executor slurm` against a real one-node Slurm cluster
//! started by the tests (`cluster_support`): misses run as packed batch
//! jobs of `admf exec-action`, the coordinator commits, and the bytes are
//! those of a local build.

mod cluster_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use admf::store::{Cache, Store};
use cluster_support::slurm;
use serde_json::Value;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".admf"), "").unwrap();
    dir
}

fn admf(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_admf"))
        .current_dir(dir)
        .env("SLURM_CONF", &slurm().conf)
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .args(args)
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no --json report ({e})\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A 300-bar slice of the bundled SPY sample and a sweep of `trials`
/// momentum trials over it.
fn sweep_project(lookbacks: u32) -> tempfile::TempDir {
    let dir = project();
    let full =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/SPY_D.csv"))
            .unwrap();
    let head: Vec<&str> = full.lines().take(301).collect();
    std::fs::write(dir.path().join("prices.csv"), head.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.path().join("sweep.yaml"),
        format!(
            "data: {{source: csv, symbols: [SPY], path: prices.csv}}\n\
             strategy: {{type: momentum, parameters: {{lookback: 20, threshold: 0.0}}}}\n\
             phases:\n  - sweep:\n      mode: signal_generation\n\
             \x20     grid: {{lookback: \"range(2, {}, 1)\", threshold: [0.0, 0.002, 0.004]}}\n\
             \x20     resources: {{cpus: 1, mem: 200M, time: \"10\"}}\n",
            lookbacks + 1
        ),
    )
    .unwrap();
    dir
}

fn output_digests(dir: &Path, report: &Value) -> Vec<(String, String, String)> {
    let store = Store::open(&dir.join("cache")).unwrap();
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let key = n["key"].as_str().unwrap().to_string();
            let manifest = store.get_action(&key).unwrap().expect("a stored entry");
            (
                n["id"].as_str().unwrap().to_string(),
                key,
                manifest.output_digest,
            )
        })
        .collect()
}

#[test]
fn a_sweep_on_slurm_gives_the_same_bytes_as_a_local_build_in_few_jobs() {
    let local = sweep_project(40);
    let on_slurm = sweep_project(40);
    let out = admf(local.path(), &["build", "sweep.yaml", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local_report = report(&out);

    let args = [
        "build",
        "sweep.yaml",
        "--json",
        "--executor",
        "slurm",
        "--max-jobs",
        "3",
    ];
    let out = admf(on_slurm.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let slurm_report = report(&out);
    let nodes = slurm_report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 121);
    assert!(nodes.iter().all(|n| n["status"] == "ran"), "{slurm_report}");
    // Packed: the trials share a few jobs (more than 3 only when later
    // waves find the first jobs gone).
    let jobs: usize = stderr
        .split("slurm: 121 actions in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no job count in {stderr}"));
    assert!((2..=30).contains(&jobs), "{jobs} jobs for 121 actions");
    assert_eq!(
        output_digests(local.path(), &local_report),
        output_digests(on_slurm.path(), &slurm_report)
    );
    // The job folders are the build's own and go with it.
    let jobs = on_slurm.path().join("cache/cluster");
    assert_eq!(std::fs::read_dir(&jobs).map_or(0, |d| d.count()), 0);

    // A second build decides every node on the coordinator: nothing is sent.
    let out = admf(on_slurm.path(), &args);
    assert_eq!(out.status.code(), Some(0));
    let again = report(&out);
    assert!(
        again["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "cached")
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("slurm:"));
}

fn command_project(phases: &str) -> tempfile::TempDir {
    let dir = project();
    std::fs::write(dir.path().join("wf.yaml"), format!("phases:\n{phases}")).unwrap();
    dir
}

#[test]
fn a_failing_action_fails_its_node_with_its_log_and_spares_the_others() {
    let dir = command_project(
        "  - name: boom\n    mode: command\n    run: \"echo about to fail; exit 3\"\n    depends_on: []\n\
         \x20 - name: fine\n    mode: command\n    run: \"echo ok > ok.txt\"\n    outputs: [ok.txt]\n    depends_on: []\n",
    );
    let out = admf(
        dir.path(),
        &[
            "build",
            "wf.yaml",
            "--json",
            "--executor",
            "slurm",
            "--keep-going",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report = report(&out);
    let status = |id: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("boom"), "failed");
    assert_eq!(status("fine"), "ran");
    assert!(stderr.contains("about to fail"), "{stderr}");
    assert!(stderr.contains("exit") && stderr.contains('3'), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ok.txt")).unwrap(),
        "ok\n"
    );
}

#[test]
fn a_job_that_slurm_ends_fails_its_node_with_the_state() {
    // The action cancels its own job: Slurm ends it as CANCELLED before
    // the action writes its output.
    let dir = command_project(
        "  - name: cancelled\n    mode: command\n    run: \"scancel $SLURM_JOB_ID; sleep 30\"\n",
    );
    let started = Instant::now();
    let out = admf(dir.path(), &["build", "wf.yaml", "--executor", "slurm"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was cancelled (state CANCELLED"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "waited for the sleep"
    );
}

#[test]
fn a_later_wave_runs_in_the_job_that_ran_the_first() {
    // `second` can only be decided once `first` is committed: its action
    // reaches the job whose worker still lingers after running `first`.
    let dir = command_project(
        "  - name: first\n    mode: command\n    run: \"echo $SLURM_JOB_ID > one.txt\"\n    outputs: [one.txt]\n\
         \x20 - name: second\n    mode: command\n    run: \"cat one.txt > two.txt; echo $SLURM_JOB_ID >> two.txt\"\n    outputs: [two.txt]\n",
    );
    let out = admf(dir.path(), &["build", "wf.yaml", "--executor", "slurm"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("slurm: 2 actions in 1 job"), "{stderr}");
    let two = std::fs::read_to_string(dir.path().join("two.txt")).unwrap();
    let ids: Vec<&str> = two.lines().collect();
    assert_eq!(ids.len(), 2, "{two}");
    assert!(!ids[0].is_empty() && ids[0] == ids[1], "{two}");
    // Told to stop once the build was done, the worker exited: the job
    // completed rather than being cancelled.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = slurm()
            .jobs()
            .into_iter()
            .find(|(id, _, _)| id == ids[0])
            .map(|(_, _, state)| state);
        match state.as_deref() {
            Some("COMPLETED") => break,
            Some("RUNNING" | "COMPLETING") if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!("job {} is {other:?}", ids[0]),
        }
    }
}

#[test]
fn a_worker_that_dies_fails_its_action_with_the_job_state() {
    // The action kills the worker running it: the job script notes the
    // worker's exit status, and Slurm says how the job ended.
    let dir = command_project(
        "  - name: orphaned\n    mode: command\n    run: \"kill -9 $PPID; sleep 1\"\n",
    );
    let out = admf(dir.path(), &["build", "wf.yaml", "--executor", "slurm"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed (state FAILED"), "{stderr}");
}

#[test]
fn resources_reach_sbatch() {
    let dir = command_project(
        "  - name: ask\n    mode: command\n    run: \"echo $SLURM_CPUS_PER_TASK $SLURM_MEM_PER_NODE $(squeue -h -j $SLURM_JOB_ID -o %l) > asked.txt\"\n    outputs: [asked.txt]\n    resources: {cpus: 2, mem: 150M, time: \"7\"}\n",
    );
    let out = admf(dir.path(), &["build", "wf.yaml", "--executor", "slurm"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("asked.txt")).unwrap(),
        "2 150 7:00\n"
    );
}

#[test]
fn the_executor_block_of_the_workflow_chooses_slurm() {
    let dir = project();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "executor: {type: slurm, max_jobs: 2, pack: 5}\nphases:\n  - name: where\n    mode: command\n    run: \"echo ${SLURM_JOB_ID:+in a job} > where.txt\"\n    outputs: [where.txt]\n",
    )
    .unwrap();
    let out = admf(dir.path(), &["build", "wf.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("slurm: 1 action in 1 job"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("where.txt")).unwrap(),
        "in a job\n"
    );
}

#[test]
fn ctrl_c_cancels_the_submitted_jobs() {
    let dir = command_project("  - name: long\n    mode: command\n    run: \"sleep 60\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_admf"))
        .current_dir(dir.path())
        .env("SLURM_CONF", &slurm().conf)
        .args(["build", "wf.yaml", "--executor", "slurm"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let name = format!("admf-{}-", child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let running = slurm()
            .jobs()
            .into_iter()
            .find(|(_, n, state)| n.starts_with(&name) && state == "RUNNING");
        if let Some((id, _, _)) = running {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the job never ran: {:?}",
            slurm().jobs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "admf did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    // Slurm passes through COMPLETING while it kills the job's processes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = slurm()
            .jobs()
            .into_iter()
            .find(|(id, _, _)| *id == job)
            .map(|(_, _, s)| s);
        if state.as_deref() == Some("CANCELLED") {
            break;
        }
        assert!(Instant::now() < deadline, "job {job} is {state:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_resources_and_executor_keys_are_refused_with_their_line() {
    let cases = [
        (
            "phases:\n  - name: a\n    mode: command\n    run: \"true\"\n    resources: {mem: 4GB}\n",
            "wf.yaml:5",
            "mem",
        ),
        (
            "phases:\n  - name: a\n    mode: command\n    run: \"true\"\n    resources:\n      cpus: 0\n",
            "wf.yaml:6",
            "cpus",
        ),
        (
            "phases:\n  - name: a\n    mode: command\n    run: \"true\"\n    resources: {gpus: 1}\n",
            "wf.yaml:5",
            "gpus",
        ),
        (
            "executor:\n  type: kubernetes\nphases:\n  - name: a\n    mode: command\n    run: \"true\"\n",
            "wf.yaml:2",
            "type",
        ),
        (
            "executor: {partition: \"a b\"}\nphases:\n  - name: a\n    mode: command\n    run: \"true\"\n",
            "wf.yaml:1",
            "partition",
        ),
    ];
    for (text, at, key) in cases {
        let dir = project();
        std::fs::write(dir.path().join("wf.yaml"), text).unwrap();
        let out = admf(dir.path(), &["validate", "wf.yaml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}\n{stderr}");
        assert!(
            stderr.contains(at) && stderr.contains(key),
            "{text}\n{stderr}"
        );
    }
}

#[test]
fn a_build_without_a_slurm_client_says_so() {
    let dir = command_project("  - name: a\n    mode: command\n    run: \"true\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_admf"))
        .current_dir(dir.path())
        .env("PATH", "/nonexistent")
        .args(["build", "wf.yaml", "--executor", "slurm"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot run `sbatch`"), "{stderr}");
    assert!(!dir.path().join("cache/cluster").exists());
}
