//! Getting results out: `admf show --json`, `admf export` and the
//! workflow's `results:` folder, on the shipped parameter_optimization.yaml.

mod common;

use common::Project;
use serde_json::Value;

const WF: &str = "workflows/parameter_optimization.yaml";

fn project(results: Option<&str>) -> Project {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    let mut text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(WF)).unwrap();
    if let Some(dir) = results {
        text = format!("results: {dir}\n{text}");
    }
    p.file(WF, &text);
    p.file(".admf", "");
    p
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn show_json_names_files_metrics_and_log_that_exist() {
    let p = project(None);
    assert_eq!(p.admf(&["build", WF]).code, 0);
    let out = p.admf(&["show", WF, "parameter_discovery[5]", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["node"], "parameter_discovery[5]");
    assert_eq!(v["metrics"]["params"]["lookback"], 30);
    assert_eq!(v["metrics"]["params"]["threshold"], 0.02);
    let files = v["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["metrics.json", "signal.jsonl"]);
    for f in files {
        let path = f["path"].as_str().unwrap();
        assert_eq!(
            std::fs::metadata(path).unwrap().len(),
            f["size"].as_u64().unwrap()
        );
    }
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(files[0]["path"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(metrics, v["metrics"]);
    let log = std::fs::read_to_string(v["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("momentum_lookback=30_threshold=0.02"), "{log}");
}

#[test]
fn export_copies_plain_files_and_refuses_a_foreign_folder() {
    let p = project(None);
    assert_eq!(p.admf(&["build", WF]).code, 0);
    let out = p.admf(&["export", WF, "report", "regime_analysis", "out"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        files_under(&p.path("out/report")),
        ["metrics.json", "report.html"]
    );
    let html = p.path("out/report/report.html");
    // An ordinary file: its own inode, not a link into the store.
    assert!(
        !std::fs::symlink_metadata(&html)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&html).unwrap().nlink(), 1);
    }
    let shown: Value =
        serde_json::from_str(&p.admf(&["show", WF, "report", "--json"]).stdout).unwrap();
    let stored = std::fs::read(shown["files"][1]["path"].as_str().unwrap()).unwrap();
    assert_eq!(std::fs::read(&html).unwrap(), stored);

    // `--all` adds every other node but the single trials.
    assert_eq!(p.admf(&["export", WF, "--all", "out"]).code, 0);
    let mut top: Vec<String> = std::fs::read_dir(p.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(
        top,
        [
            ".admf-results",
            "ensemble_optimization",
            "parameter_discovery",
            "regime_analysis",
            "report"
        ]
    );

    p.file("mine/notes.txt", "keep me");
    let refused = p.admf(&["export", WF, "report", "mine"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("not empty"), "{}", refused.stderr);
    assert_eq!(p.read("mine/notes.txt"), "keep me");

    let unbuilt = project(None);
    let out = unbuilt.admf(&["export", WF, "report", "out"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("has not been built"), "{}", out.stderr);
}

#[test]
fn results_folder_follows_every_build_and_drops_stale_files() {
    let p = project(Some("../results"));
    let out = p.admf(&["build", WF]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dir = p.path("results");
    assert_eq!(
        files_under(&dir.join("report")),
        ["metrics.json", "report.html"]
    );
    assert!(!dir.join("parameter_discovery[0]").exists());
    let trials = std::fs::read_to_string(dir.join("parameter_discovery/trials.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&trials)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        6
    );

    // A stray file in a node's folder goes; a deleted one comes back,
    // even when the build itself is a no-op.
    p.file("results/report/old.csv", "stale");
    std::fs::remove_file(dir.join("report/report.html")).unwrap();
    let again = p.admf(&["build", WF]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("0 ran"), "{}", again.stderr);
    assert_eq!(
        files_under(&dir.join("report")),
        ["metrics.json", "report.html"]
    );

    // A changed parameter: the folder holds the new build's files.
    let grid = p.admf(&[
        "build",
        WF,
        "--set",
        "parameter_discovery.grid.lookback=[15]",
    ]);
    assert_eq!(grid.code, 0, "{}", grid.stderr);
    let trials: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("parameter_discovery/trials.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(trials.as_array().unwrap().len(), 2);
    assert_eq!(
        files_under(&dir.join("parameter_discovery/signals")),
        ["trial_0.jsonl", "trial_1.jsonl"]
    );
}

#[test]
fn results_must_be_a_path_in_the_root_file() {
    let p = project(None);
    p.file(
        "w.yaml",
        "results: [a]\ndata: {path: data/SPY_D.csv}\nstrategy: {type: momentum}\n",
    );
    let out = p.admf(&["validate", "w.yaml"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("w.yaml:1"), "{}", out.stderr);
    assert!(out.stderr.contains("results"), "{}", out.stderr);
}
