//! The run history through the binary: every build recorded (names, git
//! state, digest, metrics), `admf runs`, `diff`, `log`, `exp show`, gc's
//! trimming, an index written before the history had these columns, and
//! concurrent and killed builds.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Project;
use serde_json::Value;

const WF: &str = "workflows/parameter_optimization.yaml";

fn project() -> Project {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.repo_file(WF, WF);
    p.file(".admf", "");
    p
}

fn ok(p: &Project, args: &[&str]) -> String {
    let out = p.admf(args);
    assert_eq!(out.code, 0, "admf {args:?}:\n{}", out.stderr);
    out.stdout
}

fn json(p: &Project, args: &[&str]) -> Value {
    serde_json::from_str(&ok(p, args)).unwrap()
}

/// Status counts of a `build --json`.
fn build(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["build", WF, "--json"];
    all.extend(args);
    json(p, &all)
}

#[test]
fn every_build_is_recorded_without_git_and_diff_gives_metric_deltas() {
    let p = project();
    assert!(!p.path(".git").exists());
    build(&p, &[]);
    let shown_a = json(&p, &["show", WF, "ensemble_optimization", "--json"]);
    build(&p, &["--set", "parameter_discovery.grid.lookback=[10,40]"]);
    let shown_b = json(&p, &["show", WF, "ensemble_optimization", "--json"]);
    let runs = json(&p, &["runs", WF, "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .all(|r| r["git_commit"].is_null() && r["git_dirty"].is_null())
    );
    assert_eq!(runs[0]["digest"], runs[1]["digest"]);
    assert_eq!(runs[0]["nodes"]["ran"], 10);
    assert_eq!(
        runs[1]["sets"][0],
        "parameter_discovery.grid.lookback=[10,40]"
    );

    let d = json(&p, &["diff", &format!("{WF}@-1"), WF, "--json"]);
    assert_eq!(d["a"]["run"], runs[0]["run"]);
    assert_eq!(d["b"]["run"], runs[1]["run"]);
    assert_eq!(d["workflow_changed"], false);
    assert_eq!(d["params"][0]["param"], "parameter_discovery.grid.lookback");
    assert!(d["params"][0]["a"].is_null());
    let rows = d["metrics"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["node"] == "ensemble_optimization" && r["metric"] == "test.sharpe")
        .expect("test.sharpe changed");
    let (a, b) = (
        shown_a["metrics"]["test"]["sharpe"].as_f64().unwrap(),
        shown_b["metrics"]["test"]["sharpe"].as_f64().unwrap(),
    );
    assert_eq!(row["a"].as_f64().unwrap(), a);
    assert_eq!(row["b"].as_f64().unwrap(), b);
    assert!((row["change"].as_f64().unwrap() - (b - a)).abs() < 1e-15);
    // The trials both runs share keep their keys: they are not listed.
    let keys: Vec<&str> = d["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["node"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"parameter_discovery"), "{keys:?}");
    assert!(!keys.contains(&"parameter_discovery[0]"), "{keys:?}");

    // A node's history: both runs, the same key for a shared trial.
    let log = json(&p, &["log", WF, "parameter_discovery[0]", "--json"]);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["key"], log[1]["key"]);
    assert_eq!(log[1]["status"], "cached");
    // The trial ran in the first build: the ledger took its metrics as
    // they were flattened where it ran, and the second build found them.
    assert!(log[0]["sharpe"].is_f64(), "{log:?}");
    assert_eq!(log[0]["sharpe"], log[1]["sharpe"]);
    let bad = p.admf(&["log", WF, "parameter_discovry"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("parameter_discovery"), "{}", bad.stderr);
    let bad = p.admf(&["diff", "nope", WF]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("no run `nope`"), "{}", bad.stderr);
}

#[test]
fn switching_back_to_an_experiment_reruns_nothing() {
    let p = project();
    let base = build(&p, &["--name", "base"]);
    assert_eq!(base["ran"], 10);
    let wide = build(
        &p,
        &[
            "--name",
            "wide",
            "--set",
            "parameter_discovery.grid.threshold=[0.01,0.03]",
        ],
    );
    assert!(wide["ran"].as_u64().unwrap() > 0);
    let back = build(&p, &["--name", "base"]);
    assert_eq!(
        (back["ran"].as_u64(), back["failed"].as_u64()),
        (Some(0), Some(0)),
        "{back}"
    );
    let back_wide = build(
        &p,
        &[
            "--name",
            "wide",
            "--set",
            "parameter_discovery.grid.threshold=[0.01,0.03]",
        ],
    );
    assert_eq!(back_wide["ran"], 0, "{back_wide}");

    let exp = json(&p, &["exp", "show", WF, "--json"]);
    let exp = exp.as_array().unwrap();
    let names: Vec<&str> = exp.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "wide"]);
    assert!(exp[0]["parameter_discovery.grid.threshold"].is_null());
    assert_eq!(exp[1]["parameter_discovery.grid.threshold"], "[0.01,0.03]");
    let shown = json(
        &p,
        &[
            "show",
            WF,
            "ensemble_optimization",
            "--json",
            "--set",
            "parameter_discovery.grid.threshold=[0.01,0.03]",
        ],
    );
    assert_eq!(
        exp[1]["ensemble_optimization:test.sharpe"],
        shown["metrics"]["test"]["sharpe"]
    );
    let table = ok(
        &p,
        &[
            "exp",
            "show",
            WF,
            "--metric",
            "total_return",
            "--format",
            "csv",
        ],
    );
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .contains("ensemble_optimization:test.total_return"),
        "{table}"
    );
}

#[test]
fn gc_trims_the_history_but_keeps_each_experiment() {
    let p = project();
    build(&p, &["--name", "first"]);
    for _ in 0..4 {
        build(&p, &[]);
    }
    assert_eq!(json(&p, &["runs", "--json"]).as_array().unwrap().len(), 5);
    let out = p.admf(&["cache", "gc", "--keep-runs", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("removed 2 runs"), "{}", out.stderr);
    let runs = json(&p, &["runs", "--json"]);
    let names: Vec<&Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["name"])
        .collect();
    assert_eq!(names, [&Value::from("first"), &Value::Null, &Value::Null]);
    // The kept runs keep their metrics.
    let log = json(&p, &["log", WF, "parameter_discovery[1]", "--json"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|r| r["sharpe"].is_number())
    );
}

#[test]
fn a_ledger_from_before_the_new_columns_reads_and_grows() {
    let p = project();
    build(&p, &[]);
    // Rewrite the index as an older admf left it: `runs` without the
    // added columns and no `key_metrics`.
    let db = p.path("cache/index/index.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP TABLE key_metrics;
             CREATE TABLE runs_old (run_id TEXT PRIMARY KEY, started_unix_ms INTEGER NOT NULL, finished_unix_ms INTEGER NOT NULL, workflow TEXT NOT NULL, workflow_id TEXT NOT NULL, sets TEXT NOT NULL, targets TEXT NOT NULL);
             INSERT INTO runs_old SELECT run_id, started_unix_ms, finished_unix_ms, workflow, workflow_id, sets, targets FROM runs;
             DROP TABLE runs;
             ALTER TABLE runs_old RENAME TO runs;",
        )
        .unwrap();
    }
    let runs = json(&p, &["runs", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert!(runs[0]["digest"].is_null() && runs[0]["name"].is_null());
    build(&p, &["--name", "after"]);
    let runs = json(&p, &["runs", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[1]["name"], "after");
    assert!(runs[1]["digest"].is_string());
}

#[test]
fn git_commit_and_dirty_flag_are_recorded_when_there_is_a_repository() {
    let git_ok = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !git_ok {
        eprintln!("no git here: the no-repository case is covered above");
        return;
    }
    let p = project();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(p.dir.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "workflows", "data"]);
    git(&["commit", "-q", "-m", "start"]);
    let head = git(&["rev-parse", "HEAD"]);
    build(&p, &[]);
    let text = p.read(WF).replace("fee: 0.001", "fee: 0.002");
    p.file(WF, &text);
    build(&p, &[]);
    let runs = json(&p, &["runs", WF, "--json"]);
    assert_eq!(runs[0]["git_commit"], head.as_str());
    assert_eq!(runs[0]["git_dirty"], false);
    assert_eq!(runs[1]["git_dirty"], true);
    assert_ne!(runs[0]["digest"], runs[1]["digest"]);
    let d = json(&p, &["diff", &format!("{WF}@-1"), WF, "--json"]);
    assert_eq!(d["workflow_changed"], true);
}

fn spawn(p: &Project, args: &[String]) -> std::process::Child {
    p.command()
        .args(["build", WF, "-j1"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn grid(v: usize) -> Vec<String> {
    vec![
        "--set".into(),
        format!("parameter_discovery.grid.lookback=[{}, {}]", 5 + v, 50 + v),
    ]
}

/// Each run lists all its nodes (8: four trials and four phases) and
/// metrics for each node that has them: no half-recorded run.
fn assert_whole(p: &Project, want: usize) {
    let runs = json(p, &["runs", "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), want, "{runs:?}");
    let mut ids: Vec<&str> = runs.iter().map(|r| r["run"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), want);
    for r in runs {
        let n = &r["nodes"];
        let total: u64 = ["ran", "cached", "skipped", "failed", "not_run"]
            .iter()
            .map(|s| n[s].as_u64().unwrap())
            .sum();
        assert_eq!(total, 8, "{r}");
    }
    if want == 0 {
        return;
    }
    let log = json(p, &["log", WF, "parameter_discovery[0]", "--json"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|r| r["sharpe"].is_number()),
        "{log}"
    );
}

#[test]
fn concurrent_builds_each_record_one_whole_run() {
    let p = project();
    let children: Vec<_> = (0..4).map(|v| spawn(&p, &grid(v % 2))).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_whole(&p, 4);
}

#[test]
fn killed_builds_leave_no_half_recorded_run() {
    let p = project();
    for round in 0..8usize {
        let mut child = spawn(&p, &grid(round));
        std::thread::sleep(Duration::from_millis(40 * round as u64));
        let _ = child.kill();
        child.wait().unwrap();
        let runs = json(&p, &["runs", "--json"]);
        // A killed build has no row, or a whole one if it got that far.
        let n = runs.as_array().unwrap().len();
        assert!(n <= round + 1);
        assert_whole(&p, n);
    }
    let before = json(&p, &["runs", "--json"]).as_array().unwrap().len();
    let args = grid(0);
    build(&p, &[args[0].as_str(), args[1].as_str()]);
    assert_whole(&p, before + 1);
}

/// The digest each run records is blake3 over the workflow's files in
/// load order, each its path as the loader names it, a 0 byte, its bytes
/// and a 0 byte (computed here independently of admf), whether the build
/// compiled the YAML, took the graph from the graph cache, or was proved
/// a no-op by the up-to-date record.
#[test]
fn the_recorded_digest_is_blake3_over_the_files_read_however_the_graph_was_had() {
    let p = Project::new();
    p.file(".admf", "");
    let included =
        "phases:\n  - b:\n      mode: command\n      run: echo b > b.txt\n      outputs: b.txt\n";
    let root = "phases:\n  - name: inc\n    workflow: inc.yaml\n  - a:\n      mode: command\n      run: echo a > a.txt\n      outputs: a.txt\n";
    p.file("inc.yaml", included);
    p.file("wf.yaml", root);
    let expected = |root: &str| {
        let mut h = blake3::Hasher::new();
        // The include's path is joined to the directory of the file
        // naming it, here the empty one of `wf.yaml`.
        for (path, bytes) in [("wf.yaml", root), ("inc.yaml", included)] {
            h.update(path.as_bytes())
                .update(&[0])
                .update(bytes.as_bytes())
                .update(&[0]);
        }
        h.finalize().to_hex().to_string()
    };
    ok(&p, &["build", "wf.yaml"]);
    common::past_racy_window();
    // Compiled, from the graph cache, by the record.
    ok(&p, &["build", "wf.yaml", "--force", "a"]);
    ok(&p, &["build", "wf.yaml"]);
    let edited = format!("{root}# edited\n");
    p.file("wf.yaml", &edited);
    ok(&p, &["build", "wf.yaml"]);
    let runs = json(&p, &["runs", "wf.yaml", "--json"]);
    let digests: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    let before = expected(root);
    assert_eq!(digests, [&before, &before, &before, &expected(&edited)]);
}
